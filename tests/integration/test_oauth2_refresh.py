"""OAuth2 tokens of connected credentials refreshed against a loopback authorization
server that rotates refresh tokens and revokes a grant whose refresh token is used twice
(tests/_oauth_provider.py): two processes refreshing at once spend it once.

Runs on SQLite and on PostgreSQL (the `database` fixture)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select

from linkflow.config import OAuth2Client
from linkflow.nodes.registry import default_registry
from linkflow.security.secretbox import SecretBox
from linkflow.security.ssrf import AddressPolicy, guarded_client
from linkflow.services._credential_codec import open_data
from linkflow.services._credential_oauth2 import OAuth2RefreshError, TokenRefresher
from linkflow.services._oauth2_clients import OAuth2Clients
from linkflow.services.credentials import Credentials
from linkflow.store import Credential, CredentialRefreshLease, Database
from tests._oauth_provider import CLIENT_ID, CLIENT_SECRET, FakeOAuthProvider, fake_oauth_provider
from tests.integration.test_credentials_store import Owner, new_owner

KEY = b"r" * 32
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
def provider() -> Iterator[FakeOAuthProvider]:
    with fake_oauth_provider(expires_in=30) as fake:
        fake.redirect_uris.add(REDIRECT)
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def clients(provider: FakeOAuthProvider) -> OAuth2Clients:
    config = OAuth2Client(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,  # type: ignore[arg-type]
                          token_url=provider.token_url)  # fmt: skip
    return OAuth2Clients(default_registry(plugins=False).credential_types,
                         {"google_oauth2": config})  # fmt: skip


async def consent(provider: FakeOAuthProvider, http: httpx.AsyncClient) -> dict[str, Any]:
    """Tokens of a new grant, as a browser and the code exchange would get them."""
    verifier = generate_token(64)
    query = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
             "state": "s", "code_challenge": create_s256_code_challenge(verifier),
             "code_challenge_method": "S256", "scope": "sheets"}  # fmt: skip
    back = await http.get(provider.authorize_url, params=query)
    code = httpx.URL(back.headers["location"]).params["code"]
    answer = await http.post(provider.token_url, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
    })  # fmt: skip
    body: dict[str, Any] = answer.raise_for_status().json()
    expires = datetime.now(UTC) + timedelta(seconds=body["expires_in"])
    return {"access_token": body["access_token"], "refresh_token": body["refresh_token"],
            "expires_at": expires.isoformat(), "scope": body["scope"]}  # fmt: skip


async def connected(
    database: Database, http: httpx.AsyncClient, box: SecretBox, provider: FakeOAuthProvider
) -> tuple[uuid.UUID, Owner]:
    owner = await new_owner(database)
    service = Credentials(database, box, http, AddressPolicy(allow_private=True))
    view = await service.create(owner.access, owner.actor, name="sheets",
                                type="google_oauth2", data=await consent(provider, http))
    return view.id, owner


async def stored(database: Database, box: SecretBox, credential_id: uuid.UUID) -> dict[str, Any]:
    async with database.session() as session:
        row = await session.get(Credential, credential_id)
        assert row is not None
        return open_data(box, row)


class TestConcurrentRefreshes:
    async def test_two_processes_refreshing_at_once_spend_the_refresh_token_once(
        self, database: Database, db_url: str, http: httpx.AsyncClient,
        provider: FakeOAuthProvider,
    ) -> None:  # fmt: skip
        """Each refresher is a process of its own (its own lock, lease holder and pool):
        the provider sees one refresh, both get its access token, and the rotated refresh
        token is stored and still works (a second spend would have revoked the grant)."""
        box = SecretBox.from_key(KEY)
        credential_id, owner = await connected(database, http, box, provider)
        workspace_id = owner.workspace_id
        data = await stored(database, box, credential_id)
        other_database = Database(db_url)
        try:
            first = TokenRefresher(database, box, http, clients=clients(provider))
            second = TokenRefresher(other_database, box, http, clients=clients(provider))
            assert first.holder != second.holder
            results = await asyncio.gather(
                first.fresh(credential_id, workspace_id, dict(data), kind="google_oauth2"),
                second.fresh(credential_id, workspace_id, dict(data), kind="google_oauth2"),
            )
        finally:
            await other_database.dispose()
        [grant] = provider.grants
        assert len(provider.grants_of_type("refresh_token")) == 1
        assert provider.grants_of_type("refresh_token")[0]["refresh_token"] == data["refresh_token"]
        assert not grant.revoked
        assert {r["access_token"] for r in results} == {grant.access_tokens[-1]}
        assert provider.valid(results[0]["access_token"])
        kept = await stored(database, box, credential_id)
        assert kept["refresh_token"] == grant.live_refresh_token != data["refresh_token"]
        async with database.session() as session:
            assert (await session.scalars(select(CredentialRefreshLease))).all() == []
        # The kept refresh token is the live one: the next refresh works.
        again = await first.fresh(credential_id, workspace_id, kept, kind="google_oauth2")
        assert again["access_token"] == grant.access_tokens[-1] != kept["access_token"]

    async def test_a_refresh_that_finishes_after_a_reconnect_keeps_the_new_tokens(
        self, database: Database, http: httpx.AsyncClient, provider: FakeOAuthProvider
    ) -> None:
        """The row's refresh token changed while the refresh was out (a reconnect through
        the consent screen stored a new grant): the refresh's older tokens are dropped."""
        box = SecretBox.from_key(KEY)
        credential_id, owner = await connected(database, http, box, provider)
        data = await stored(database, box, credential_id)
        reconnected = await consent(provider, http)
        refresher = TokenRefresher(database, box, http, clients=clients(provider))
        tokens = await refresher._request("google_oauth2", data)
        service = Credentials(database, box, http, AddressPolicy(allow_private=True))
        await service.update(owner.access, owner.actor, credential_id, data=reconnected)
        kept = await refresher._store(credential_id, owner.workspace_id, tokens,
                                      spent=data["refresh_token"])  # fmt: skip
        assert kept["refresh_token"] == reconnected["refresh_token"]
        assert (await stored(database, box, credential_id))["access_token"] == (
            reconnected["access_token"])

    async def test_a_type_without_a_configured_client_fails_the_refresh_clearly(
        self, database: Database, http: httpx.AsyncClient, provider: FakeOAuthProvider
    ) -> None:
        box = SecretBox.from_key(KEY)
        credential_id, owner = await connected(database, http, box, provider)
        data = await stored(database, box, credential_id)
        bare = OAuth2Clients(default_registry(plugins=False).credential_types)
        refresher = TokenRefresher(database, box, http, clients=bare)
        with pytest.raises(OAuth2RefreshError) as caught:
            await refresher.fresh(credential_id, owner.workspace_id, data, kind="google_oauth2")
        assert str(caught.value) == ("no OAuth client is configured for google_oauth2 "
                                     "credentials (LINKFLOW_OAUTH2_CLIENTS)")  # fmt: skip
        assert provider.grants_of_type("refresh_token") == []
