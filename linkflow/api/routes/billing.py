"""`/api/v1/billing`: plans, the workspace's usage and subscription, Stripe's Checkout,
portal and invoices, and Stripe's webhook.

Plans are public to any caller. The rest acts on the request's workspace: reading needs
`billing:read` (admins and owners), changing `billing:manage` (owners). Without
`LINKFLOW_STRIPE_API_KEY` the instance is self-hosted: the changing endpoints answer
409 `billing_not_configured` and an instance admin assigns plans instead.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field, StringConstraints

from linkflow.api.deps import CurrentActor, CurrentPrincipal, CurrentWorkspace, Paging, Services
from linkflow.api.json_body import JSONRoute
from linkflow.api.schemas import ListOf
from linkflow.services.plans import Standing, UsageReport, plan_limits_of
from linkflow.services.stripe_sync import from_epoch
from linkflow.store import Plan, Subscription

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/billing", tags=["billing"])
webhook_router = APIRouter(prefix="/api/v1/billing", tags=["billing"])

PlanCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]


class PlanOut(BaseModel):
    code: str
    name: str
    price_cents: int | None = Field(description="Per month; null: priced by agreement.")
    limits: dict[str, int | None] = Field(description="null: unlimited.")
    features: list[str]


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    plan: str
    status: str
    provider: Literal["stripe"] | None = Field(description="null: assigned by an admin.")
    external_id: str | None
    current_period_start: datetime
    current_period_end: datetime | None
    cancel_at: datetime | None


class StandingOut(BaseModel):
    plan: PlanOut
    subscription: SubscriptionOut | None
    limits: dict[str, int | None] = Field(description="In force: the plan's with overrides.")
    billing: Literal["stripe", "self_hosted"]


class MetricOut(BaseModel):
    used: int
    limit: int | None


class UsageOut(BaseModel):
    plan: str
    period_start: datetime
    period_end: datetime
    executions: MetricOut
    node_runs: MetricOut
    active_workflows: MetricOut
    team_members: MetricOut


class PlanIn(BaseModel):
    plan: PlanCode


class LinkOut(BaseModel):
    id: str
    url: str


class InvoiceOut(BaseModel):
    id: str
    number: str | None
    status: str | None
    currency: str | None
    amount_due: int | None
    amount_paid: int | None
    created: datetime | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


class WebhookOut(BaseModel):
    received: bool
    outcome: str


def plan_out(plan: Plan) -> PlanOut:
    limits = {limit.value: value for limit, value in plan_limits_of(plan).items()}
    return PlanOut(
        code=plan.code,
        name=plan.name,
        price_cents=plan.price_cents,
        limits=limits,
        features=list(plan.features or []),
    )


def subscription_out(row: Subscription, plan_code: str) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id,
        plan=plan_code,
        status=row.status.value,
        provider="stripe" if row.external_id else None,
        external_id=row.external_id,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        cancel_at=row.cancel_at,
    )


def standing_out(standing: Standing, billing: str | None) -> StandingOut:
    sub = standing.subscription
    return StandingOut(
        plan=plan_out(standing.plan),
        subscription=subscription_out(sub, standing.plan.code) if sub else None,
        limits=standing.limits.as_dict(),
        billing="stripe" if billing else "self_hosted",
    )


async def _answer(services: Any, row: Subscription) -> SubscriptionOut:
    async with services.database.session() as session:
        plan = await session.get(Plan, row.plan_id)
    return subscription_out(row, plan.code if plan else "")


@router.get("/plans")
async def list_plans(_principal: CurrentPrincipal, services: Services) -> ListOf[PlanOut]:
    """Every plan with its limits (null: unlimited) and features."""
    plans = await services.plans.plans()
    return ListOf[PlanOut](data=[plan_out(plan) for plan in plans], next_cursor=None)


def usage_out(report: UsageReport) -> UsageOut:
    limits = report.standing.limits.as_dict()
    return UsageOut(
        plan=report.standing.plan.code,
        period_start=report.period_start,
        period_end=report.period_end,
        executions=MetricOut(
            used=report.metrics["executions"], limit=limits["executions_per_month"]
        ),
        node_runs=MetricOut(used=report.metrics["node_runs"], limit=None),
        active_workflows=MetricOut(used=report.active_workflows, limit=limits["active_workflows"]),
        team_members=MetricOut(used=report.team_members, limit=limits["team_members"]),
    )


@router.get("/usage")
async def get_usage(access: CurrentWorkspace, services: Services) -> UsageOut:
    """The workspace's usage in its billing period beside its limits. Executions and node
    runs are counted by the scheduler every five minutes."""
    await services.subscriptions.current(access)  # billing:read
    return usage_out(await services.plans.usage(access.workspace_id))


@router.get("/subscription")
async def get_subscription(access: CurrentWorkspace, services: Services) -> StandingOut:
    """The workspace's plan, its live subscription (null: the default plan) and limits."""
    standing = await services.subscriptions.current(access)
    return standing_out(standing, services.subscriptions.provider)


