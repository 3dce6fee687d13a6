"""Connecting an OAuth2 credential end to end, through the API of `serve` with its worker
running: authorize → the loopback authorization server's consent (tests/_oauth_provider.py)
→ callback → tokens sealed → refreshed before they expire → a google_sheets node call
with the fresh token (tests/_saas/google_sheets.py checks it with the provider). And each
refusal: a reused, forged or expired state, a refused consent, a failed exchange."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from linkflow.services._credential_codec import open_data
from linkflow.store import Credential, OAuth2ConnectState
from linkflow.wiring.keys import secret_box
from tests._oauth_provider import CLIENT_ID, CLIENT_SECRET, FakeOAuthProvider, fake_oauth_provider
from tests._saas.google_sheets import FakeSheets, fake_sheets
from tests.api._plane import PlaneApi, assert_problem, running_plane
from tests.api._support import Account, api_settings, join, team

MASK = "••••••"
AUTHORIZE = "/api/v1/credentials/oauth2/google_oauth2/authorize"
CALLBACK = "http://testserver/api/v1/credentials/oauth2/callback"
BOOK = "book-1"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOAuthProvider]:
    """Tokens live 30 s: less than the refresh margin, so a node run refreshes first."""
    with fake_oauth_provider(expires_in=30) as fake:
        fake.redirect_uris.add(CALLBACK)
        yield fake


@pytest.fixture(scope="module")
def sheets(provider: FakeOAuthProvider) -> Iterator[FakeSheets]:
    with fake_sheets(authorize=provider.valid) as fake:
        fake.add_spreadsheet(BOOK, Sheet1=[["name", "team"], ["Ada", "core"]])
        yield fake


@pytest.fixture(scope="module")
async def api(
    db_url: str, tmp_path_factory: pytest.TempPathFactory, provider: FakeOAuthProvider
) -> AsyncIterator[PlaneApi]:
    data_dir: Path = tmp_path_factory.mktemp("oauth2")
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "authorize_url": provider.authorize_url, "token_url": provider.token_url}
    settings = api_settings(data_dir, db_url, http_allow_private=True,
                            oauth2_clients={"google_oauth2": client})  # fmt: skip
    async with running_plane(settings) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The user's browser at the provider (redirects are followed by hand)."""
    async with httpx.AsyncClient() as client:
        yield client


