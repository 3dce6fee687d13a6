"""A workspace's subscription: read it; with Stripe, create, change and cancel it, open
Checkout and the customer portal, list invoices; without, an instance admin assigns
plans (`assign`) and nothing calls out.

Invariants:
- What an answer acknowledges is stored first: a subscription Stripe created, changed
  or cancelled is written (`stripe_sync.apply_subscription`) before the answer, and the
  webhook events that follow find it as it is.
- A workspace's Stripe customer is made once: the customer call carries an idempotency
  key of the workspace, and its id is stored only where none is yet.
- Only owners manage billing (`billing:manage`); members with `billing:read` read it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from linkflow.security.rbac import Permission
from linkflow.services import audit
from linkflow.services.context import Actor, WorkspaceAccess
from linkflow.services.errors import Conflict, NotFound
from linkflow.services.plans import PlanLimits, Standing
from linkflow.services.stripe_gateway import StripeGateway
from linkflow.services.stripe_sync import apply_subscription
from linkflow.store import (
    Database,
    Subscription,
    SubscriptionStatus,
    User,
    Workspace,
    utcnow,
)

__all__ = ["Subscriptions"]


def _not_configured() -> Conflict:
    return Conflict(
        "billing through Stripe is not configured on this instance (self-hosted: "
        "an instance admin assigns plans)",
        code="billing_not_configured",
    )


def _key(workspace_id: uuid.UUID, action: str, idempotency_key: str | None) -> str:
    """Stripe's idempotency key of one change: the client's own key when it sent one, so
    a repeated request changes nothing twice at Stripe either."""
    return f"linkflow-{workspace_id}-{action}-{idempotency_key or uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    id: str


class Subscriptions:
    def __init__(
        self,
        database: Database,
        plans: PlanLimits,
        stripe: StripeGateway | None,
        public_url: str,
    ) -> None:
        self.database = database
        self.plans = plans
        self.stripe = stripe
        self.public_url = public_url.rstrip("/")

    async def aclose(self) -> None:
        if self.stripe is not None:
            await self.stripe.aclose()

    @property
    def provider(self) -> str | None:
        return "stripe" if self.stripe is not None else None

    async def current(self, access: WorkspaceAccess) -> Standing:
        access.require(Permission.BILLING_READ)
        return await self.plans.standing_of(access.workspace_id)

    def _gateway(self) -> StripeGateway:
        if self.stripe is None:
            raise _not_configured()
        return self.stripe

    async def _customer(self, access: WorkspaceAccess) -> str:
        stripe = self._gateway()
        async with self.database.session() as session:
            workspace = await session.get(Workspace, access.workspace_id)
            assert workspace is not None
            if workspace.billing_customer_id:
                return workspace.billing_customer_id
            owner = await session.get(User, workspace.owner_id)
        customer = await stripe.create_customer(
            str(workspace.id), workspace.name, owner.email if owner else None
        )
        async with self.database.transaction() as session:
            await session.execute(
                update(Workspace)
                .where(
                    Workspace.id == workspace.id,
                    Workspace.billing_customer_id.is_(None),
                )
                .values(billing_customer_id=customer)
            )
            stored = await session.scalar(
                select(Workspace.billing_customer_id).where(Workspace.id == workspace.id)
            )
        return stored or customer

    async def _live_stripe(self, workspace_id: uuid.UUID) -> Subscription | None:
        async with self.database.session() as session:
            row: Subscription | None = await session.scalar(
                select(Subscription).where(
                    Subscription.workspace_id == workspace_id,
                    Subscription.status.in_(SubscriptionStatus.live()),
                    Subscription.external_id.is_not(None),
                )
            )
        return row

    async def create(
        self, access: WorkspaceAccess, actor: Actor, plan: str, idempotency_key: str | None
    ) -> Subscription:
        access.require(Permission.BILLING_MANAGE)
        stripe = self._gateway()
        if await self._live_stripe(access.workspace_id) is not None:
            raise Conflict(
                "the workspace has a subscription already: change it with PUT",
                code="subscription_exists",
            )
        async with self.database.session() as session:
            await self.plans.plan(session, plan)
        price = await stripe.price_of(plan)
        customer = await self._customer(access)
        obj = await stripe.create_subscription(
            customer=customer,
            price=price,
            workspace_id=str(access.workspace_id),
            plan=plan,
            idempotency_key=_key(access.workspace_id, "create", idempotency_key),
        )
        return await self._store(access, actor, obj, "subscription.created")

    async def change(
        self, access: WorkspaceAccess, actor: Actor, plan: str, idempotency_key: str | None
    ) -> Subscription:
        access.require(Permission.BILLING_MANAGE)
        stripe = self._gateway()
        live = await self._require_live(access.workspace_id)
        async with self.database.session() as session:
            await self.plans.plan(session, plan)
        price = await stripe.price_of(plan)
        assert live.external_id is not None
        obj = await stripe.change_subscription(
            live.external_id,
            price=price,
            plan=plan,
            idempotency_key=_key(access.workspace_id, f"change-{plan}", idempotency_key),
        )
        return await self._store(access, actor, obj, "subscription.changed")

    async def cancel(
        self, access: WorkspaceAccess, actor: Actor, idempotency_key: str | None
    ) -> Subscription:
        access.require(Permission.BILLING_MANAGE)
        stripe = self._gateway()
        live = await self._require_live(access.workspace_id)
        assert live.external_id is not None
        obj = await stripe.cancel_subscription(
            live.external_id, idempotency_key=_key(access.workspace_id, "cancel", idempotency_key)
        )
        return await self._store(access, actor, obj, "subscription.cancelled")

    async def _require_live(self, workspace_id: uuid.UUID) -> Subscription:
        live = await self._live_stripe(workspace_id)
        if live is None:
            raise NotFound(
                "the workspace has no Stripe subscription", code="subscription_not_found"
            )
        return live

    async def _store(
        self, access: WorkspaceAccess, actor: Actor, obj: dict[str, Any], action: str
    ) -> Subscription:
        async with self.database.transaction() as session:
            row = await apply_subscription(session, obj, workspace_id=access.workspace_id)
            if row is None:  # cancelled meanwhile by a webhook event: read it as it is
                row = await session.scalar(
                    select(Subscription).where(Subscription.external_id == obj.get("id"))
                )
            if row is None:
                raise NotFound(
                    "Stripe answered with a subscription of an unknown plan", code="plan_not_found"
                )
            await audit.record(
                session,
                actor,
                action,
                "subscription",
                row.id,
                workspace_id=access.workspace_id,
                new={"status": row.status, "plan_id": row.plan_id, "external_id": row.external_id},
            )
        return row

    async def checkout(
        self, access: WorkspaceAccess, plan: str, idempotency_key: str | None
    ) -> Link:
        """A Stripe Checkout page subscribing the workspace to `plan`."""
        access.require(Permission.BILLING_MANAGE)
        stripe = self._gateway()
        async with self.database.session() as session:
            await self.plans.plan(session, plan)
        price = await stripe.price_of(plan)
        customer = await self._customer(access)
        session_obj = await stripe.checkout(
            customer=customer,
            price=price,
            workspace_id=str(access.workspace_id),
            plan=plan,
            success_url=f"{self.public_url}/billing?checkout=success",
            cancel_url=f"{self.public_url}/billing?checkout=cancelled",
            idempotency_key=_key(access.workspace_id, f"checkout-{plan}", idempotency_key),
        )
        return Link(url=str(session_obj["url"]), id=str(session_obj["id"]))

    async def portal(self, access: WorkspaceAccess) -> Link:
        """Stripe's customer portal for the workspace (payment methods, invoices)."""
        access.require(Permission.BILLING_MANAGE)
        stripe = self._gateway()
        customer = await self._customer(access)
        session_obj = await stripe.portal(
            customer=customer, return_url=f"{self.public_url}/billing"
        )
        return Link(url=str(session_obj["url"]), id=str(session_obj["id"]))

    async def invoices(
        self, access: WorkspaceAccess, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The workspace's Stripe invoices, newest first; the cursor is the last id."""
        access.require(Permission.BILLING_READ)
        stripe = self._gateway()
        async with self.database.session() as session:
            customer = await session.scalar(
                select(Workspace.billing_customer_id).where(Workspace.id == access.workspace_id)
            )
        if customer is None:
            return [], None
        invoices, more = await stripe.invoices(customer, limit=limit, starting_after=cursor)
        return invoices, (str(invoices[-1]["id"]) if more and invoices else None)

    async def assign(self, workspace_id: uuid.UUID, plan_code: str, actor: Actor) -> Subscription:
        """An instance admin's plan for a workspace (self-hosted): the live subscription
        ends and one of `plan_code` begins, with no end and no provider."""
        async with self.database.transaction() as session:
            plan = await self.plans.plan(session, plan_code)
            workspace = await session.scalar(
                select(Workspace)
                .where(Workspace.id == workspace_id, Workspace.deleted_at.is_(None))
                .with_for_update()
            )
            if workspace is None:
                raise NotFound("workspace not found", code="workspace_not_found")
            live = (
                await session.scalars(
                    select(Subscription).where(
                        Subscription.workspace_id == workspace_id,
                        Subscription.status.in_(SubscriptionStatus.live()),
                    )
                )
            ).all()
            if any(row.external_id is not None for row in live):
                raise Conflict(
                    "the workspace pays through Stripe: change its plan there",
                    code="stripe_subscription_live",
                )
            now = utcnow()
            for row in live:
                row.status = SubscriptionStatus.CANCELLED
                row.cancel_at = now
            await session.flush()
            row = Subscription(
                workspace_id=workspace_id,
                plan_id=plan.id,
                status=SubscriptionStatus.ACTIVE,
                current_period_start=now,
            )
            session.add(row)
            await session.flush()
            await audit.record(
                session,
                actor,
                "subscription.assigned",
                "subscription",
                row.id,
                workspace_id=workspace_id,
                new={"plan": plan.code},
            )
        return row
