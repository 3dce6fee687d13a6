"""Stripe's webhook events (`POST /api/v1/billing/webhook`): verified, then applied once.

Invariants:
- Nothing is read from a call whose `Stripe-Signature` does not verify
  (`security.stripe_signature`): 400 with the reason's code.
- An event is applied at most once: its id is inserted into `billing_events` in the
  transaction that applies it. A second delivery finds it (or, delivered concurrently
  on PostgreSQL, waits on the first's insert and fails on the key) and changes nothing.
- Events out of order do not regress a subscription (`stripe_sync`).
- Every verified event is answered 2xx (applied, duplicate or ignored), so Stripe stops
  retrying it; only a failure to store it answers 5xx, and Stripe delivers it again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from linkflow.observability.logging import get_logger
from linkflow.security.stripe_signature import SignatureRefused, verify
from linkflow.services.errors import BadRequest, Conflict, FieldProblem, Invalid
from linkflow.services.stripe_sync import apply_subscription, workspace_of
from linkflow.store import BillingEvent, Database, Workspace

__all__ = ["Outcome", "StripeEvents"]

log = get_logger(__name__)

SUBSCRIPTION_EVENTS: Final = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
    }
)


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def _invalid(detail: str, code: str = "invalid_event") -> Invalid:
    return Invalid(detail, code=code, errors=[FieldProblem("body", detail)])


class StripeEvents:
    def __init__(self, database: Database, webhook_secret: str | None) -> None:
        self.database = database
        self.secret = webhook_secret

    async def receive(self, payload: bytes, signature: str | None) -> Outcome:
        if self.secret is None:
            raise Conflict(
                "LINKFLOW_STRIPE_WEBHOOK_SECRET is not set on this instance",
                code="billing_not_configured",
            )
        try:
            verify(self.secret, payload, signature)
        except SignatureRefused as refused:
            raise BadRequest(refused.detail, code=refused.code) from None
        event = self._parse(payload)
        try:
            async with self.database.transaction() as session:
                if await session.get(BillingEvent, event["id"]) is not None:
                    return Outcome.DUPLICATE
                session.add(BillingEvent(id=event["id"], type=event["type"]))
                await session.flush()  # a concurrent twin waits here, then fails on the key
                outcome = await self._apply(session, event)
        except IntegrityError:
            return Outcome.DUPLICATE
        log.info("billing.event", event_id=event["id"], type=event["type"], outcome=outcome)
        return outcome

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise _invalid("the body is not JSON", "malformed_json") from None
        if not isinstance(event, dict):
            raise _invalid("an event is a JSON object")
        data = event.get("data")
        obj = data.get("object") if isinstance(data, Mapping) else None
        if not (
            isinstance(event.get("id"), str)
            and 0 < len(event["id"]) <= 255
            and isinstance(event.get("type"), str)
            and len(event["type"]) <= 128
            and isinstance(event.get("created"), int)
            and isinstance(obj, Mapping)
        ):
            raise _invalid("an event needs an id, a type, a created time and data.object")
        return event

    async def _apply(self, session: Any, event: dict[str, Any]) -> Outcome:
        obj: Mapping[str, Any] = event["data"]["object"]
        kind: str = event["type"]
        if kind in SUBSCRIPTION_EVENTS:
            at = datetime.fromtimestamp(event["created"], UTC)
            row = await apply_subscription(session, obj, event_at=at)
            return Outcome.APPLIED if row is not None else Outcome.IGNORED
        if kind == "checkout.session.completed":
            # Links the customer to its workspace if the checkout made the customer; the
            # subscription itself comes in its own customer.subscription.* events.
            workspace_id = await workspace_of(session, obj)
            customer = obj.get("customer")
            if workspace_id is None or not isinstance(customer, str):
                return Outcome.IGNORED
            await session.execute(
                update(Workspace)
                .where(
                    Workspace.id == workspace_id,
                    Workspace.billing_customer_id.is_(None),
                )
                .values(billing_customer_id=customer)
            )
            return Outcome.APPLIED
        return Outcome.IGNORED
