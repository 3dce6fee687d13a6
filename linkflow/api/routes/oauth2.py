"""`/api/v1/credentials/oauth2`: connect a credential through the provider's consent screen.

`GET /{type}/authorize` (authenticated, `credentials:write`) answers 302 to the
provider's authorize URL, with a single-use `state` and a PKCE challenge; with
`?response=json` it answers `{"authorization_url": ...}` instead, for a UI that
navigates itself. The provider sends the browser back to `GET /callback`, which
needs no login (the state says who started): it stores the tokens sealed and
answers the credential (masked), or 302 to `LINKFLOW_OAUTH2_CONNECT_REDIRECT_URL`
with `?credential_id=`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from linkflow.api.deps import AuthRateLimit, CurrentWorkspace, Request_
from linkflow.api.json_body import JSONRoute
from linkflow.api.routes.credentials import CredentialName, CredentialOut
from linkflow.services.errors import Unavailable
from linkflow.services.oauth2_connect import OAuth2Connect

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/credentials/oauth2", tags=["credentials"])


def get_connect(request: Request) -> OAuth2Connect:
    """The service, from the execution plane (`Plane.oauth2`)."""
    connect = getattr(request.app.state.plane, "oauth2", None)
    if connect is None:
        raise Unavailable("connecting OAuth2 credentials is not set up in this process")
    return cast(OAuth2Connect, connect)


Connect = Annotated[OAuth2Connect, Depends(get_connect)]
TypeName = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,64}$")]


class AuthorizationOut(BaseModel):
    authorization_url: str


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query))


@router.get(
    "/{credential_type}/authorize",
    status_code=302,
    response_model=None,
    responses={
        302: {"description": "Redirect to the provider's consent screen."},
        200: {"model": AuthorizationOut, "description": "With `response=json`."},
    },
)
async def authorize_credential(
    credential_type: TypeName,
    access: CurrentWorkspace,
    connect: Connect,
    name: Annotated[CredentialName | None, Query(description="A new credential's name.")] = None,
    credential_id: Annotated[
        uuid.UUID | None, Query(description="The credential to reconnect.")
    ] = None,
    response: Annotated[
        Literal["redirect", "json"], Query(description="`json`: the URL in a body.")
    ] = "redirect",
) -> Response:
    """Start connecting a `credential_type` credential (needs `credentials:write`)."""
    url = await connect.authorize(access, credential_type, name=name, credential_id=credential_id)
    if response == "json":
        return JSONResponse(AuthorizationOut(authorization_url=url).model_dump())
    return RedirectResponse(url, status_code=302)


@router.get(
    "/callback",
    dependencies=[AuthRateLimit],
    response_model=None,
    responses={
        200: {"model": CredentialOut, "description": "The connected credential, masked."},
        302: {"description": "To the configured UI page, with `credential_id`."},
    },
)
async def oauth2_callback(
    info: Request_,
    connect: Connect,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """Where the provider sends the browser back: the tokens are stored sealed."""
    view = await connect.callback(
        info, state=state, code=code, error=error, error_description=error_description
    )
    if connect.done_url is not None:
        return RedirectResponse(_with_query(connect.done_url, credential_id=str(view.id)), 302)
    return JSONResponse(CredentialOut.of(view).model_dump(mode="json"))
