"""The stripe node and credential against a loopback fake of Stripe's API
(tests/_saas/stripe.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.stripe import STRIPE_CREDENTIAL, Stripe, form_fields
from linkflow.nodes.sdk import NodeError, NodeResult
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.stripe import RATE_LIMITED, SECRET_KEY, FakeStripeApi, fake_stripe_api, form
from tests.unit.engine._support import StepClock

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def stripe() -> Iterator[FakeStripeApi]:
    with fake_stripe_api() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(stripe: FakeStripeApi, key: str = SECRET_KEY) -> dict[str, Any]:
    return {"type": "stripe", "secret_key": key, "base_url": stripe.url}


async def run(
    stripe: FakeStripeApi, http: httpx.AsyncClient, parameters: dict[str, Any],
    *jsons: dict[str, Any], key: str = SECRET_KEY, execution: str = "execution-1",
) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=items(*(jsons or ({},))), parameters=parameters, http=http,
                      credentials={"stripe": credential(stripe, key)},
                      execution_id=execution)  # fmt: skip
    return await run_node(Stripe, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


async def failure(stripe: FakeStripeApi, http: httpx.AsyncClient, parameters: dict[str, Any],
                  key: str = SECRET_KEY, execution: str = "execution-1") -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(stripe, http, parameters, key=key, execution=execution)
    assert key not in caught.value.message
    return caught.value


class TestForm:
    def test_nested_values_become_stripes_bracketed_fields(self) -> None:
        """Objects by key, lists by position, booleans as words, None left out, "" kept."""
        value = {"email": "ada@example.com", "metadata": {"plan": "pro", "old": ""},
                 "items": [{"price": "price_1", "quantity": 2}], "tax_exempt": None,
                 "automatic_payment_methods": {"enabled": True}}  # fmt: skip
        assert form_fields(value) == [
            ("email", "ada@example.com"), ("metadata[plan]", "pro"), ("metadata[old]", ""),
            ("items[0][price]", "price_1"), ("items[0][quantity]", "2"),
            ("automatic_payment_methods[enabled]", "true"),
        ]  # fmt: skip


class TestCustomers:
    async def test_create_sends_a_form_with_bracketed_metadata_and_an_idempotency_key(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        """One POST per item, each with its own key: execution, node, run, item, operation."""
        fields = per_item(lambda item, _: {"email": item.json["email"],
                                           "metadata": {"plan": "pro"}} if item else None)
        created = out(await run(stripe, http, {"resource": "customer", "operation": "create",
                                               "fields": fields},
                                {"email": "ada@example.com"}, {"email": "bob@example.com"}))
        first, second = stripe.requests
        assert (first.method, first.path) == ("POST", "/v1/customers")
        assert first.headers["authorization"] == f"Bearer {SECRET_KEY}"
        assert first.headers["content-type"] == FORM
        assert first.body == b"email=ada%40example.com&metadata%5Bplan%5D=pro"
        assert first.headers["idempotency-key"] == "linkflow:execution-1:node:0:0:customer.create"
        assert second.headers["idempotency-key"] == "linkflow:execution-1:node:0:1:customer.create"
        assert [c["email"] for c in created] == ["ada@example.com", "bob@example.com"]
        assert created[0]["metadata"] == {"plan": "pro"}
        assert {c["id"] for c in created} == set(stripe.objects["customers"])

    async def test_get_update_and_delete(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        customer = stripe.add("customers", email="ada@example.com",
                              metadata={"plan": "free", "trial": "yes"})  # fmt: skip
        one = {"resource": "customer", "id": customer["id"]}
        [got] = out(await run(stripe, http, {**one, "operation": "get"}))
        assert got["email"] == "ada@example.com"
        update = {**one, "operation": "update",
                  "fields": {"name": "Ada", "metadata": {"plan": "pro", "trial": ""}}}
        [updated] = out(await run(stripe, http, update))
        post = stripe.requests[1]
        assert (post.method, post.path) == ("POST", f"/v1/customers/{customer['id']}")
        assert form(post) == {"name": "Ada", "metadata": {"plan": "pro", "trial": ""}}
        assert "idempotency-key" in post.headers
        assert (updated["name"], updated["metadata"]) == ("Ada", {"plan": "pro"})
        [deleted] = out(await run(stripe, http, {**one, "operation": "delete"}))
        assert stripe.requests[2].method == "DELETE"
        assert deleted == {"id": customer["id"], "object": "customer", "deleted": True}
        assert stripe.objects["customers"] == {}

    async def test_list_follows_starting_after_while_has_more_up_to_the_limit(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        """250 customers, limit 150: limit=100, then limit=50 after the 100th's id."""
        for number in range(250):
            stripe.add("customers", email=f"c{number}@example.com")
        listed = out(await run(stripe, http, {"resource": "customer", "operation": "list",
                                              "limit": 150}))  # fmt: skip
        first, second = stripe.requests
        assert (first.method, first.path, first.query) == ("GET", "/v1/customers",
                                                           {"limit": ["100"]})  # fmt: skip
        assert second.query == {"limit": ["50"], "starting_after": [listed[99]["id"]]}
        assert len(listed) == 150
        assert listed[0]["email"] == "c249@example.com"  # newest first, as Stripe lists
        assert len({c["id"] for c in listed}) == 150

    async def test_return_all_stops_when_has_more_is_false_and_filters_go_in_the_query(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        for number in range(130):
            stripe.add("customers", email="same@example.com" if number % 2 else "x@example.com")
        listed = out(await run(stripe, http, {"resource": "customer", "operation": "list",
                                              "filters": {"email": "same@example.com"},
                                              "return_all": True}))  # fmt: skip
        assert len(listed) == 65
        assert {c["email"] for c in listed} == {"same@example.com"}
        assert [r.query["email"] for r in stripe.requests] == [["same@example.com"]]


class TestPaymentsAndInvoices:
    async def test_a_payment_intent_is_created_confirmed_and_listed_by_customer(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        customer = stripe.add("customers", email="ada@example.com")
        create = {"resource": "payment_intent", "operation": "create",
                  "fields": {"amount": 2000, "currency": "eur", "customer": customer["id"],
                             "automatic_payment_methods": {"enabled": True}},
                  "expand": ["customer"]}  # fmt: skip
        [intent] = out(await run(stripe, http, create))
        assert form(stripe.requests[0]) == {
            "amount": "2000", "currency": "eur", "customer": customer["id"],
            "automatic_payment_methods": {"enabled": "true"}, "expand": ["customer"]}
        assert intent["status"] == "requires_payment_method"
        assert intent["customer"]["email"] == "ada@example.com"
        confirm = {"resource": "payment_intent", "operation": "confirm", "id": intent["id"],
                   "fields": {"payment_method": "pm_card_visa"}}  # fmt: skip
        [paid] = out(await run(stripe, http, confirm))
        assert stripe.requests[1].path == f"/v1/payment_intents/{intent['id']}/confirm"
        assert (paid["status"], paid["amount_received"]) == ("succeeded", 2000)
        listed = out(await run(stripe, http, {"resource": "payment_intent", "operation": "list",
                                              "filters": {"customer": customer["id"]}}))
        assert [p["id"] for p in listed] == [intent["id"]]

    async def test_a_declined_card_names_stripes_type_code_and_decline_code(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        intent = stripe.add("payment_intents", amount=500, currency="eur",
                            status="requires_payment_method")  # fmt: skip
        declined = await failure(stripe, http, {
            "resource": "payment_intent", "operation": "confirm", "id": intent["id"],
            "fields": {"payment_method": "pm_card_chargeDeclined"}})  # fmt: skip
        assert declined.message == (
            "stripe payment_intent confirm: refused (HTTP 402: Your card was declined. "
            "(card_error, card_declined, generic_decline))"
        )
        assert declined.retryable is False

    async def test_an_invoice_is_created_as_a_draft_finalized_and_listed_by_status(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        customer = stripe.add("customers", email="ada@example.com")
        [draft] = out(await run(stripe, http, {"resource": "invoice", "operation": "create",
                                               "fields": {"customer": customer["id"]}}))
        assert draft["status"] == "draft"
        finalize = {"resource": "invoice", "operation": "finalize", "id": draft["id"]}
        [opened] = out(await run(stripe, http, finalize))
        assert (stripe.requests[1].method, stripe.requests[1].path) == (
            "POST", f"/v1/invoices/{draft['id']}/finalize")  # fmt: skip
        assert opened["status"] == "open"
        replayed = out(await run(stripe, http, finalize))  # the same execution: its key
        assert replayed == [opened]
        assert stripe.requests[2].headers["idempotency-key"] == (
            stripe.requests[1].headers["idempotency-key"])  # fmt: skip
        again = await failure(stripe, http, finalize, execution="execution-2")
        assert again.message == (
            "stripe invoice finalize: refused (HTTP 400: This invoice is already finalized, "
            "you can't re-finalize a non-draft invoice. (invalid_request_error, "
            "invoice_unexpected_state))"
        )
        listed = out(await run(stripe, http, {"resource": "invoice", "operation": "list",
                                              "filters": {"status": "open"}}))  # fmt: skip
        assert [i["id"] for i in listed] == [draft["id"]]
        [got] = out(await run(stripe, http, {"resource": "invoice", "operation": "get",
                                             "id": draft["id"]}))  # fmt: skip
        assert got["number"] == opened["number"]

    async def test_a_missing_parameter_is_named(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        missing = await failure(stripe, http, {"resource": "payment_intent",
                                               "operation": "create",
                                               "fields": {"amount": 100}})  # fmt: skip
        assert missing.message == (
            "stripe payment_intent create: refused (HTTP 400: Missing required param: "
            "currency. (invalid_request_error, parameter_missing, param currency))"
        )

    def test_operations_and_ids_are_checked_when_the_workflow_is_saved(self) -> None:
        assert Stripe().check({"resource": "invoice", "operation": "delete"}) == [
            "operation 'delete' is not one of invoice's: create, get, list, finalize"]
        assert Stripe().check({"resource": "payment_intent", "operation": "confirm"}) == [
            "id is required for payment_intent confirm"]
        assert Stripe().check({"resource": "customer", "operation": "list"}) == []


class TestFailures:
    async def test_a_wrong_key_is_refused_and_never_quoted(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        wrong = "sk_test_51WrongKey00000000000000000000000000000000000000000009876"
        error = await failure(stripe, http, {"resource": "customer", "operation": "list"},
                              key=wrong)  # fmt: skip
        assert error.message == (
            "stripe customer list: the credential was refused (HTTP 401: Invalid API Key "
            "provided: sk_test_****9876 (invalid_request_error))"
        )

    async def test_an_unknown_id_is_not_found(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        error = await failure(stripe, http, {"resource": "customer", "operation": "get",
                                             "id": "cus_nope"})  # fmt: skip
        assert error.message == (
            "stripe customer get: not found (HTTP 404: No such customer: 'cus_nope' "
            "(invalid_request_error, resource_missing, param id))"
        )

    async def test_a_429_is_retryable_after_retry_after_or_the_backoff(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        get = {"resource": "customer", "operation": "list"}
        stripe.fail_next(RATE_LIMITED)
        bare = await failure(stripe, http, get)
        assert bare.message == "stripe customer list: rate limited (HTTP 429)"
        assert (bare.retryable, bare.retry_after_s) == (True, None)
        stripe.fail_next(Reply(429, RATE_LIMITED.body, {"Retry-After": "3"},
                               RATE_LIMITED.content_type))  # fmt: skip
        told = await failure(stripe, http, get)
        assert (told.retryable, told.retry_after_s) == (True, 3.0)

    async def test_a_500_a_malformed_answer_and_a_timeout(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        get = {"resource": "customer", "operation": "list"}
        stripe.fail_next(Reply.json({"error": {"type": "api_error",
                                               "message": "Something went wrong."}}, 500))
        down = await failure(stripe, http, get)
        assert (down.message, down.retryable) == (
            "stripe customer list: the service failed (HTTP 500: Something went wrong. "
            "(api_error))", True)  # fmt: skip
        stripe.fail_next(Reply(200, "<html>maintenance", content_type="text/html"))
        assert (await failure(stripe, http, get)).message == (
            "stripe customer list: the answer is not JSON (HTTP 200): <html>maintenance"
        )
        stripe.fail_next(Reply.json({"object": "list"}))
        assert (await failure(stripe, http, get)).message == (
            "stripe customer list: the answer has no data list"
        )
        stripe.fail_next(HANG)
        slow = await failure(stripe, http, {**get, "timeout_s": 0.2})
        assert (slow.message, slow.retryable) == ("stripe customer list: timed out after 0.2 s",
                                                  True)  # fmt: skip


class TestDurableExecution:
    async def test_a_retry_after_a_lost_answer_gets_the_first_customer_not_a_second(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        """Stripe created the customer but the answer never came: the engine's retry sends
        the same Idempotency-Key, and Stripe replays its first answer."""
        stripe.lose_next_answer()
        clock = StepClock()
        parameters = {"resource": "customer", "operation": "create", "timeout_s": 0.2,
                      "fields": {"email": "ada@example.com"}}  # fmt: skip
        result = await run_in_engine(
            http, "stripe", parameters, clock=clock, retry={"max_attempts": 2, "backoff_s": 5},
            credentials={"stripe": {"type": "stripe", "data": credential(stripe)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [5.0]
        [retrying] = events(result, "node.retrying")
        assert "timed out after 0.2 s" in str(retrying)
        first, second = stripe.requests
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        assert first.headers["idempotency-key"] == (
            "linkflow:exec-saas:node:0:0:customer.create")
        [customer] = stripe.objects["customers"].values()
        assert result.output_of(NODE) == [customer]


class TestCredential:
    async def test_the_check_reads_the_balance(
        self, stripe: FakeStripeApi, http: httpx.AsyncClient
    ) -> None:
        assert STRIPE_CREDENTIAL.check is not None
        said = await STRIPE_CREDENTIAL.check(Checking(http), credential(stripe))
        assert said == "authenticated (test mode)"
        assert stripe.requests[0].path == "/v1/balance"
        with pytest.raises(NodeError, match=r"^stripe balance get: the credential was refused"):
            await STRIPE_CREDENTIAL.check(Checking(http), credential(stripe, "sk_test_nope"))
