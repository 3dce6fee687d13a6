"""Accounts: registration, login with lockout and MFA, the MFA challenge, logout.

Invariants:
- An unknown e-mail, a wrong password, a locked account and an account
  without a password (OAuth only) all get the same `invalid_credentials`
  answer after the same Argon2 work, so responses do not reveal which.
- `login_max_failures` wrong passwords (or MFA codes) in a row lock the
  account for `login_lockout_s`; the counter restarts at each lock and on
  success. Counting is one UPDATE, so concurrent attempts all count.
- With MFA on, a correct password alone yields 401 `mfa_required` with a
  short-lived `mfa_token`; the code comes either with the login or with the
  token to `complete_mfa`. The final check re-reads the user under a row
  lock, so a TOTP step or recovery code is used at most once.
- The first account registered on an instance is its platform admin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError

from linkflow.security.passwords import Passwords, password_problems
from linkflow.security.tokens import InvalidToken, SignedTokens
from linkflow.services.audit import record
from linkflow.services.context import Actor, RequestInfo
from linkflow.services.errors import Conflict, FieldProblem, Forbidden, Invalid, Unauthorized
from linkflow.services.mfa import SecondFactor
from linkflow.services.sessions import IssuedTokens, Sessions
from linkflow.services.workspaces import create_workspace
from linkflow.store import Database, User, UserRepository, Workspace, utcnow

__all__ = ["Accounts", "LoginPolicy", "Registered", "check_new_password"]

MFA_TOKEN_TTL: Final = timedelta(minutes=5)
USER_FIELDS: Final = ("email", "name", "is_admin")


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int
    lockout: timedelta


@dataclass(frozen=True, slots=True)
class Registered:
    user: User
    workspace: Workspace
    tokens: IssuedTokens


def check_new_password(password: str, *, email: str, name: str) -> None:
    """`Invalid` (code `weak_password`) naming every problem with a new password."""
    problems = password_problems(password, email=email, name=name)
    if problems:
        raise Invalid(
            "the password is too weak: " + "; ".join(problems),
            code="weak_password",
            errors=[
                FieldProblem("body.password", problem, "weak_password") for problem in problems
            ],
        )


def _invalid_credentials() -> Unauthorized:
    return Unauthorized("the e-mail or password is wrong", code="invalid_credentials")


class Accounts:
    """Registration and login."""

    def __init__(
        self,
        database: Database,
        passwords: Passwords,
        sessions: Sessions,
        second_factor: SecondFactor,
        signed: SignedTokens,
        policy: LoginPolicy,
    ) -> None:
        self.database = database
        self.passwords = passwords
        self.sessions = sessions
        self.second_factor = second_factor
        self.signed = signed
        self.policy = policy

    async def register(
        self, email: str, password: str, name: str, request: RequestInfo
    ) -> Registered:
        email = email.strip().lower()
        check_new_password(password, email=email, name=name)
        password_hash = await self.passwords.hash(password)
        try:
            async with self.database.transaction() as session:
                if await UserRepository(session).get_by_email(email) is not None:
                    raise Conflict("an account with this e-mail exists", code="email_taken")
                first = await session.scalar(select(User.id).limit(1)) is None
                user = User(email=email, password_hash=password_hash, name=name, is_admin=first)
                session.add(user)
                await session.flush()
                actor = Actor(user_id=user.id, api_key_id=None, request=request)
                await record(
                    session,
                    actor,
                    "user.created",
                    "user",
                    user.id,
                    new={field: getattr(user, field) for field in USER_FIELDS},
                )
                label = name or email.partition("@")[0]
                workspace = await create_workspace(
                    session, user, f"{label}'s workspace", actor, personal=True
                )
                _, tokens = await self.sessions.start(session, user.id, request)
        except IntegrityError:  # a concurrent registration took the e-mail
            raise Conflict("an account with this e-mail exists", code="email_taken") from None
        return Registered(user=user, workspace=workspace, tokens=tokens)

    async def login(
        self, email: str, password: str, mfa_code: str | None, request: RequestInfo
    ) -> tuple[User, IssuedTokens]:
        async with self.database.session() as session:
            user = await UserRepository(session).get_by_email(email)
        locked = user is not None and user.locked_until is not None and user.locked_until > utcnow()
        if user is None or user.password_hash is None or locked:
            await self.passwords.verify(None, password)
            raise _invalid_credentials()
        if not await self.passwords.verify(user.password_hash, password):
            await self._count_failure(user.id)
            raise _invalid_credentials()
        new_hash = None
        if self.passwords.needs_rehash(user.password_hash):
            new_hash = await self.passwords.hash(password)
        if user.mfa_enabled and not mfa_code:
            raise self.mfa_required(user.id)
        return await self._complete(user.id, mfa_code, request, new_hash=new_hash)

    def mfa_required(self, user_id: uuid.UUID) -> Unauthorized:
        """The 401 that asks for a second factor, carrying a token to send back with it."""
        token = self.signed.issue("mfa", {"sub": str(user_id)}, MFA_TOKEN_TTL)
        return Unauthorized(
            "this account uses two-factor authentication: send the code",
            code="mfa_required",
            extra={"mfa_token": token},
        )

    async def complete_mfa(
        self, mfa_token: str, code: str, request: RequestInfo
    ) -> tuple[User, IssuedTokens]:
        """Finish a login that answered `mfa_required`, with a TOTP or recovery code."""
        try:
            user_id = uuid.UUID(self.signed.read("mfa", mfa_token)["sub"])
        except (InvalidToken, KeyError, ValueError):
            raise Unauthorized(
                "the MFA token is invalid or expired: log in again", code="invalid_mfa_token"
            ) from None
        return await self._complete(user_id, code, request)

    async def start_session(self, user_id: uuid.UUID, request: RequestInfo) -> IssuedTokens:
        """A session for a user authenticated elsewhere (OAuth), MFA permitting."""
        return (await self._complete(user_id, None, request, allow_mfa=False))[1]

    async def _complete(
        self,
        user_id: uuid.UUID,
        mfa_code: str | None,
        request: RequestInfo,
        *,
        new_hash: str | None = None,
        allow_mfa: bool = True,
    ) -> tuple[User, IssuedTokens]:
        wrong_code = False
        async with self.database.transaction() as session:
            statement = select(User).where(User.id == user_id, User.deleted_at.is_(None))
            user = (await session.scalars(statement.with_for_update())).one_or_none()
            if user is None or (user.locked_until is not None and user.locked_until > utcnow()):
                raise _invalid_credentials()
            if user.suspended_at is not None:  # told only to whoever knows the password
                raise Forbidden("this account is suspended by an administrator",
                                code="account_suspended")  # fmt: skip
            if user.mfa_enabled:
                if not allow_mfa or not mfa_code:
                    raise self.mfa_required(user.id)
                wrong_code = not self.second_factor.consume(user, mfa_code)
            if not wrong_code:
                user.failed_logins = 0
                user.locked_until = None
                user.last_login_at = utcnow()
                if new_hash is not None:
                    user.password_hash = new_hash
                _, tokens = await self.sessions.start(session, user.id, request)
        if wrong_code:
            await self._count_failure(user_id)
            raise Unauthorized("the two-factor code is wrong or used", code="invalid_mfa_code")
        return user, tokens

    async def _count_failure(self, user_id: uuid.UUID) -> None:
        reached = User.failed_logins + 1 >= self.policy.max_failures
        async with self.database.transaction() as session:
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    failed_logins=case((reached, 0), else_=User.failed_logins + 1),
                    locked_until=case(
                        (reached, utcnow() + self.policy.lockout), else_=User.locked_until
                    ),
                )
            )
