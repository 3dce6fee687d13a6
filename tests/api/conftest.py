"""Fixtures of the API tests: an app over a real database (SQLite and PostgreSQL),
driven in-process through `httpx.ASGITransport`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkflow.api import create_app
from linkflow.api.container import Container
from linkflow.config import Settings
from linkflow.wiring import build_container
from tests.api._support import api_settings


@dataclass
class Api:
    """A running test app: its client, its container and its settings."""

    client: httpx.AsyncClient
    container: Container
    settings: Settings


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(db_url: str, tmp_path: Path) -> AsyncIterator[ApiFactory]:
    """Build test apps on this module's database, with settings overridden per call."""
    opened: list[Api] = []

    async def make(**overrides: Any) -> Api:
        database_url = overrides.pop("database_url", db_url)
        settings = api_settings(tmp_path, database_url, **overrides)
        container = build_container(settings)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(container)), base_url="http://testserver"
        )
        api = Api(client=client, container=container, settings=settings)
        opened.append(api)
        return api

    yield make
    for api in opened:
        await api.client.aclose()
        await api.container.aclose()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """A test app with the default test settings."""
    return await make_api()


@pytest.fixture
def client(api: Api) -> httpx.AsyncClient:
    return api.client
