"""Forgotten passwords: single-use, expiring reset tokens sent by e-mail.

Invariants:
- `request_reset` answers the same whatever the e-mail (the endpoint says
  202 either way); only an existing, live account gets a token, and only the
  newest token of an account works (asking again voids the older ones).
- Only the token's SHA-256 is stored. Using it is a conditional UPDATE of
  `used_at`, so two concurrent resets with one token cannot both succeed.
- A reset sets the new password, clears the lockout and revokes every login
  session of the account.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from linkflow.security.passwords import Passwords
from linkflow.security.tokens import hash_opaque_token, new_opaque_token
from linkflow.services.accounts import check_new_password
from linkflow.services.audit import record
from linkflow.services.auth_cache import AuthCache
from linkflow.services.context import Actor, RequestInfo
from linkflow.services.errors import Invalid
from linkflow.services.mail import Email
from linkflow.services.sessions import Sessions
from linkflow.store import Database, PasswordResetToken, User, UserRepository, utcnow

__all__ = ["PasswordReset"]


def _bad_token() -> Invalid:
    return Invalid("the reset token is invalid, used or expired", code="invalid_reset_token")


class PasswordReset:
    def __init__(
        self,
        database: Database,
        passwords: Passwords,
        ttl: timedelta,
        public_url: str,
        cache: AuthCache,
    ) -> None:
        self.database = database
        self.cache = cache
        self.passwords = passwords
        self.ttl = ttl
        self.public_url = public_url.rstrip("/")

    async def request_reset(self, email: str, request: RequestInfo) -> Email | None:
        """The e-mail to send for `email`, or None when there is no such account."""
        token = new_opaque_token()
        async with self.database.transaction() as session:
            user = await UserRepository(session).get_by_email(email)
            if user is None:
                return None
            await session.execute(
                delete(PasswordResetToken).where(
                    PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None)
                )
            )
            session.add(
                PasswordResetToken(
                    user_id=user.id,
                    token_hash=hash_opaque_token(token),
                    expires_at=utcnow() + self.ttl,
                    ip_address=request.ip,
                )
            )
        minutes = int(self.ttl.total_seconds() // 60)
        text = (
            f"Someone asked to reset the password of your LinkFlow account ({user.email}).\n\n"
            f"Open this link within {minutes} minutes to choose a new password:\n"
            f"{self.public_url}/reset-password?token={token}\n\n"
            f"or send this token to POST /api/v1/auth/reset-password:\n{token}\n\n"
            "If it was not you, ignore this e-mail: your password stays as it is.\n"
        )
        return Email(to=user.email, subject="Reset your LinkFlow password", text=text)

    async def reset(self, token: str, new_password: str, request: RequestInfo) -> None:
        token_hash = hash_opaque_token(token)
        async with self.database.session() as session:
            found = (
                await session.execute(
                    select(PasswordResetToken, User)
                    .join(User, User.id == PasswordResetToken.user_id)
                    .where(PasswordResetToken.token_hash == token_hash, User.deleted_at.is_(None))
                )
            ).one_or_none()
        if found is None:
            raise _bad_token()
        row, user = found
        if row.used_at is not None or row.expires_at <= utcnow():
            raise _bad_token()
        check_new_password(new_password, email=user.email, name=user.name)
        password_hash = await self.passwords.hash(new_password)
        async with self.database.transaction() as session:
            claimed = await session.execute(
                update(PasswordResetToken)
                .where(
                    PasswordResetToken.id == row.id,
                    PasswordResetToken.used_at.is_(None),
                    PasswordResetToken.expires_at > utcnow(),
                )
                .values(used_at=utcnow())
                .returning(PasswordResetToken.id)
            )
            if claimed.first() is None:
                raise _bad_token()
            await session.execute(
                update(User)
                .where(User.id == user.id)
                .values(password_hash=password_hash, failed_logins=0, locked_until=None)
            )
            await Sessions.revoke_all(session, user.id)
            actor = Actor(user_id=user.id, api_key_id=None, request=request)
            await record(
                session, actor, "user.password_reset", "user", user.id, new={"password": "changed"}
            )
        self.cache.clear()
