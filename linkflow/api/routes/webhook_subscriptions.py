"""`/api/v1/webhook-subscriptions`: outgoing webhooks for execution events, and their
deliveries (see `services.webhook_subscriptions` and `worker.webhook_deliveries`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from linkflow.api.deps import CurrentActor, CurrentWorkspace, Paging
from linkflow.api.json_body import JSONRoute
from linkflow.api.plane import PlaneServices
from linkflow.api.schemas import ListOf

router = APIRouter(
    route_class=JSONRoute, prefix="/api/v1/webhook-subscriptions", tags=["webhook-subscriptions"]
)


class SubscriptionIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/hooks"])
    events: list[str] = Field(min_length=1, max_length=16, examples=[["execution.failed"]])
    workflow_id: uuid.UUID | None = None
    """Only this workflow's executions; omitted: every workflow of the workspace."""
    description: str = Field(default="", max_length=255)
    active: bool = True


class SubscriptionPatch(BaseModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, max_length=16)
    workflow_id: uuid.UUID | None = None
    """A workflow to filter on; null removes the filter; omitted keeps it."""
    description: str | None = Field(default=None, max_length=255)
    active: bool | None = None


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    workflow_id: uuid.UUID | None
    description: str
    active: bool
    created_at: datetime
    updated_at: datetime

    model_config = {"from_attributes": True}


class CreatedOut(SubscriptionOut):
    secret: str
    """The signing secret, shown this once."""


class DeliveryOut(BaseModel):
    id: uuid.UUID
    subscription_id: uuid.UUID
    execution_id: uuid.UUID
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    payload: dict[str, Any]
    """The JSON body sent at every attempt."""

    model_config = {"from_attributes": True}


@router.post("", status_code=201)
async def create_subscription(
    body: SubscriptionIn, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> CreatedOut:
    """A new subscription; its `secret` is in this answer only."""
    created = await plane.subscriptions.create(
        access, actor, url=body.url, events=body.events, workflow_id=body.workflow_id,
        description=body.description, active=body.active,
    )  # fmt: skip
    out = SubscriptionOut.model_validate(created.row)
    return CreatedOut(**out.model_dump(), secret=created.secret)


@router.get("")
async def list_subscriptions(
    access: CurrentWorkspace, plane: PlaneServices, paging: Paging
) -> ListOf[SubscriptionOut]:
    """Newest first."""
    page = await plane.subscriptions.list(access, limit=paging.limit, cursor=paging.cursor)
    return ListOf[SubscriptionOut](
        data=[SubscriptionOut.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{subscription_id}")
async def get_subscription(
    subscription_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices
) -> SubscriptionOut:
    return SubscriptionOut.model_validate(await plane.subscriptions.get(access, subscription_id))


@router.patch("/{subscription_id}")
async def update_subscription(
    subscription_id: uuid.UUID, body: SubscriptionPatch, access: CurrentWorkspace,
    actor: CurrentActor, plane: PlaneServices,
) -> SubscriptionOut:  # fmt: skip
    """Change the fields given; the others stay."""
    given = body.model_fields_set
    row = await plane.subscriptions.update(
        access, actor, subscription_id, url=body.url, events=body.events,
        workflow_id=body.workflow_id,
        clear_workflow="workflow_id" in given and body.workflow_id is None,
        description=body.description, active=body.active,
    )  # fmt: skip
    return SubscriptionOut.model_validate(row)


@router.delete("/{subscription_id}", status_code=204)
async def delete_subscription(
    subscription_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor,
    plane: PlaneServices,
) -> Response:  # fmt: skip
    """The subscription and its deliveries; deliveries under way are not sent."""
    await plane.subscriptions.delete(access, actor, subscription_id)
    return Response(status_code=204)


@router.get("/{subscription_id}/deliveries")
async def list_deliveries(
    subscription_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices, paging: Paging
) -> ListOf[DeliveryOut]:
    """Newest first, each with its attempts' outcome."""
    page = await plane.subscriptions.deliveries(
        access, subscription_id, limit=paging.limit, cursor=paging.cursor
    )
    return ListOf[DeliveryOut](
        data=[DeliveryOut.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/{subscription_id}/deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(
    subscription_id: uuid.UUID, delivery_id: uuid.UUID, access: CurrentWorkspace,
    actor: CurrentActor, plane: PlaneServices,
) -> DeliveryOut:  # fmt: skip
    """Send a delivered or dead delivery again: the same id and body, 5 more attempts."""
    row = await plane.subscriptions.redeliver(access, actor, subscription_id, delivery_id)
    return DeliveryOut.model_validate(row)
