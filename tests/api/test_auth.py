"""Registration, login, lockout, refresh-token rotation and logout, on both engines."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from linkflow.security.tokens import hash_opaque_token
from linkflow.services.sessions import REUSE_GRACE
from linkflow.store import User, UserSession, utcnow
from tests.api._support import PASSWORD, new_email, register
from tests.api.conftest import Api, ApiFactory


async def past_the_grace(api: Api, refresh_token: str) -> None:
    """Make the rotation of `refresh_token` older than the reuse grace (its replacement time
    is its row's `last_used_at`), as if the grace had passed."""
    async with api.container.database.transaction() as session:
        await session.execute(
            update(UserSession)
            .where(UserSession.refresh_token_hash == hash_opaque_token(refresh_token))
            .values(last_used_at=utcnow() - REUSE_GRACE - timedelta(seconds=1))
        )


class TestRegister:
    async def test_register_returns_user_workspace_and_tokens(self, client: httpx.AsyncClient):
        """201 with the contract's shape; the personal workspace is owned by the new user."""
        email = new_email("Ada")
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": email.upper(), "password": PASSWORD, "name": "Ada"},
        )
        assert response.status_code == 201
        body = response.json()
        assert set(body) >= {
            "user",
            "workspace",
            "access_token",
            "refresh_token",
            "token_type",
            "expires_in",
        }
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 900
        assert body["user"]["email"] == email.lower()
        assert body["workspace"]["is_personal"] is True
        assert body["workspace"]["owner_id"] == body["user"]["id"]
        assert body["workspace"]["role"] == "owner"
        me = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert me.json()["id"] == body["user"]["id"]

    async def test_the_password_is_stored_as_an_argon2id_hash(self, api: Api):
        """No clear text in the database: an Argon2id PHC string."""
        account = await register(api.client)
        async with api.container.database.session() as session:
            user = await session.get(User, uuid.UUID(account.user_id))
        assert user is not None
        assert user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash

    async def test_a_taken_email_is_a_conflict(self, client: httpx.AsyncClient):
        """409 email_taken, whatever the case of the address."""
        account = await register(client)
        response = await client.post(
            "/api/v1/auth/register", json={"email": account.email.upper(), "password": PASSWORD}
        )
        assert response.status_code == 409
        assert response.json()["code"] == "email_taken"

    async def test_weak_passwords_are_refused_with_field_errors(self, client: httpx.AsyncClient):
        """Short, common, sequential and personal passwords: 422 weak_password on body.password."""
        email = new_email("grace")
        for weak in ("short", "password123!", "1234567890", "qwertyuiop", f"{email[:12]}!!x"):
            response = await client.post(
                "/api/v1/auth/register", json={"email": email, "password": weak}
            )
            assert response.status_code == 422, weak
            problem = response.json()
            assert problem["code"] == "weak_password"
            assert problem["errors"][0]["field"] == "body.password"

    async def test_malformed_input_is_a_validation_problem(self, client: httpx.AsyncClient):
        """A missing field or a bad e-mail is 422 validation_error naming the field."""
        response = await client.post("/api/v1/auth/register", json={"email": "not-an-email"})
        assert response.status_code == 422
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["code"] == "validation_error"
        fields = {error["field"] for error in problem["errors"]}
        assert fields == {"body.email", "body.password"}


