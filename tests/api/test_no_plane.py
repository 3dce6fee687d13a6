"""An API-only process (`linkflow api`, no execution plane) says what serves the rest."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/workflows"),
        ("POST", "/api/v1/workflows"),
        ("GET", "/api/v1/executions/00000000-0000-0000-0000-000000000000"),
        ("GET", "/api/v1/nodes"),
        ("POST", "/webhooks/orders"),
    ],
)
async def test_execution_routes_answer_503_naming_serve(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "execution_plane_unavailable"
    assert "linkflow serve" in body["detail"]


async def test_accounts_are_still_served(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json={
        "email": "grace@example.com", "password": "correct horse battery"})  # fmt: skip
    assert response.status_code == 201
    assert (await client.get("/api/v1/nowhere")).status_code == 404
