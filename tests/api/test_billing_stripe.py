"""Subscriptions through Stripe, against a Stripe-compatible server on loopback
(`tests._stripe`), on SQLite and PostgreSQL: create, change and cancel, Checkout and the
portal, invoices; Stripe's webhook verified and applied once and in order, also when the
same event is delivered twenty times at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests._stripe import (
    API_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    fake_stripe,
    signed_event,
    signed_headers,
)
from tests.api._plane import assert_problem
from tests.api._support import Account, join, register, team
from tests.api.conftest import Api, ApiFactory

BILLING = "/api/v1/billing"


@pytest.fixture
def stripe_server() -> Iterator[FakeStripe]:
    with fake_stripe() as server:
        yield server


@pytest.fixture
async def api(make_api: ApiFactory, stripe_server: FakeStripe) -> Api:
    return await make_api(
        stripe_api_key=API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_server.url,
    )


def _subscription(
    server: FakeStripe,
    workspace_id: str,
    plan: str,
    status: str = "active",
    sub_id: str = "sub_webhook_1",
) -> dict[str, Any]:
    """A Stripe subscription object as an event carries it."""
    price = next(p for p in server.prices.values() if p["lookup_key"] == plan)
    now = int(time.time())
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": "cus_unknown_here",
        "status": status,
        "created": now,
        "current_period_start": now,
        "current_period_end": now + 30 * 86400,
        "cancel_at": None,
        "canceled_at": None,
        "metadata": {"workspace_id": workspace_id},
        "items": {"object": "list", "data": [{"id": "si_1", "price": price}]},
    }


async def _standing(api: Api, account: Account) -> dict[str, Any]:
    response = await api.client.get(f"{BILLING}/subscription", headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _deliver(api: Api, body: bytes, headers: dict[str, str]) -> Any:
    return await api.client.post(f"{BILLING}/webhook", content=body, headers=headers)


class TestSubscriptionLifecycle:
    async def test_a_subscription_is_created_changed_and_cancelled_at_stripe(
        self, api: Api, stripe_server: FakeStripe
    ):
        owner = await register(api.client)
        assert (await _standing(api, owner))["plan"]["code"] == "free"
        created = await api.client.post(
            f"{BILLING}/subscription", json={"plan": "pro"}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
        sub = created.json()
        assert (sub["plan"], sub["status"], sub["provider"]) == ("pro", "active", "stripe")
        assert sub["external_id"] in stripe_server.subscriptions
        [call] = stripe_server.calls_to("POST", "/v1/subscriptions")
        assert call.params["items"][0]["price"] == next(
            p["id"] for p in stripe_server.prices.values() if p["lookup_key"] == "pro"
        )
        assert call.params["metadata"]["workspace_id"] == owner.workspace_id
        assert call.idempotency_key
        standing = await _standing(api, owner)
        assert standing["plan"]["code"] == "pro"
        assert standing["limits"]["team_members"] == 5
        assert standing["billing"] == "stripe"

        changed = await api.client.put(
            f"{BILLING}/subscription", json={"plan": "business"}, headers=owner.headers
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["plan"] == "business"
        assert (
            stripe_server.subscriptions[sub["external_id"]]["items"]["data"][0]["price"][
                "lookup_key"
            ]
            == "business"
        )

        cancelled = await api.client.delete(f"{BILLING}/subscription", headers=owner.headers)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert stripe_server.subscriptions[sub["external_id"]]["status"] == "canceled"
        after = await _standing(api, owner)
        assert (after["plan"]["code"], after["subscription"]) == ("free", None)
        assert_problem(
            await api.client.delete(f"{BILLING}/subscription", headers=owner.headers),
            404,
            "subscription_not_found",
        )

    async def test_a_repeated_create_with_its_idempotency_key_subscribes_once(
        self, api: Api, stripe_server: FakeStripe
    ):
        owner = await register(api.client)
        headers = {**owner.headers, "Idempotency-Key": "subscribe-once"}
        first = await api.client.post(
            f"{BILLING}/subscription", json={"plan": "pro"}, headers=headers
        )
        again = await api.client.post(
            f"{BILLING}/subscription", json={"plan": "pro"}, headers=headers
        )
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert len(stripe_server.subscriptions) == 1
        second = await api.client.post(
            f"{BILLING}/subscription", json={"plan": "pro"}, headers=owner.headers
        )
        assert_problem(second, 409, "subscription_exists")

    async def test_checkout_portal_and_invoices_use_one_stripe_customer(
        self, api: Api, stripe_server: FakeStripe
    ):
        owner = await register(api.client)
        checkouts = await asyncio.gather(
            *(
                api.client.post(
                    f"{BILLING}/checkout", json={"plan": "business"}, headers=owner.headers
                )
                for _ in range(3)
            )
        )
        for checkout in checkouts:
            assert checkout.status_code == 201, checkout.text
            assert checkout.json()["url"].startswith(f"{stripe_server.url}/c/pay/cs_")
        assert len(stripe_server.customers) == 1
        [customer] = stripe_server.customers.values()
        assert customer["metadata"] == {"workspace_id": owner.workspace_id}
        portal = await api.client.post(f"{BILLING}/portal", headers=owner.headers)
        assert portal.status_code == 201, portal.text
        assert portal.json()["url"].startswith(f"{stripe_server.url}/p/session/")
        empty = await api.client.get(f"{BILLING}/invoices", headers=owner.headers)
        assert empty.json() == {"data": [], "next_cursor": None}
        await api.client.post(
            f"{BILLING}/subscription", json={"plan": "pro"}, headers=owner.headers
        )
        invoices = await api.client.get(f"{BILLING}/invoices", headers=owner.headers)
        assert invoices.status_code == 200, invoices.text
        [invoice] = invoices.json()["data"]
        assert (invoice["amount_paid"], invoice["currency"], invoice["status"]) == (
            2000,
            "usd",
            "paid",
        )

    async def test_only_owners_manage_billing(
        self, make_api: ApiFactory, stripe_server: FakeStripe
    ):
        """An admin of the workspace reads billing but cannot change it (the default plan
        here lets a team have members)."""
        api = await make_api(
            stripe_api_key=API_KEY, stripe_api_base=stripe_server.url, default_plan="business"
        )
        owner, member = await register(api.client), await register(api.client)
        workspace_id = await team(api.client, owner)
        await join(api.client, owner, member, workspace_id, role="admin")
        headers = member.in_workspace(workspace_id)
        read = await api.client.get(f"{BILLING}/subscription", headers=headers)
        assert read.status_code == 200, read.text
        assert read.json()["plan"]["code"] == "business"
        for method, path in (
            ("POST", "subscription"),
            ("PUT", "subscription"),
            ("DELETE", "subscription"),
            ("POST", "checkout"),
            ("POST", "portal"),
        ):
            response = await api.client.request(
                method, f"{BILLING}/{path}", json={"plan": "pro"}, headers=headers
            )
            assert_problem(response, 403, "insufficient_role")
        assert stripe_server.calls == []


class TestStripeRefusals:
    async def test_a_plan_without_a_stripe_price_or_unknown_is_404(self, api: Api):
        owner = await register(api.client)
        assert_problem(
            await api.client.post(
                f"{BILLING}/subscription", json={"plan": "enterprise"}, headers=owner.headers
            ),
            404,
            "plan_not_purchasable",
        )
        assert_problem(
            await api.client.post(
                f"{BILLING}/subscription", json={"plan": "gold"}, headers=owner.headers
            ),
            404,
            "plan_not_found",
        )
        assert_problem(
            await api.client.post(
                f"{BILLING}/subscription", json={"plan": "NO!"}, headers=owner.headers
            ),
            422,
            "validation_error",
        )

    async def test_a_key_stripe_refuses_is_503_stripe_unavailable(
        self, make_api: ApiFactory, stripe_server: FakeStripe
    ):
        api = await make_api(stripe_api_key="sk_test_wrong", stripe_api_base=stripe_server.url)
        owner = await register(api.client)
        assert_problem(
            await api.client.post(
                f"{BILLING}/checkout", json={"plan": "pro"}, headers=owner.headers
            ),
            503,
            "stripe_unavailable",
        )

    async def test_without_a_stripe_key_the_instance_is_self_hosted(self, make_api: ApiFactory):
        api = await make_api()
        owner = await register(api.client)
        standing = await _standing(api, owner)
        assert (standing["plan"]["code"], standing["billing"]) == ("enterprise", "self_hosted")
        for method, path in (
            ("POST", "subscription"),
            ("POST", "checkout"),
            ("POST", "portal"),
            ("GET", "invoices"),
        ):
            response = await api.client.request(
                method, f"{BILLING}/{path}", json={"plan": "pro"}, headers=owner.headers
            )
            assert_problem(response, 409, "billing_not_configured")
        body, headers = signed_event("customer.subscription.created", {})
        assert_problem(await _deliver(api, body, headers), 409, "billing_not_configured")


class TestWebhook:
    async def test_a_signed_subscription_event_puts_the_workspace_on_its_plan(
        self, api: Api, stripe_server: FakeStripe
    ):
        owner = await register(api.client)
        obj = _subscription(stripe_server, owner.workspace_id, "business")
        body, headers = signed_event("customer.subscription.created", obj)
        response = await _deliver(api, body, headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True, "outcome": "applied"}
        standing = await _standing(api, owner)
        assert standing["plan"]["code"] == "business"
        assert standing["subscription"]["external_id"] == "sub_webhook_1"

    async def test_the_same_event_delivered_twenty_times_at_once_is_applied_once(
        self, api: Api, stripe_server: FakeStripe
    ):
        owner = await register(api.client)
        obj = _subscription(stripe_server, owner.workspace_id, "pro", sub_id="sub_twins")
        body, headers = signed_event("customer.subscription.created", obj, event_id="evt_twin")
        answers = await asyncio.gather(*(_deliver(api, body, headers) for _ in range(20)))
        outcomes = sorted(answer.json()["outcome"] for answer in answers)
        assert {answer.status_code for answer in answers} == {200}
        assert outcomes == ["applied"] + ["duplicate"] * 19
        later = await _deliver(api, body, headers)
        assert later.json()["outcome"] == "duplicate"
        assert (await _standing(api, owner))["plan"]["code"] == "pro"

    async def test_an_older_event_arriving_late_does_not_regress_the_subscription(
        self, api: Api, stripe_server: FakeStripe
    ):
        owner = await register(api.client)
        sub = "sub_ordered"
        now = int(time.time())
        newer = signed_event(
            "customer.subscription.updated",
            _subscription(stripe_server, owner.workspace_id, "business", sub_id=sub),
            created=now,
        )
        older = signed_event(
            "customer.subscription.created",
            _subscription(stripe_server, owner.workspace_id, "pro", status="trialing", sub_id=sub),
            created=now - 60,
        )
        assert (await _deliver(api, *newer)).json()["outcome"] == "applied"
        assert (await _deliver(api, *older)).json()["outcome"] == "ignored"
        standing = await _standing(api, owner)
        assert (standing["plan"]["code"], standing["subscription"]["status"]) == (
            "business",
            "active",
        )

    async def test_a_deleted_subscription_stays_cancelled(
        self, api: Api, stripe_server: FakeStripe
    ):
        owner = await register(api.client)
        sub = "sub_gone"
        now = int(time.time())
        for kind, status, at in (
            ("customer.subscription.created", "active", now - 10),
            ("customer.subscription.deleted", "canceled", now),
            ("customer.subscription.updated", "active", now + 5),
        ):
            obj = _subscription(stripe_server, owner.workspace_id, "pro", status=status, sub_id=sub)
            assert (await _deliver(api, *signed_event(kind, obj, created=at))).status_code == 200
        standing = await _standing(api, owner)
        assert (standing["plan"]["code"], standing["subscription"]) == ("free", None)

    async def test_an_event_of_no_known_workspace_or_type_is_acknowledged_and_ignored(
        self, api: Api, stripe_server: FakeStripe
    ):
        obj = _subscription(stripe_server, str(uuid.uuid4()), "pro", sub_id="sub_stranger")
        stranger = await _deliver(api, *signed_event("customer.subscription.created", obj))
        assert stranger.json()["outcome"] == "ignored"
        other = await _deliver(api, *signed_event("invoice.paid", {"id": "in_1"}))
        assert other.json()["outcome"] == "ignored"

    async def test_tampered_stale_unsigned_and_foreign_calls_are_400(
        self, api: Api, stripe_server: FakeStripe
    ):
        owner = await register(api.client)
        obj = _subscription(stripe_server, owner.workspace_id, "business")
        body, headers = signed_event("customer.subscription.created", obj)
        tampered = body.replace(b"business", b"pro_xxxx")
        assert_problem(await _deliver(api, tampered, headers), 400, "signature_mismatch")
        stale_body, stale = signed_event(
            "customer.subscription.created", obj, signed_at=int(time.time()) - 600
        )
        assert_problem(await _deliver(api, stale_body, stale), 400, "signature_expired")
        assert_problem(
            await _deliver(api, body, {"Content-Type": "application/json"}),
            400,
            "signature_missing",
        )
        foreign_body, foreign = signed_event(
            "customer.subscription.created", obj, secret="whsec_someone_else"
        )
        assert_problem(await _deliver(api, foreign_body, foreign), 400, "signature_mismatch")
        broken = signed_event("customer.subscription.created", obj)[1]
        assert_problem(await _deliver(api, b"not json", {**broken}), 400)
        assert (await _standing(api, owner))["plan"]["code"] == "free"

    @pytest.mark.parametrize("value", ["NaN", "1e400", '"\\ud800"'])
    async def test_a_signed_body_json_cannot_hold_exactly_is_422_and_applies_nothing(
        self, api: Api, stripe_server: FakeStripe, value: str
    ):
        """The webhook reads its body as bytes (the signature covers them), not through
        the API's JSON checks: its own parse (orjson) refuses what is not JSON. (Big
        integers pass: nothing of an event is stored as JSON.)"""
        owner = await register(api.client)
        obj = _subscription(stripe_server, owner.workspace_id, "business")
        body = signed_event("customer.subscription.created", obj)[0]
        body = body.replace(b'"livemode": false', b'"livemode": ' + value.encode())
        assert value.encode() in body
        refused = await _deliver(api, body, signed_headers(body))
        assert_problem(refused, 422, "malformed_json")
        assert (await _standing(api, owner))["plan"]["code"] == "free"

    async def test_a_completed_checkout_links_its_customer_to_the_workspace(
        self, api: Api, stripe_server: FakeStripe
    ):
        """The subscription events that follow name only the customer: they find the
        workspace through it."""
        owner = await register(api.client)
        session = {
            "id": "cs_done",
            "object": "checkout.session",
            "customer": "cus_from_checkout",
            "metadata": {"workspace_id": owner.workspace_id},
            "status": "complete",
        }
        linked = await _deliver(api, *signed_event("checkout.session.completed", session))
        assert linked.json()["outcome"] == "applied"
        obj = _subscription(stripe_server, owner.workspace_id, "pro", sub_id="sub_by_customer")
        obj["customer"] = "cus_from_checkout"
        obj["metadata"] = {}
        applied = await _deliver(api, *signed_event("customer.subscription.created", obj))
        assert applied.json()["outcome"] == "applied"
        assert (await _standing(api, owner))["plan"]["code"] == "pro"
