"""`/api/v1/auth`: register, login (with MFA), refresh, logout, password reset, MFA.

Public endpoints here (everything but logout and MFA set-up) count against
the stricter per-address auth rate limit. E-mails go out in the background
after the answer, so the time to answer `forgot-password` does not tell
whether the account exists.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Response
from pydantic import BaseModel, Field, StringConstraints

from linkflow.api.deps import AuthRateLimit, CurrentActor, CurrentPrincipal, Request_, Services
from linkflow.api.json_body import JSONRoute
from linkflow.api.schemas import EmailAddress, Name, Password, TokensOut, UserOut, WorkspaceOut
from linkflow.services.mail import send_in_background

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/auth", tags=["auth"])

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=32)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class RegisterIn(BaseModel):
    email: EmailAddress
    password: Password
    name: Name = ""


class RegisterOut(TokensOut):
    user: UserOut
    workspace: WorkspaceOut


class LoginIn(BaseModel):
    email: EmailAddress
    password: Password
    mfa_code: Code | None = Field(default=None, description="TOTP or recovery code, if MFA is on.")


class LoginOut(TokensOut):
    user: UserOut


class MfaChallengeIn(BaseModel):
    mfa_token: Token = Field(description="From the `mfa_required` problem.")
    code: Code


class RefreshIn(BaseModel):
    refresh_token: Token


class ForgotIn(BaseModel):
    email: EmailAddress


class AcceptedOut(BaseModel):
    detail: str


class ResetIn(BaseModel):
    token: Token
    password: Password


class MfaSetupOut(BaseModel):
    secret: str = Field(description="Base32 TOTP secret, shown once.")
    otpauth_uri: str = Field(description="For a QR code in an authenticator app.")


class MfaVerifyIn(BaseModel):
    code: Code


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Ten single-use codes, shown once.")


class MfaDisableIn(BaseModel):
    password: Password
    code: Code


@router.post("/register", status_code=201, dependencies=[AuthRateLimit])
async def register(body: RegisterIn, services: Services, info: Request_) -> RegisterOut:
    """Create an account and its personal workspace, and log in."""
    done = await services.accounts.register(body.email, body.password, body.name, info)
    workspace = WorkspaceOut.model_validate(done.workspace).model_copy(update={"role": "owner"})
    return RegisterOut(
        user=UserOut.model_validate(done.user),
        workspace=workspace,
        access_token=done.tokens.access_token,
        refresh_token=done.tokens.refresh_token,
        expires_in=done.tokens.expires_in,
    )


@router.post("/login", dependencies=[AuthRateLimit])
async def login(body: LoginIn, services: Services, info: Request_) -> LoginOut:
    """Exchange e-mail and password (and MFA code) for tokens.

    With MFA on and no code: 401 `mfa_required`, with an `mfa_token` for
    `/auth/mfa/challenge`.
    """
    user, tokens = await services.accounts.login(body.email, body.password, body.mfa_code, info)
    return LoginOut(
        user=UserOut.model_validate(user),
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


@router.post("/mfa/challenge", dependencies=[AuthRateLimit])
async def mfa_challenge(body: MfaChallengeIn, services: Services, info: Request_) -> LoginOut:
    """Finish a login that answered `mfa_required`."""
    user, tokens = await services.accounts.complete_mfa(body.mfa_token, body.code, info)
    return LoginOut(
        user=UserOut.model_validate(user),
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


@router.post("/refresh", dependencies=[AuthRateLimit])
async def refresh(body: RefreshIn, services: Services, info: Request_) -> TokensOut:
    """Rotate: a new token pair; the presented refresh token dies, and replaying it later
    revokes the whole session."""
    tokens = await services.sessions.refresh(body.refresh_token, info)
    return TokensOut(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


@router.post("/logout", status_code=204)
async def logout(principal: CurrentPrincipal, services: Services) -> Response:
    """End this login session: its refresh token and access tokens stop working."""
    principal.require_user_session()
    assert principal.session_id is not None
    await services.sessions.logout(principal.session_id)
    return Response(status_code=204)


@router.post("/forgot-password", status_code=202, dependencies=[AuthRateLimit])
async def forgot_password(
    body: ForgotIn, services: Services, info: Request_, background: BackgroundTasks
) -> AcceptedOut:
    """E-mail a reset link if the account exists; the answer is the same either way."""
    email = await services.password_reset.request_reset(body.email, info)
    if email is not None:
        background.add_task(send_in_background, services.mailer, email)
    return AcceptedOut(detail="if the account exists, a reset link is on its way")


@router.post("/reset-password", status_code=204, dependencies=[AuthRateLimit])
async def reset_password(body: ResetIn, services: Services, info: Request_) -> Response:
    """Set a new password with the e-mailed token; every session of the account ends."""
    await services.password_reset.reset(body.token, body.password, info)
    return Response(status_code=204)


@router.post("/mfa/setup")
async def mfa_setup(
    principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> MfaSetupOut:
    """Start MFA set-up: a new TOTP secret. MFA is on only after `/mfa/verify`."""
    setup = await services.mfa.setup(principal, actor)
    return MfaSetupOut(secret=setup.secret, otpauth_uri=setup.otpauth_uri)


@router.post("/mfa/verify")
async def mfa_verify(
    body: MfaVerifyIn, principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> RecoveryCodesOut:
    """Turn MFA on with a first code from the app; returns the recovery codes."""
    return RecoveryCodesOut(recovery_codes=await services.mfa.verify(principal, actor, body.code))


@router.post("/mfa/disable", status_code=204)
async def mfa_disable(
    body: MfaDisableIn, principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> Response:
    """Turn MFA off; needs the password and a current code."""
    await services.mfa.disable(principal, actor, body.password, body.code)
    return Response(status_code=204)
