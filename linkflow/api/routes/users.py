"""`/api/v1/users`: one's own profile, fellow members, and the admin list."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from linkflow.api.deps import CurrentActor, CurrentPrincipal, Paging, Services
from linkflow.api.json_body import JSONRoute
from linkflow.api.schemas import EmailAddress, ListOf, Name, Password, PublicUserOut, UserOut
from linkflow.services.users import ProfileChange

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/users", tags=["users"])


class ProfileIn(BaseModel):
    name: Name | None = None
    email: EmailAddress | None = None
    new_password: Password | None = None
    current_password: Password | None = Field(
        default=None, description="Required to change the e-mail or password."
    )


@router.get("/me")
async def get_me(principal: CurrentPrincipal) -> UserOut:
    """The caller (for an API key: the user who created it)."""
    return UserOut.model_validate(principal.user)


@router.put("/me")
async def update_me(
    body: ProfileIn, principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> UserOut:
    """Change name, e-mail or password (the latter two need `current_password`)."""
    change = ProfileChange(
        name=body.name,
        email=body.email,
        new_password=body.new_password,
        current_password=body.current_password,
    )
    return UserOut.model_validate(await services.users.update_me(principal, actor, change))


@router.get("")
async def list_users(
    principal: CurrentPrincipal,
    services: Services,
    paging: Paging,
    email: Annotated[EmailAddress | None, Query()] = None,
) -> ListOf[UserOut]:
    """Every user of the instance (platform admins only)."""
    page = await services.users.list_all(
        principal, limit=paging.limit, cursor=paging.cursor, email=email
    )
    return ListOf[UserOut](
        data=[UserOut.model_validate(user) for user in page.items], next_cursor=page.next_cursor
    )


@router.get("/{user_id}")
async def get_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, services: Services
) -> PublicUserOut:
    """Someone you share a workspace with (anyone else is 404)."""
    return PublicUserOut.model_validate(await services.users.get_visible(principal, user_id))