async def consent(api: PlaneApi, browser: httpx.AsyncClient, account: Account,
                  **query: str) -> str:  # fmt: skip
    """Start connecting and consent at the provider: the callback URL it sends back to."""
    started = await api.client.get(AUTHORIZE, params=query, headers=account.headers)
    assert started.status_code == 302, started.text
    at_provider = await browser.get(started.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    back: str = at_provider.headers["location"]
    assert back.startswith(CALLBACK + "?")
    return back


async def connect(api: PlaneApi, browser: httpx.AsyncClient, account: Account,
                  name: str = "Sheets") -> dict[str, Any]:  # fmt: skip
    finished = await api.client.get(await consent(api, browser, account, name=name))
    assert finished.status_code == 200, finished.text
    body: dict[str, Any] = finished.json()
    return body


async def credentials_of(api: PlaneApi, account: Account) -> list[dict[str, Any]]:
    return await api.listed(account, "/api/v1/credentials")


async def opened(api: PlaneApi, credential_id: str) -> tuple[bytes, dict[str, Any]]:
    """The row's sealed bytes, and what they hold."""
    database = api.container.database
    async with database.session() as session:
        row = (await session.scalars(select(Credential).where(
            Credential.id == uuid.UUID(credential_id)))).one()  # fmt: skip
    return row.data_encrypted, open_data(secret_box(api.settings), row)


def sheets_read(credential_id: str, sheets: FakeSheets) -> dict[str, Any]:
    return {"name": "Read sheet", "nodes": [
        {"id": "start", "type": "manual", "parameters": {}},
        {"id": "read", "type": "google_sheets", "credentials": {"google": credential_id},
         "parameters": {"operation": "read", "spreadsheet_id": BOOK, "base_url": sheets.url}},
    ], "connections": [{"from": "start", "to": "read"}]}  # fmt: skip


class TestConnect:
    async def test_authorize_redirects_to_the_provider_with_state_and_pkce(
        self, api: PlaneApi, provider: FakeOAuthProvider
    ) -> None:
        account = await api.user()
        started = await api.client.get(AUTHORIZE, params={"name": "Sheets"},
                                       headers=account.headers)  # fmt: skip
        assert started.status_code == 302
        url = httpx.URL(started.headers["location"])
        assert str(url.copy_with(query=None)) == provider.authorize_url
        query = dict(url.params)
        assert query["response_type"] == "code"
        assert query["client_id"] == CLIENT_ID
        assert query["redirect_uri"] == CALLBACK
        assert query["code_challenge_method"] == "S256"
        assert len(query["code_challenge"]) == 43
        assert len(query["state"]) >= 43
        assert "https://www.googleapis.com/auth/spreadsheets" in query["scope"].split()
        assert (query["access_type"], query["prompt"]) == ("offline", "consent")
        assert "client_secret" not in query
        again = await api.client.get(AUTHORIZE, params={"name": "Sheets", "response": "json"},
                                     headers=account.headers)  # fmt: skip
        assert again.status_code == 200
        other = dict(httpx.URL(again.json()["authorization_url"]).params)
        assert other["state"] != query["state"]
        assert other["code_challenge"] != query["code_challenge"]

    async def test_connect_seal_refresh_before_expiry_and_call_sheets_with_the_fresh_token(
        self, api: PlaneApi, browser: httpx.AsyncClient, provider: FakeOAuthProvider,
        sheets: FakeSheets,
    ) -> None:  # fmt: skip
        account = await api.user()
        created = await connect(api, browser, account)
        grant = provider.grants[-1]
        exchange = provider.grants_of_type("authorization_code")[-1]
        assert exchange["redirect_uri"] == CALLBACK
        assert len(exchange["code_verifier"]) >= 43
        assert exchange["client_secret"] == CLIENT_SECRET
        assert created["type"] == "google_oauth2"
        assert created["name"] == "Sheets"
        assert created["data"]["access_token"] == MASK
        assert created["data"]["refresh_token"] == MASK
        shown = (await api.client.get(f"/api/v1/credentials/{created['id']}",
                                      headers=account.headers)).json()  # fmt: skip
        assert shown["data"]["access_token"] == shown["data"]["refresh_token"] == MASK
        first_access, first_refresh = grant.access_tokens[0], grant.refresh_tokens[0]
        sealed, data = await opened(api, created["id"])
        assert first_access.encode() not in sealed
        assert first_refresh.encode() not in sealed
        assert (data["access_token"], data["refresh_token"]) == (first_access, first_refresh)
        assert data["scope"] == grant.scope

        workflow = await api.workflow(account, sheets_read(created["id"], sheets))
        execution = await api.run(account, workflow["id"])
        assert execution["status"] == "completed", execution["error"]
        [refresh] = [f for f in provider.grants_of_type("refresh_token")
                     if f["refresh_token"] == first_refresh]  # fmt: skip
        assert refresh["client_id"] == CLIENT_ID
        fresh_access = grant.access_tokens[1]
        assert provider.valid(first_access)  # refreshed before it expired
        [read] = [r for r in sheets.requests if r.path.startswith(f"/v4/spreadsheets/{BOOK}")
                  and r.headers["authorization"] == f"Bearer {fresh_access}"]  # fmt: skip
        assert read.method == "GET"
        _, data = await opened(api, created["id"])
        assert (data["access_token"], data["refresh_token"]) == (fresh_access,
                                                                 grant.live_refresh_token)
        logs = (await api.client.get(f"/api/v1/executions/{execution['id']}/logs",
                                     headers=account.headers)).text  # fmt: skip
        assert fresh_access not in logs
        assert first_refresh not in logs

    async def test_reconnecting_replaces_the_tokens_of_the_same_credential(
        self, api: PlaneApi, browser: httpx.AsyncClient, provider: FakeOAuthProvider
    ) -> None:
        account = await api.user()
        created = await connect(api, browser, account, name="Reconnect me")
        back = await consent(api, browser, account, credential_id=created["id"])
        finished = await api.client.get(back)
        assert finished.status_code == 200, finished.text
        assert finished.json()["id"] == created["id"]
        _, data = await opened(api, created["id"])
        assert data["access_token"] == provider.grants[-1].access_tokens[0]
        assert [c["id"] for c in await credentials_of(api, account)] == [created["id"]]


class TestRefusals:
    async def test_a_reused_state_is_refused_and_creates_nothing(
        self, api: PlaneApi, browser: httpx.AsyncClient
    ) -> None:
        account = await api.user()
        back = await consent(api, browser, account, name="Once")
        assert (await api.client.get(back)).status_code == 200
        body = assert_problem(await api.client.get(back), 400, "oauth2_state_invalid")
        assert "start connecting the credential again" in body["detail"]
        assert len(await credentials_of(api, account)) == 1

    async def test_a_forged_or_missing_state_is_refused(self, api: PlaneApi) -> None:
        assert_problem(await api.client.get(CALLBACK, params={"code": "c", "state": "forged"}),
                       400, "oauth2_state_invalid")  # fmt: skip
        assert_problem(await api.client.get(CALLBACK, params={"code": "c"}), 400,
                       "oauth2_state_invalid")  # fmt: skip

    async def test_an_expired_state_is_refused_and_creates_nothing(
        self, api: PlaneApi, browser: httpx.AsyncClient, provider: FakeOAuthProvider
    ) -> None:
        account = await api.user()
        back = await consent(api, browser, account, name="Too late")
        async with api.container.database.transaction() as session:
            await session.execute(update(OAuth2ConnectState).values(
                expires_at=OAuth2ConnectState.created_at))  # fmt: skip
        exchanges = len(provider.grants_of_type("authorization_code"))
        assert_problem(await api.client.get(back), 400, "oauth2_state_invalid")
        assert len(provider.grants_of_type("authorization_code")) == exchanges
        assert await credentials_of(api, account) == []

    async def test_a_refused_consent_is_the_providers_error_and_creates_nothing(
        self, api: PlaneApi, browser: httpx.AsyncClient, provider: FakeOAuthProvider
    ) -> None:
        account = await api.user()
        provider.deny_next()
        back = await consent(api, browser, account, name="Denied")
        assert "error=access_denied" in back
        body = assert_problem(await api.client.get(back), 400, "oauth2_access_denied")
        assert "The user refused" in body["detail"]
        assert await credentials_of(api, account) == []
        assert_problem(await api.client.get(back), 400, "oauth2_state_invalid")

    async def test_a_failed_exchange_is_refused_and_creates_nothing(
        self, api: PlaneApi, browser: httpx.AsyncClient
    ) -> None:
        """The provider refuses a code it did not issue (invalid_grant)."""
        account = await api.user()
        back = httpx.URL(await consent(api, browser, account, name="Bad code"))
        forged = back.copy_set_param("code", "not-a-code-it-issued")
        body = assert_problem(await api.client.get(str(forged)), 400, "oauth2_exchange_failed")
        assert body["detail"] == ("the token endpoint refused the authorization code "
                                  "(HTTP 400: invalid_grant)")  # fmt: skip
        assert await credentials_of(api, account) == []

    async def test_authorize_refuses_bad_requests_clearly(self, api: PlaneApi) -> None:
        account = await api.user()
        headers = account.headers
        get = api.client.get
        assert_problem(await get(AUTHORIZE, params={"name": "x"}), 401)
        assert_problem(await get("/api/v1/credentials/oauth2/nope/authorize",
                                 params={"name": "x"}, headers=headers),
                       422, "unknown_credential_type")  # fmt: skip
        assert_problem(await get("/api/v1/credentials/oauth2/bearer/authorize",
                                 params={"name": "x"}, headers=headers), 422, "not_oauth2_type")
        assert_problem(await get(AUTHORIZE, headers=headers), 422)
        taken = await api.client.post("/api/v1/credentials", headers=headers, json={
            "name": "Taken", "type": "google_oauth2", "data": {}})  # fmt: skip
        assert taken.status_code == 201, taken.text
        assert_problem(await get(AUTHORIZE, params={"name": "Taken"}, headers=headers),
                       409, "credential_exists")  # fmt: skip
        bearer = await api.client.post("/api/v1/credentials", headers=headers, json={
            "name": "Token", "type": "bearer", "data": {"token": "t"}})  # fmt: skip
        assert_problem(await get(AUTHORIZE, params={"credential_id": bearer.json()["id"]},
                                 headers=headers), 422, "credential_type_mismatch")

    async def test_a_member_who_may_not_write_credentials_cannot_connect(
        self, api: PlaneApi
    ) -> None:
        owner = await api.user()
        workspace_id = await team(api.client, owner)
        member = await api.user()
        await join(api.client, owner, member, workspace_id, role="member")
        assert_problem(await api.client.get(AUTHORIZE, params={"name": "x"},
                                            headers=member.in_workspace(workspace_id)), 403)