class TestLogin:
    async def test_login_returns_tokens_and_the_user(self, client: httpx.AsyncClient):
        """Correct e-mail and password: 200 with a working token pair."""
        account = await register(client)
        response = await client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["user"]["id"] == account.user_id
        me = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert me.status_code == 200
        assert me.json()["last_login_at"] is not None

    async def test_unknown_email_and_wrong_password_get_the_same_answer(
        self, client: httpx.AsyncClient
    ):
        """Both are 401 invalid_credentials with the same body: no account enumeration."""
        account = await register(client)
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": "not-the-password"}
        )
        unknown = await client.post(
            "/api/v1/auth/login", json={"email": new_email(), "password": "not-the-password"}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        assert wrong.json()["code"] == "invalid_credentials"
        assert wrong.headers["www-authenticate"].startswith("Bearer")

    async def test_repeated_failures_lock_the_account(self, api: Api):
        """After five wrong passwords even the right one fails the same way, until the lock ends."""
        account = await register(api.client)
        for _ in range(5):
            await api.client.post(
                "/api/v1/auth/login", json={"email": account.email, "password": "wrong-password"}
            )
        locked = await api.client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert locked.status_code == 401
        assert locked.json()["code"] == "invalid_credentials"
        async with api.container.database.session() as session:
            user = await session.get(User, uuid.UUID(account.user_id))
        assert user is not None
        assert user.locked_until is not None
        assert user.locked_until > utcnow() + timedelta(minutes=14)
        # The lock's end is a time in the database: move it into the past.
        async with api.container.database.transaction() as session:
            await session.execute(
                update(User)
                .where(User.id == user.id)
                .values(locked_until=utcnow() - timedelta(seconds=1))
            )
        unlocked = await api.client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert unlocked.status_code == 200

    async def test_a_success_resets_the_failure_count(self, api: Api):
        """Four failures, a success, four failures: not locked."""
        account = await register(api.client)
        for _ in range(2):
            for _ in range(4):
                await api.client.post(
                    "/api/v1/auth/login", json={"email": account.email, "password": "wrong-one!"}
                )
            ok = await api.client.post(
                "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
            )
            assert ok.status_code == 200

    async def test_auth_endpoints_have_their_own_rate_limit(self, make_api: ApiFactory):
        """Past `rate_limit_auth` from one address: 429 with Retry-After."""
        api = await make_api(rate_limit_auth="3/minute")
        body = {"email": new_email(), "password": "whatever-password"}
        statuses = [
            (await api.client.post("/api/v1/auth/login", json=body)).status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 401]
        limited = await api.client.post("/api/v1/auth/login", json=body)
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60


class TestRefreshAndLogout:
    async def test_refresh_rotates_the_pair(self, client: httpx.AsyncClient):
        """A refresh gives a new pair; the new access token works."""
        account = await register(client)
        response = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        assert response.status_code == 200
        pair = response.json()
        assert pair["refresh_token"] != account.refresh_token
        me = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        assert me.status_code == 200

    async def test_replaying_a_used_refresh_token_revokes_the_whole_family(self, api: Api):
        """After the grace, the old token is refused, and every token of that login dies
        with it."""
        account = await register(api.client)
        first = (
            await api.client.post(
                "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
            )
        ).json()
        await past_the_grace(api, account.refresh_token)
        replay = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        assert replay.status_code == 401
        assert replay.json()["code"] == "refresh_token_reused"
        again = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert again.status_code == 401
        for token in (account.access_token, first["access_token"]):
            me = await api.client.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert me.status_code == 401
        async with api.container.database.session() as session:
            rows = (
                await session.scalars(
                    select(UserSession).where(UserSession.user_id == uuid.UUID(account.user_id))
                )
            ).all()
        assert rows
        assert all(row.revoked_at is not None for row in rows)

    async def test_refresh_tokens_are_stored_hashed(self, api: Api):
        """The database holds no refresh token in clear."""
        account = await register(api.client)
        async with api.container.database.session() as session:
            hashes = (
                await session.scalars(
                    select(UserSession.refresh_token_hash).where(
                        UserSession.user_id == uuid.UUID(account.user_id)
                    )
                )
            ).all()
        assert hashes
        assert account.refresh_token not in hashes

    async def test_an_unknown_or_expired_refresh_token_is_refused(self, api: Api):
        """401 invalid_refresh_token for garbage and for a token past its expiry."""
        garbage = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"})
        assert garbage.status_code == 401
        assert garbage.json()["code"] == "invalid_refresh_token"
        account = await register(api.client)
        async with api.container.database.transaction() as session:
            await session.execute(
                update(UserSession)
                .where(UserSession.user_id == uuid.UUID(account.user_id))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        expired = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        assert expired.status_code == 401

    async def test_logout_ends_the_session_at_once(self, client: httpx.AsyncClient):
        """After logout neither the access token nor the refresh token works; others do."""
        account = await register(client)
        other = (
            await client.post(
                "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
            )
        ).json()
        assert (
            await client.post("/api/v1/auth/logout", headers=account.headers)
        ).status_code == 204
        assert (await client.get("/api/v1/users/me", headers=account.headers)).status_code == 401
        refresh = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        assert refresh.status_code == 401
        still = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {other['access_token']}"}
        )
        assert still.status_code == 200

    async def test_logout_needs_authentication(self, client: httpx.AsyncClient):
        """No token: 401 authentication_required."""
        response = await client.post("/api/v1/auth/logout")
        assert response.status_code == 401
        assert response.json()["code"] == "authentication_required"

    async def test_forged_and_malformed_tokens_are_refused(self, client: httpx.AsyncClient):
        """A token signed with another key, garbage, and a non-bearer scheme: 401."""
        import jwt

        account = await register(client)
        claims = jwt.decode(account.access_token, options={"verify_signature": False})
        forged = jwt.encode(claims, "another-key-that-is-long-enough-000000", algorithm="HS256")
        for header in (
            f"Bearer {forged}",
            "Bearer garbage",
            f"Basic {account.access_token}",
            "Bearer lf_short",
        ):
            response = await client.get("/api/v1/users/me", headers={"Authorization": header})
            assert response.status_code == 401, header


class TestTokenKeysAndCache:
    async def test_eddsa_access_tokens_with_a_configured_key_pair(
        self, make_api: ApiFactory, tmp_path
    ):
        """With an Ed25519 key pair configured, tokens are EdDSA-signed and accepted."""
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = ed25519.Ed25519PrivateKey.generate()
        private = tmp_path / "jwt.pem"
        public = tmp_path / "jwt.pub.pem"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        api = await make_api(
            jwt_algorithm="EdDSA", jwt_private_key_file=private, jwt_public_key_file=public
        )
        account = await register(api.client)
        assert jwt.get_unverified_header(account.access_token)["alg"] == "EdDSA"
        me = await api.client.get("/api/v1/users/me", headers=account.headers)
        assert me.status_code == 200

    async def test_a_revocation_beats_the_credential_cache(self, make_api: ApiFactory):
        """A token used (and cached) a moment ago stops working at logout in this process."""
        api = await make_api(auth_cache_ttl_s=30)
        account = await register(api.client)
        assert (await api.client.get("/api/v1/users/me", headers=account.headers)).is_success
        await api.client.post("/api/v1/auth/logout", headers=account.headers)
        assert (
            await api.client.get("/api/v1/users/me", headers=account.headers)
        ).status_code == 401

    async def test_another_process_sees_a_revocation_within_the_cache_ttl(
        self, make_api: ApiFactory
    ):
        """Two apps on one database: with the cache off, the second sees the logout at once."""
        first = await make_api(auth_cache_ttl_s=0)
        second = await make_api(auth_cache_ttl_s=0)
        account = await register(first.client)
        assert (await second.client.get("/api/v1/users/me", headers=account.headers)).is_success
        await first.client.post("/api/v1/auth/logout", headers=account.headers)
        gone = await second.client.get("/api/v1/users/me", headers=account.headers)
        assert gone.status_code == 401


class TestSimultaneousRefreshes:
    """Issue 13: two simultaneous refreshes of one token logged the user out (the loser was
    taken for a reuse and the family revoked)."""

    @staticmethod
    async def refresh(api: Api, token: str) -> httpx.Response:
        return await api.client.post("/api/v1/auth/refresh", json={"refresh_token": token})

    @staticmethod
    async def works(api: Api, access_token: str) -> bool:
        me = await api.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {access_token}"}
        )
        return me.status_code == 200

    async def test_refreshes_in_flight_at_once_all_succeed_and_keep_the_login(
        self, make_api: ApiFactory
    ):
        """Three refreshes of one token at once, through two API processes on one database,
        five rounds: each answers a new pair, every pair works, and the login survives."""
        here, there = await make_api(), await make_api()
        account = await register(here.client)
        token = account.refresh_token
        for _ in range(5):
            answers = await asyncio.gather(
                self.refresh(here, token), self.refresh(there, token), self.refresh(here, token)
            )
            assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
            pairs = [a.json() for a in answers]
            assert len({pair["refresh_token"] for pair in pairs}) == 3
            for pair in pairs:
                assert await self.works(there, pair["access_token"])
            token = pairs[0]["refresh_token"]
        assert (await self.refresh(here, pairs[1]["refresh_token"])).status_code == 200

    async def test_a_retry_within_seconds_gets_a_pair(self, api: Api):
        """A client that lost the answer and sends the same token again gets a new pair; both
        pairs go on working."""
        account = await register(api.client)
        first = await self.refresh(api, account.refresh_token)
        retry = await self.refresh(api, account.refresh_token)
        assert (first.status_code, retry.status_code) == (200, 200), retry.text
        for pair in (first.json(), retry.json()):
            assert await self.works(api, pair["access_token"])
            assert (await self.refresh(api, pair["refresh_token"])).status_code == 200

    async def test_reuse_after_the_grace_still_revokes_the_family(self, api: Api):
        """Past `REUSE_GRACE`, the old token is `refresh_token_reused` and the whole login,
        its newest pair included, dies."""
        account = await register(api.client)
        newest = (await self.refresh(api, account.refresh_token)).json()
        await past_the_grace(api, account.refresh_token)
        late = await self.refresh(api, account.refresh_token)
        assert (late.status_code, late.json()["code"]) == (401, "refresh_token_reused")
        assert not await self.works(api, newest["access_token"])
        assert (await self.refresh(api, newest["refresh_token"])).status_code == 401

    async def test_reuse_after_the_successor_was_used_revokes_the_family(self, api: Api):
        """Within the grace but after its successor was itself refreshed, the old token is a
        leaked one: `refresh_token_reused`, the login dies."""
        account = await register(api.client)
        successor = (await self.refresh(api, account.refresh_token)).json()
        third = (await self.refresh(api, successor["refresh_token"])).json()
        late = await self.refresh(api, account.refresh_token)
        assert (late.status_code, late.json()["code"]) == (401, "refresh_token_reused")
        assert not await self.works(api, third["access_token"])

    async def test_a_logged_out_token_gets_nothing_in_the_grace(self, api: Api):
        """Logout inside the grace: the rotated token is refused like the rest."""
        account = await register(api.client)
        pair = (await self.refresh(api, account.refresh_token)).json()
        out = await api.client.post(
            "/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        assert out.status_code == 204, out.text
        late = await self.refresh(api, account.refresh_token)
        assert late.status_code == 401
