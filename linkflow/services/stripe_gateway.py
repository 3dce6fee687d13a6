"""The calls LinkFlow makes to Stripe, through the official `stripe` package.

One `StripeClient` per process, on `LINKFLOW_STRIPE_API_BASE` (a Stripe-compatible
server in tests), async over httpx. A plan's Stripe price is the active price whose
`lookup_key` is the plan's code (`pro`, `business`): set it in Stripe's dashboard, and
LinkFlow needs no price ids in its configuration. Every call that creates or changes
something sends an idempotency key, so a retry (the SDK's own, or the client's repeat
of a request) makes nothing twice.

Stripe's errors become the application's: an unreachable or failing Stripe, a refused
key or a rate limit are 503 `stripe_unavailable`; a refused request (a card declined,
an unknown price) is 422 `stripe_error` with Stripe's message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import stripe

from linkflow.services.errors import Invalid, LinkFlowError, NotFound, Unavailable

__all__ = ["StripeGateway", "as_dict"]

TIMEOUT_S: Final = 10.0
"""One call to Stripe: a request's answer waits on it, so it must not hang."""
NETWORK_RETRIES: Final = 2
"""The SDK's own retries of a failed connection (with the same idempotency key)."""

T = TypeVar("T")


def as_dict(value: Any) -> dict[str, Any]:
    """A Stripe object as plain JSON-like dicts and lists."""
    result: dict[str, Any] = value.to_dict() if hasattr(value, "to_dict") else dict(value)
    return result


def _translated(error: stripe.StripeError) -> LinkFlowError:
    message = error.user_message or str(error) or type(error).__name__
    if isinstance(error, stripe.CardError | stripe.InvalidRequestError | stripe.IdempotencyError):
        return Invalid(f"Stripe refused the request: {message}", code="stripe_error")
    return Unavailable(
        f"Stripe cannot be reached or refused the key: {message}", code="stripe_unavailable"
    )


async def _call(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except stripe.StripeError as error:
        raise _translated(error) from None


class StripeGateway:
    """What LinkFlow asks of Stripe; every method returns Stripe's objects as dicts."""

    def __init__(self, api_key: str, api_base: str) -> None:
        # Kept to close its connections (`aclose`): the SDK never closes them itself.
        self.http = stripe.HTTPXClient(timeout=TIMEOUT_S)
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self.http,
            max_network_retries=NETWORK_RETRIES,
        )
        self.v1 = self.client.v1

    async def aclose(self) -> None:
        await self.http.close_async()  # type: ignore[no-untyped-call]  # stripe leaves it untyped

    async def price_of(self, plan_code: str) -> str:
        """The id of the active price whose lookup key is `plan_code`."""
        prices = await _call(
            lambda: self.v1.prices.list_async(
                {"lookup_keys": [plan_code], "active": True, "limit": 1}
            )
        )
        if not prices.data:
            raise NotFound(
                f"Stripe has no active price with the lookup key {plan_code!r}",
                code="plan_not_purchasable",
            )
        return str(prices.data[0].id)

    async def create_customer(self, workspace_id: str, name: str, email: str | None) -> str:
        params: Any = {"name": name, "metadata": {"workspace_id": workspace_id}}
        if email:
            params["email"] = email
        customer = await _call(
            lambda: self.v1.customers.create_async(
                params, {"idempotency_key": f"linkflow-customer-{workspace_id}"}
            )
        )
        return str(customer.id)

    async def checkout(
        self,
        *,
        customer: str,
        price: str,
        workspace_id: str,
        plan: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        metadata = {"workspace_id": workspace_id, "plan": plan}
        params: Any = {
            "mode": "subscription",
            "customer": customer,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": workspace_id,
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
        }
        session = await _call(
            lambda: self.v1.checkout.sessions.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        )
        return as_dict(session)

    async def portal(self, *, customer: str, return_url: str) -> dict[str, Any]:
        session = await _call(
            lambda: self.v1.billing_portal.sessions.create_async(
                {"customer": customer, "return_url": return_url}
            )
        )
        return as_dict(session)

    async def create_subscription(
        self, *, customer: str, price: str, workspace_id: str, plan: str, idempotency_key: str
    ) -> dict[str, Any]:
        # default_incomplete: without a payment method on file the subscription waits
        # (incomplete) for its first payment instead of failing the request.
        params: Any = {
            "customer": customer,
            "items": [{"price": price}],
            "payment_behavior": "default_incomplete",
            "metadata": {"workspace_id": workspace_id, "plan": plan},
        }
        subscription = await _call(
            lambda: self.v1.subscriptions.create_async(params, {"idempotency_key": idempotency_key})
        )
        return as_dict(subscription)

    async def change_subscription(
        self, subscription_id: str, *, price: str, plan: str, idempotency_key: str
    ) -> dict[str, Any]:
        current = await _call(lambda: self.v1.subscriptions.retrieve_async(subscription_id))
        item = current["items"]["data"][0]["id"]
        params: Any = {
            "items": [{"id": item, "price": price}],
            "metadata": {"plan": plan},
            "proration_behavior": "create_prorations",
        }
        subscription = await _call(
            lambda: self.v1.subscriptions.update_async(
                subscription_id, params, {"idempotency_key": idempotency_key}
            )
        )
        return as_dict(subscription)

    async def cancel_subscription(
        self, subscription_id: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        subscription = await _call(
            lambda: self.v1.subscriptions.cancel_async(
                subscription_id, None, {"idempotency_key": idempotency_key}
            )
        )
        return as_dict(subscription)

    async def invoices(
        self, customer: str, *, limit: int, starting_after: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        params: Any = {"customer": customer, "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        page = await _call(lambda: self.v1.invoices.list_async(params))
        return [as_dict(invoice) for invoice in page.data], bool(page.has_more)
