"""Two-factor authentication: TOTP set-up, activation, use, recovery codes, removal.

Invariants:
- The TOTP secret is stored sealed by the secret box, bound to its user
  (associated data ``user:<id>:mfa``), and is shown once, at set-up.
- Set-up alone changes nothing at login: MFA is on only after a first valid
  code (`verify`), which also returns the 10 recovery codes, once; only
  their hashes are kept.
- `SecondFactor.consume` accepts a TOTP code newer than the last accepted
  step, or an unused recovery code, and records the use on the user row;
  the caller holds that row locked and commits.
- Turning MFA on ends every other session of the user (their refresh tokens
  are revoked, and with them their access tokens: at once in this process,
  within the auth cache's TTL in others); the session that turned it on goes on.
- Disabling needs the password and a current code.
"""

from __future__ import annotations

from dataclasses import dataclass

from linkflow.security import totp
from linkflow.security.passwords import Passwords
from linkflow.security.secretbox import SecretBox, SecretBoxError
from linkflow.services.audit import record
from linkflow.services.auth_cache import AuthCache
from linkflow.services.context import Actor, Principal
from linkflow.services.errors import Conflict, Invalid, Unauthorized
from linkflow.services.sessions import Sessions
from linkflow.store import Database, User

__all__ = ["Mfa", "MfaSetup", "SecondFactor"]


@dataclass(frozen=True, slots=True)
class MfaSetup:
    secret: str
    otpauth_uri: str


def _aad(user: User) -> bytes:
    return f"user:{user.id}:mfa".encode()


class SecondFactor:
    """Checks and records second-factor codes against a user row."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box

    def secret_of(self, user: User) -> str | None:
        if user.mfa_secret_encrypted is None:
            return None
        try:
            return self.box.open(user.mfa_secret_encrypted, _aad(user)).decode()
        except SecretBoxError:
            return None

    def seal(self, user: User, secret: str) -> bytes:
        return self.box.seal(secret.encode(), _aad(user))

    def consume(self, user: User, code: str) -> bool:
        """Whether `code` is a fresh TOTP or an unused recovery code; records its use."""
        secret = self.secret_of(user)
        if secret is not None:
            step = totp.verify_totp(secret, code, after_step=user.mfa_last_step)
            if step is not None:
                user.mfa_last_step = step
                return True
        hashes = user.mfa_recovery_codes if isinstance(user.mfa_recovery_codes, list) else []
        wanted = totp.hash_recovery_code(code)
        if wanted in hashes:
            user.mfa_recovery_codes = [value for value in hashes if value != wanted]
            return True
        return False


class Mfa:
    """The MFA endpoints' use cases, for the logged-in user."""

    def __init__(
        self,
        database: Database,
        passwords: Passwords,
        second_factor: SecondFactor,
        issuer: str,
        cache: AuthCache,
    ) -> None:
        self.database = database
        self.cache = cache
        self.passwords = passwords
        self.second_factor = second_factor
        self.issuer = issuer

    async def setup(self, principal: Principal, actor: Actor) -> MfaSetup:
        """A new secret, stored sealed but inactive until `verify`."""
        principal.require_user_session()
        secret = totp.new_totp_secret()
        async with self.database.transaction() as session:
            user = await session.get(User, principal.user_id, with_for_update=True)
            if user is None:
                raise Unauthorized("the account no longer exists", code="invalid_token")
            if user.mfa_enabled:
                raise Conflict("two-factor authentication is already on", code="mfa_enabled")
            user.mfa_secret_encrypted = self.second_factor.seal(user, secret)
            user.mfa_last_step = None
            await record(
                session, actor, "user.mfa_setup", "user", user.id, new={"mfa_enabled": False}
            )
        self.cache.clear()
        return MfaSetup(secret, totp.provisioning_uri(secret, user.email, self.issuer))

    async def verify(self, principal: Principal, actor: Actor, code: str) -> list[str]:
        """Turn MFA on with a first valid code; returns the recovery codes (shown once)."""
        principal.require_user_session()
        codes = totp.new_recovery_codes()
        async with self.database.transaction() as session:
            user = await session.get(User, principal.user_id, with_for_update=True)
            if user is None:
                raise Unauthorized("the account no longer exists", code="invalid_token")
            if user.mfa_enabled:
                raise Conflict("two-factor authentication is already on", code="mfa_enabled")
            secret = self.second_factor.secret_of(user)
            if secret is None:
                raise Conflict("call /auth/mfa/setup first", code="mfa_not_set_up")
            step = totp.verify_totp(secret, code, after_step=user.mfa_last_step)
            if step is None:
                raise Invalid("the code is wrong or expired", code="invalid_mfa_code")
            user.mfa_enabled = True
            user.mfa_last_step = step
            user.mfa_recovery_codes = [totp.hash_recovery_code(value) for value in codes]
            if principal.session_id is None:
                await Sessions.revoke_all(session, user.id)
            else:
                await Sessions.revoke_others(session, user.id, principal.session_id)
            await record(
                session,
                actor,
                "user.mfa_enabled",
                "user",
                user.id,
                old={"mfa_enabled": False},
                new={"mfa_enabled": True},
            )
        self.cache.clear()
        return codes

    async def disable(self, principal: Principal, actor: Actor, password: str, code: str) -> None:
        principal.require_user_session()
        if not await self.passwords.verify(principal.user.password_hash, password):
            raise Invalid("the password is wrong", code="invalid_password")
        async with self.database.transaction() as session:
            user = await session.get(User, principal.user_id, with_for_update=True)
            if user is None:
                raise Unauthorized("the account no longer exists", code="invalid_token")
            if not user.mfa_enabled:
                raise Conflict("two-factor authentication is off", code="mfa_not_enabled")
            if not self.second_factor.consume(user, code):
                raise Invalid("the code is wrong or used", code="invalid_mfa_code")
            user.mfa_enabled = False
            user.mfa_secret_encrypted = None
            user.mfa_recovery_codes = []
            user.mfa_last_step = None
            await record(
                session,
                actor,
                "user.mfa_disabled",
                "user",
                user.id,
                old={"mfa_enabled": True},
                new={"mfa_enabled": False},
            )
        self.cache.clear()