@router.post("/subscription", status_code=201)
async def create_subscription(
    body: PlanIn,
    access: CurrentWorkspace,
    actor: CurrentActor,
    services: Services,
    idempotency_key: IdempotencyKey = None,
) -> SubscriptionOut:
    """Subscribe through Stripe to `plan` (owners); the first payment may still be due
    (status `expired` until it is paid: use Checkout for a payment page)."""
    row = await services.subscriptions.create(access, actor, body.plan, idempotency_key)
    return await _answer(services, row)


@router.put("/subscription")
async def change_subscription(
    body: PlanIn,
    access: CurrentWorkspace,
    actor: CurrentActor,
    services: Services,
    idempotency_key: IdempotencyKey = None,
) -> SubscriptionOut:
    """Move the Stripe subscription to another plan (prorated)."""
    row = await services.subscriptions.change(access, actor, body.plan, idempotency_key)
    return await _answer(services, row)


@router.delete("/subscription")
async def cancel_subscription(
    access: CurrentWorkspace,
    actor: CurrentActor,
    services: Services,
    idempotency_key: IdempotencyKey = None,
) -> SubscriptionOut:
    """Cancel the Stripe subscription now; the workspace falls back to the default plan."""
    row = await services.subscriptions.cancel(access, actor, idempotency_key)
    return await _answer(services, row)


@router.post("/checkout", status_code=201)
async def create_checkout(
    body: PlanIn,
    access: CurrentWorkspace,
    services: Services,
    idempotency_key: IdempotencyKey = None,
) -> LinkOut:
    """A Stripe Checkout page that subscribes the workspace to `plan`."""
    link = await services.subscriptions.checkout(access, body.plan, idempotency_key)
    return LinkOut(id=link.id, url=link.url)


@router.post("/portal", status_code=201)
async def create_portal(access: CurrentWorkspace, services: Services) -> LinkOut:
    """A link to Stripe's customer portal (payment methods, invoices, cancellation)."""
    link = await services.subscriptions.portal(access)
    return LinkOut(id=link.id, url=link.url)


@router.get("/invoices")
async def list_invoices(
    access: CurrentWorkspace, services: Services, paging: Paging
) -> ListOf[InvoiceOut]:
    """The workspace's Stripe invoices, newest first."""
    invoices, cursor = await services.subscriptions.invoices(
        access, limit=paging.limit, cursor=paging.cursor
    )
    data = [
        InvoiceOut(
            id=str(item["id"]),
            number=item.get("number"),
            status=item.get("status"),
            currency=item.get("currency"),
            amount_due=item.get("amount_due"),
            amount_paid=item.get("amount_paid"),
            created=from_epoch(item.get("created")),
            hosted_invoice_url=item.get("hosted_invoice_url"),
            invoice_pdf=item.get("invoice_pdf"),
        )
        for item in invoices
    ]
    return ListOf[InvoiceOut](data=data, next_cursor=cursor)


@webhook_router.post("/webhook")
async def stripe_webhook(
    request: Request,
    services: Services,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookOut:
    """Stripe's events (public; verified by `Stripe-Signature`). Applied once each, in
    order of their `created` time; 400 for a call Stripe did not sign."""
    outcome = await services.stripe_events.receive(await request.body(), stripe_signature)
    return WebhookOut(received=True, outcome=outcome.value)
