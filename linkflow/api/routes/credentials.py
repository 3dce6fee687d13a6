"""`/api/v1/credentials`: typed secrets for nodes; secret fields are write-only.

Reads show secret fields as ``"••••••"`` (null when unset); an update merges
into the stored fields, keeping any secret it omits or sends back masked.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from linkflow.api.deps import CurrentActor, CurrentWorkspace, Paging
from linkflow.api.json_body import JSONRoute
from linkflow.api.schemas import ListOf
from linkflow.services.credentials import Credentials as CredentialService
from linkflow.services.credentials import CredentialView

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/credentials", tags=["credentials"])


def get_credentials(request: Request) -> CredentialService:
    """The service, from the execution plane (`Plane.credentials`)."""
    return cast(CredentialService, request.app.state.plane.credentials)


Credentials = Annotated[CredentialService, Depends(get_credentials)]

CredentialName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)
]
TypeName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_DATA_DESCRIPTION = "The type's fields (see `GET /credentials/types`)."


class CredentialIn(BaseModel):
    name: CredentialName = Field(examples=["GitHub"])
    type: TypeName = Field(examples=["bearer"])
    data: dict[str, Any] = Field(description=_DATA_DESCRIPTION, examples=[{"token": "ghp_..."}])


class CredentialUpdate(BaseModel):
    name: CredentialName | None = None
    type: TypeName | None = Field(default=None, description="If given, must be the current type.")
    data: dict[str, Any] | None = Field(
        default=None,
        description="Merged into the stored fields: omitted fields, and secrets sent back "
        'as "••••••", keep their value; null clears a field.',
    )


class CredentialOut(BaseModel):
    id: uuid.UUID
    name: str
    type: str
    data: dict[str, Any] = Field(description='Secret fields read "••••••" (null when unset).')
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, view: CredentialView) -> CredentialOut:
        return cls(
            id=view.id, name=view.name, type=view.type, data=view.data,
            created_at=view.created_at, updated_at=view.updated_at,
            last_used_at=view.last_used_at,
        )  # fmt: skip


class CredentialTypeOut(BaseModel):
    name: str
    display_name: str
    description: str
    secret_fields: list[str]
    json_schema: dict[str, Any] = Field(description="The JSON Schema of `data`.")


class CredentialTestOut(BaseModel):
    ok: bool
    message: str


@router.get("/types")
async def list_credential_types(
    access: CurrentWorkspace, credentials: Credentials
) -> list[CredentialTypeOut]:
    """Every credential type, with the JSON Schema of its `data`."""
    return [
        CredentialTypeOut(
            name=kind.name,
            display_name=kind.display_name,
            description=kind.description,
            secret_fields=sorted(kind.secret_fields),
            json_schema=kind.json_schema(),
        )
        for kind in credentials.types(access)
    ]


@router.get("")
async def list_credentials(
    access: CurrentWorkspace, credentials: Credentials, paging: Paging
) -> ListOf[CredentialOut]:
    """This workspace's credentials, newest first, secrets masked."""
    page = await credentials.list(access, limit=paging.limit, cursor=paging.cursor)
    return ListOf[CredentialOut](
        data=[CredentialOut.of(view) for view in page.items], next_cursor=page.next_cursor
    )


@router.post("", status_code=201)
async def create_credential(
    body: CredentialIn, access: CurrentWorkspace, actor: CurrentActor, credentials: Credentials
) -> CredentialOut:
    """A new credential (needs `credentials:write`); the answer masks its secrets."""
    view = await credentials.create(access, actor, name=body.name, type=body.type, data=body.data)
    return CredentialOut.of(view)


@router.get("/{credential_id}")
async def get_credential(
    credential_id: uuid.UUID, access: CurrentWorkspace, credentials: Credentials
) -> CredentialOut:
    return CredentialOut.of(await credentials.get(access, credential_id))


@router.put("/{credential_id}")
async def update_credential(
    credential_id: uuid.UUID, body: CredentialUpdate, access: CurrentWorkspace,
    actor: CurrentActor, credentials: Credentials,
) -> CredentialOut:  # fmt: skip
    view = await credentials.update(
        access, actor, credential_id, name=body.name, type=body.type, data=body.data
    )
    return CredentialOut.of(view)


@router.delete("/{credential_id}", status_code=204)
async def delete_credential(
    credential_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor,
    credentials: Credentials,
) -> Response:  # fmt: skip
    await credentials.delete(access, actor, credential_id)
    return Response(status_code=204)


@router.post("/{credential_id}/test")
async def test_credential(
    credential_id: uuid.UUID, access: CurrentWorkspace, credentials: Credentials
) -> CredentialTestOut:
    """Run the type's check. A failing check is 200 with `ok: false` and the reason."""
    result = await credentials.test(access, credential_id)
    return CredentialTestOut(ok=result.ok, message=result.message)
