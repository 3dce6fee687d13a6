"""`/api/v1/auth/oauth/{provider}`: log in with GitHub, Google or a configured OIDC provider.

The first endpoint redirects the browser to the provider and sets a signed,
HttpOnly state cookie (SameSite=Lax, so it comes back on the provider's
redirect); the callback checks it, finishes the login and answers with the
same body as `/auth/login`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from linkflow.api.deps import AuthRateLimit, Request_, Services
from linkflow.api.json_body import JSONRoute
from linkflow.api.routes.auth import LoginOut
from linkflow.api.schemas import UserOut
from linkflow.services.errors import Unauthorized
from linkflow.services.oauth import STATE_COOKIE, STATE_TTL

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/auth/oauth", tags=["auth"])
_COOKIE_PATH = "/api/v1/auth/oauth"
Provider = Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,32}$")]


@router.get(
    "/{provider}",
    status_code=302,
    response_class=RedirectResponse,
    dependencies=[AuthRateLimit],
    responses={302: {"description": "Redirect to the provider's login page."}},
)
async def oauth_start(provider: Provider, request: Request, services: Services) -> RedirectResponse:
    """Start logging in with `provider`."""
    start = await services.oauth.start(provider)
    response = RedirectResponse(start.authorize_url, status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        start.state_cookie,
        max_age=int(STATE_TTL.total_seconds()),
        path=_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/{provider}/callback", dependencies=[AuthRateLimit])
async def oauth_callback(
    provider: Provider,
    services: Services,
    info: Request_,
    response: Response,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
    state_cookie: Annotated[str | None, Cookie(alias=STATE_COOKIE)] = None,
) -> LoginOut:
    """Where the provider sends the browser back; answers like `/auth/login`."""
    if error is not None or code is None or state is None:
        reason = error_description or error or "the provider sent no code"
        raise Unauthorized(f"OAuth login failed: {reason}", code="oauth_failed")
    user, tokens = await services.oauth.finish(provider, code, state, state_cookie, info)
    response.delete_cookie(STATE_COOKIE, path=_COOKIE_PATH, httponly=True, samesite="lax")
    return LoginOut(
        user=UserOut.model_validate(user),
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )
