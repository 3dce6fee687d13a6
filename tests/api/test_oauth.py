"""OAuth login against a real OpenID Connect provider running on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api._oidc import CLIENT_ID, CLIENT_SECRET, LocalProvider, Provider
from tests.api._support import new_email, register
from tests.api.conftest import Api, ApiFactory
from tests.api.test_mfa import enable_mfa


@pytest.fixture
def idp() -> Iterator[Provider]:
    with LocalProvider() as provider:
        yield provider


def _providers(idp: Provider) -> dict[str, Any]:
    credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    github = {
        **credentials,
        "authorize_url": f"{idp.url}/authorize",
        "token_url": f"{idp.url}/token",
        "userinfo_url": f"{idp.url}/user",
        "emails_url": f"{idp.url}/user/emails",
    }
    return {"corp": {**credentials, "issuer": idp.url}, "github": github}


@pytest.fixture
async def oauth_api(make_api: ApiFactory, idp: Provider) -> Api:
    return await make_api(oauth_providers=_providers(idp))


async def oauth_login(api: Api, provider: str) -> httpx.Response:
    """Walk the browser's part: our redirect, the provider's redirect, our callback."""
    start = await api.client.get(f"/api/v1/auth/oauth/{provider}")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    assert consent.status_code == 302, consent.text
    callback = httpx.URL(consent.headers["location"])
    assert callback.path == f"/api/v1/auth/oauth/{provider}/callback"
    return await api.client.get(callback.path, params=dict(callback.params))


class TestOidcLogin:
    async def test_a_new_identity_creates_an_account_and_logs_in(
        self, oauth_api: Api, idp: Provider
    ):
        """A verified OIDC identity: 200 with tokens, a new user and personal workspace."""
        email = new_email("oidc")
        idp.next_user = {
            "sub": "oidc-1-" + email,
            "email": email,
            "email_verified": True,
            "name": "Olive",
        }
        response = await oauth_login(oauth_api, "corp")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["user"]["email"] == email
        assert body["user"]["email_verified_at"] is not None
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        workspace = await oauth_api.client.get("/api/v1/workspaces/current", headers=headers)
        assert workspace.json()["is_personal"] is True
        again = await oauth_login(oauth_api, "corp")
        assert again.json()["user"]["id"] == body["user"]["id"]

    async def test_the_authorize_redirect_carries_pkce_state_and_nonce(self, oauth_api: Api):
        """S256 challenge, state and nonce in the URL; the state cookie is HttpOnly."""
        start = await oauth_api.client.get("/api/v1/auth/oauth/corp")
        query = httpx.URL(start.headers["location"]).params
        assert query["code_challenge_method"] == "S256"
        assert query["state"]
        assert query["nonce"]
        assert query["code_challenge"]
        assert query["redirect_uri"] == "http://testserver/api/v1/auth/oauth/corp/callback"
        cookie = start.headers["set-cookie"]
        assert "lf_oauth_state=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie

    async def test_a_verified_email_links_to_the_existing_account(
        self, oauth_api: Api, idp: Provider
    ):
        """Same e-mail, verified by the provider: the OAuth login is the existing user."""
        account = await register(oauth_api.client)
        idp.next_user = {
            "sub": "link-" + account.email,
            "email": account.email,
            "email_verified": True,
            "name": "Linked",
        }
        response = await oauth_login(oauth_api, "corp")
        assert response.status_code == 200
        assert response.json()["user"]["id"] == account.user_id

    async def test_an_unverified_email_does_not_take_over_an_account(
        self, oauth_api: Api, idp: Provider
    ):
        """Same e-mail, not verified: 409 email_in_use."""
        account = await register(oauth_api.client)
        idp.next_user = {
            "sub": "evil-" + account.email,
            "email": account.email,
            "email_verified": False,
            "name": "Mallory",
        }
        response = await oauth_login(oauth_api, "corp")
        assert response.status_code == 409
        assert response.json()["code"] == "email_in_use"

    async def test_a_state_that_does_not_match_the_cookie_is_refused(
        self, oauth_api: Api, idp: Provider
    ):
        """A callback with another state (CSRF) or no cookie: 401 invalid_oauth_state."""
        idp.next_user = {"sub": "x", "email": new_email(), "email_verified": True, "name": "X"}
        start = await oauth_api.client.get("/api/v1/auth/oauth/corp")
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(start.headers["location"])
        callback = httpx.URL(consent.headers["location"])
        forged = dict(callback.params) | {"state": "forged"}
        response = await oauth_api.client.get(callback.path, params=forged)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_oauth_state"
        oauth_api.client.cookies.clear()
        no_cookie = await oauth_api.client.get(callback.path, params=dict(callback.params))
        assert no_cookie.status_code == 401

    async def test_a_provider_error_is_a_clean_401(self, oauth_api: Api):
        """?error=access_denied from the provider: 401 oauth_failed with its reason."""
        response = await oauth_api.client.get(
            "/api/v1/auth/oauth/corp/callback",
            params={"error": "access_denied", "error_description": "the user said no"},
        )
        assert response.status_code == 401
        assert "the user said no" in response.json()["detail"]

    async def test_an_unknown_provider_is_404(self, oauth_api: Api):
        """A provider that is not configured does not exist."""
        response = await oauth_api.client.get("/api/v1/auth/oauth/nowhere")
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_provider"

    async def test_mfa_still_applies_to_oauth_logins(self, oauth_api: Api, idp: Provider):
        """A linked account with MFA on: 401 mfa_required with a token for the challenge."""
        account = await register(oauth_api.client)
        await enable_mfa(oauth_api.client, account)
        idp.next_user = {
            "sub": "mfa-" + account.email,
            "email": account.email,
            "email_verified": True,
            "name": "Mfa",
        }
        response = await oauth_login(oauth_api, "corp")
        assert response.status_code == 401
        assert response.json()["code"] == "mfa_required"
        assert response.json()["mfa_token"]


class TestGithubLogin:
    async def test_github_flavoured_login_uses_the_verified_primary_email(
        self, oauth_api: Api, idp: Provider
    ):
        """Plain OAuth 2.0: the profile and the primary verified e-mail from the REST API."""
        email = new_email("octo")
        idp.next_user = {"sub": "4242", "email": email, "email_verified": True, "name": "octo"}
        response = await oauth_login(oauth_api, "github")
        assert response.status_code == 200, response.text
        assert response.json()["user"]["email"] == email
        assert response.json()["user"]["name"] == "octo"
