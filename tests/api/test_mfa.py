"""Two-factor authentication: set-up, login with codes, replay, recovery codes, removal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pyotp

from linkflow.store import User
from tests.api._support import PASSWORD, Account, eventually, register
from tests.api.conftest import Api, ApiFactory


async def enable_mfa(client: httpx.AsyncClient, account: Account) -> tuple[str, list[str]]:
    """Turn MFA on for `account`; returns the TOTP secret and the recovery codes."""
    setup = await client.post("/api/v1/auth/mfa/setup", headers=account.headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    verified = await client.post(
        "/api/v1/auth/mfa/verify",
        json={"code": pyotp.TOTP(secret).now()},
        headers=account.headers,
    )
    assert verified.status_code == 200, verified.text
    return secret, verified.json()["recovery_codes"]


def code_at(secret: str, steps_ahead: int) -> str:
    """The TOTP code of the step `steps_ahead` from now (within the accepted drift)."""
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * steps_ahead))


async def login(client: httpx.AsyncClient, account: Account, code: str | None = None):
    body = {"email": account.email, "password": PASSWORD}
    if code is not None:
        body["mfa_code"] = code
    return await client.post("/api/v1/auth/login", json=body)


class TestMfa:
    async def test_setup_returns_a_secret_and_an_otpauth_uri(self, api: Api):
        """The secret is stored sealed, not in clear; MFA stays off until verified."""
        account = await register(api.client)
        setup = (await api.client.post("/api/v1/auth/mfa/setup", headers=account.headers)).json()
        assert setup["otpauth_uri"].startswith("otpauth://totp/")
        assert (await login(api.client, account)).status_code == 200
        async with api.container.database.session() as session:
            user = await session.get(User, uuid.UUID(account.user_id))
        assert user is not None
        assert user.mfa_secret_encrypted is not None
        assert setup["secret"].encode() not in user.mfa_secret_encrypted
        assert user.mfa_enabled is False

    async def test_verify_needs_a_valid_code(self, client: httpx.AsyncClient):
        """A wrong first code is 422 and MFA stays off; verify before setup is 409."""
        account = await register(client)
        early = await client.post(
            "/api/v1/auth/mfa/verify", json={"code": "123456"}, headers=account.headers
        )
        assert early.status_code == 409
        await client.post("/api/v1/auth/mfa/setup", headers=account.headers)
        wrong = await client.post(
            "/api/v1/auth/mfa/verify", json={"code": "000000"}, headers=account.headers
        )
        assert wrong.status_code == 422
        assert wrong.json()["code"] == "invalid_mfa_code"

    async def test_login_without_a_code_answers_mfa_required(self, client: httpx.AsyncClient):
        """401 mfa_required with an mfa_token, which with a code finishes the login."""
        account = await register(client)
        secret, codes = await enable_mfa(client, account)
        assert len(codes) == 10
        assert len(set(codes)) == 10
        response = await login(client, account)
        assert response.status_code == 401
        problem = response.json()
        assert problem["code"] == "mfa_required"
        done = await client.post(
            "/api/v1/auth/mfa/challenge",
            json={"mfa_token": problem["mfa_token"], "code": code_at(secret, 1)},
        )
        assert done.status_code == 200
        assert done.json()["user"]["mfa_enabled"] is True

    async def test_a_code_cannot_be_replayed(self, client: httpx.AsyncClient):
        """The same TOTP code works once; a wrong code is invalid_mfa_code."""
        account = await register(client)
        secret, _ = await enable_mfa(client, account)
        code = code_at(secret, 1)
        assert (await login(client, account, code)).status_code == 200
        replay = await login(client, account, code)
        assert replay.status_code == 401
        assert replay.json()["code"] == "invalid_mfa_code"

    async def test_a_recovery_code_works_once(self, client: httpx.AsyncClient):
        """Each of the ten codes logs in once, whatever its case and dashes."""
        account = await register(client)
        _, codes = await enable_mfa(client, account)
        assert (await login(client, account, codes[0].upper())).status_code == 200
        assert (await login(client, account, codes[0])).status_code == 401
        assert (await login(client, account, codes[1].replace("-", ""))).status_code == 200

    async def test_a_wrong_mfa_code_counts_towards_lockout(self, client: httpx.AsyncClient):
        """Five wrong codes lock the account like five wrong passwords."""
        account = await register(client)
        secret, _ = await enable_mfa(client, account)
        for _ in range(5):
            await login(client, account, "000000")
        assert (await login(client, account, code_at(secret, 1))).status_code == 401

    async def test_a_bad_mfa_token_is_refused(self, client: httpx.AsyncClient):
        """A made-up mfa_token: 401 invalid_mfa_token."""
        response = await client.post(
            "/api/v1/auth/mfa/challenge", json={"mfa_token": "x.y.z", "code": "123456"}
        )
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_mfa_token"

    async def test_disable_needs_password_and_code(self, client: httpx.AsyncClient):
        """Wrong password or code: 422 and MFA stays; both right: 204 and login needs no code."""
        account = await register(client)
        secret, _ = await enable_mfa(client, account)
        bad_password = await client.post(
            "/api/v1/auth/mfa/disable",
            json={"password": "not-my-password", "code": code_at(secret, 1)},
            headers=account.headers,
        )
        assert bad_password.status_code == 422
        bad_code = await client.post(
            "/api/v1/auth/mfa/disable",
            json={"password": PASSWORD, "code": "000000"},
            headers=account.headers,
        )
        assert bad_code.status_code == 422
        done = await client.post(
            "/api/v1/auth/mfa/disable",
            json={"password": PASSWORD, "code": code_at(secret, 1)},
            headers=account.headers,
        )
        assert done.status_code == 204
        assert (await login(client, account)).status_code == 200
        again = await client.post(
            "/api/v1/auth/mfa/disable",
            json={"password": PASSWORD, "code": "123456"},
            headers=account.headers,
        )
        assert again.status_code == 409

    async def test_setup_twice_while_enabled_is_a_conflict(self, client: httpx.AsyncClient):
        """MFA on: a new set-up is 409 mfa_enabled (disable first)."""
        account = await register(client)
        await enable_mfa(client, account)
        response = await client.post("/api/v1/auth/mfa/setup", headers=account.headers)
        assert response.status_code == 409


class TestTurningMfaOnEndsOtherSessions:
    """Issue 13: sessions from before MFA was turned on kept working."""

    async def test_other_sessions_end_and_the_one_that_turned_it_on_goes_on(
        self, make_api: ApiFactory
    ):
        """Two API processes on one database: after MFA is turned on in one, the user's
        earlier session is refused at once there and within the auth cache's TTL in the
        other (which had it cached), its refresh token too; the session that turned MFA on
        keeps its access token and can refresh."""
        ttl_s = 1.0
        here = await make_api(auth_cache_ttl_s=ttl_s)
        there = await make_api(auth_cache_ttl_s=ttl_s)
        earlier = await register(here.client)
        again = await login(here.client, earlier)
        assert again.status_code == 200, again.text
        enabling = {"Authorization": f"Bearer {again.json()['access_token']}"}
        me = "/api/v1/users/me"
        assert (await there.client.get(me, headers=earlier.headers)).status_code == 200
        setup = await here.client.post("/api/v1/auth/mfa/setup", headers=enabling)
        verified = await here.client.post(
            "/api/v1/auth/mfa/verify",
            json={"code": pyotp.TOTP(setup.json()["secret"]).now()},
            headers=enabling,
        )
        assert verified.status_code == 200, verified.text

        assert (await here.client.get(me, headers=earlier.headers)).status_code == 401

        async def refused_there() -> bool | None:
            response = await there.client.get(me, headers=earlier.headers)
            return True if response.status_code == 401 else None

        await eventually(refused_there, timeout_s=ttl_s + 2, what="the earlier token refused")
        for app in (here, there):
            refresh = await app.client.post(
                "/api/v1/auth/refresh", json={"refresh_token": earlier.refresh_token}
            )
            assert refresh.status_code == 401, refresh.text
        assert (await there.client.get(me, headers=enabling)).status_code == 200
        renewed = await there.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": again.json()["refresh_token"]}
        )
        assert renewed.status_code == 200, renewed.text
