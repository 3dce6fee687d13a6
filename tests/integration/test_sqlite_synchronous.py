"""SQLite's durability level is a setting: `LINKFLOW_SQLITE_SYNCHRONOUS` (or the URL's
`?synchronous=`) reaches every connection opened on the URL, the writer's included."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from linkflow.config import Settings
from linkflow.store import Database
from linkflow.store.errors import StoreConfigError
from linkflow.store.sqlite_batches import SQLiteBatches

# PRAGMA synchronous answers a number: 1 NORMAL, 2 FULL, 3 EXTRA.
LEVELS = {"normal": 1, "full": 2, "extra": 3}


def url_of(settings: Settings) -> str:
    return settings.effective_database_url


async def pool_level(url: str) -> int:
    database = Database(url)
    try:
        async with database.session() as session:
            return int((await session.execute(text("PRAGMA synchronous"))).scalar_one())
    finally:
        await database.dispose()


def writer_level(url: str) -> int:
    batches = SQLiteBatches(url)
    try:
        return int(batches._connection.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        batches.close()


@pytest.mark.parametrize("level", ["normal", "full", "extra"])
async def test_the_setting_reaches_the_pool_and_the_writer(tmp_path: Path, level: str) -> None:
    url = url_of(Settings(data_dir=tmp_path, sqlite_synchronous=level))  # type: ignore[arg-type]
    assert await pool_level(url) == LEVELS[level]
    assert writer_level(url) == LEVELS[level]


async def test_the_default_is_normal_and_a_url_may_say_it_itself(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).effective_database_url.endswith("linkflow.db")
    explicit = f"sqlite:///{tmp_path / 'x.db'}?synchronous=full"
    settings = Settings(data_dir=tmp_path, database_url=explicit, sqlite_synchronous="extra")
    assert settings.effective_database_url == explicit  # the URL's own word wins
    assert await pool_level(explicit) == LEVELS["full"]


def test_a_level_that_is_not_durable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings(data_dir=tmp_path, sqlite_synchronous="off")  # type: ignore[arg-type]
    with pytest.raises(StoreConfigError, match="synchronous level 'off'"):
        Database(f"sqlite:///{tmp_path / 'x.db'}?synchronous=off")


def test_postgresql_urls_are_left_alone(tmp_path: Path) -> None:
    url = "postgresql://u@127.0.0.1/db"
    assert Settings(database_url=url, sqlite_synchronous="full").effective_database_url == url
