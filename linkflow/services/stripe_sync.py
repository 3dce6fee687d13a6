"""A Stripe subscription object written to the `subscriptions` table: the one function
that turns Stripe's state into ours, for API answers and webhook events alike.

Invariants:
- Rows are found by `external_id` (Stripe's `sub_...`), under a lock of the workspace
  row, so two writers of one workspace's billing take turns.
- A cancelled subscription stays cancelled (Stripe never revives one).
- An event older (`created`) than the newest one applied to the row is ignored, so
  events delivered out of order never undo a newer state; an API answer (no event
  time) is the state right after the change and is applied as it is.
- When a subscription becomes live, any other live subscription of the workspace (an
  admin's assignment, an older Stripe one) ends: one live subscription per workspace.

Stripe's statuses map to ours: trialing, active, past_due as they are; unpaid counts as
past due; canceled is cancelled; incomplete, incomplete_expired and paused (no payment
yet) are expired, i.e. the plan does not apply.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.observability.logging import get_logger
from linkflow.store import Plan, Subscription, SubscriptionStatus, Workspace, utcnow

__all__ = ["STATUS_OF", "apply_subscription", "from_epoch", "workspace_of"]

log = get_logger(__name__)

STATUS_OF: Final[Mapping[str, SubscriptionStatus]] = {
    "trialing": SubscriptionStatus.TRIALING,
    "active": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "unpaid": SubscriptionStatus.PAST_DUE,
    "canceled": SubscriptionStatus.CANCELLED,
    "incomplete": SubscriptionStatus.EXPIRED,
    "incomplete_expired": SubscriptionStatus.EXPIRED,
    "paused": SubscriptionStatus.EXPIRED,
}


def from_epoch(value: object) -> datetime | None:
    """A Stripe time (seconds since the epoch) as an aware UTC datetime; None if absent."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


def _first_time(obj: Mapping[str, Any], item: Mapping[str, Any], name: str) -> datetime | None:
    return from_epoch(obj.get(name)) or from_epoch(item.get(name))


def _first_item(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    items = obj.get("items")
    data = items.get("data") if isinstance(items, Mapping) else None
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        return data[0]
    return {}


def _plan_code(obj: Mapping[str, Any]) -> str | None:
    price = _first_item(obj).get("price")
    if isinstance(price, Mapping) and isinstance(price.get("lookup_key"), str):
        return str(price["lookup_key"])
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("plan"), str):
        return str(metadata["plan"])
    return None


async def workspace_of(session: AsyncSession, obj: Mapping[str, Any]) -> uuid.UUID | None:
    """The workspace a Stripe object is for: its customer's, else its metadata's."""
    customer = obj.get("customer")
    if isinstance(customer, str):
        found = await session.scalar(
            select(Workspace.id).where(
                Workspace.billing_customer_id == customer, Workspace.deleted_at.is_(None)
            )
        )
        if found is not None:
            return found
    metadata = obj.get("metadata")
    raw = metadata.get("workspace_id") if isinstance(metadata, Mapping) else None
    try:
        workspace_id = uuid.UUID(str(raw))
    except ValueError:
        return None
    exists = await session.scalar(
        select(Workspace.id).where(Workspace.id == workspace_id, Workspace.deleted_at.is_(None))
    )
    return exists


async def apply_subscription(
    session: AsyncSession,
    obj: Mapping[str, Any],
    *,
    event_at: datetime | None = None,
    workspace_id: uuid.UUID | None = None,
) -> Subscription | None:
    """Write `obj` (a Stripe subscription) to its row; None when it belongs to no known
    workspace or plan, or when the row already holds a newer state."""
    external_id = obj.get("id")
    status = STATUS_OF.get(str(obj.get("status")))
    if not isinstance(external_id, str) or status is None:
        log.warning("billing.subscription_unreadable", id=external_id, status=obj.get("status"))
        return None
    workspace_id = workspace_id or await workspace_of(session, obj)
    if workspace_id is None:
        log.warning("billing.subscription_without_workspace", id=external_id)
        return None
    await session.execute(
        select(Workspace.id).where(Workspace.id == workspace_id).with_for_update()
    )
    row = await session.scalar(
        select(Subscription).where(Subscription.external_id == external_id).with_for_update()
    )
    if row is not None and _is_stale(row, status, event_at):
        return None
    code = _plan_code(obj)
    plan = await session.scalar(select(Plan).where(Plan.code == code)) if code else None
    if plan is None and row is None:
        log.warning("billing.subscription_plan_unknown", id=external_id, plan=code)
        return None
    if status in SubscriptionStatus.live():
        await _end_other_live(session, workspace_id, keep=row.id if row else None)
    item = _first_item(obj)
    # Newer API versions keep the period on the item rather than on the subscription.
    start = (
        _first_time(obj, item, "current_period_start")
        or from_epoch(obj.get("start_date"))
        or from_epoch(obj.get("created"))
        or utcnow()
    )
    if row is None:
        row = Subscription(
            workspace_id=workspace_id,
            external_id=external_id,
            plan_id=plan.id if plan else 0,
            current_period_start=start,
        )
        session.add(row)
    if plan is not None:
        row.plan_id = plan.id
    row.status = status
    row.current_period_start = start
    row.current_period_end = _first_time(obj, item, "current_period_end")
    row.cancel_at = from_epoch(obj.get("cancel_at")) or from_epoch(obj.get("canceled_at"))
    if event_at is not None:
        row.provider_event_at = event_at
    await session.flush()
    return row


def _is_stale(row: Subscription, status: SubscriptionStatus, event_at: datetime | None) -> bool:
    if row.status is SubscriptionStatus.CANCELLED and status is not SubscriptionStatus.CANCELLED:
        return True
    return (
        event_at is not None
        and row.provider_event_at is not None
        and event_at < row.provider_event_at
    )


async def _end_other_live(
    session: AsyncSession, workspace_id: uuid.UUID, *, keep: uuid.UUID | None
) -> None:
    statement = (
        update(Subscription)
        .where(
            Subscription.workspace_id == workspace_id,
            Subscription.status.in_(SubscriptionStatus.live()),
        )
        .values(status=SubscriptionStatus.EXPIRED, cancel_at=utcnow())
    )
    if keep is not None:
        statement = statement.where(Subscription.id != keep)
    await session.execute(statement)
