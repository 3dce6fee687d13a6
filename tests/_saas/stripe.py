"""A fake of Stripe's API (https://docs.stripe.com/api) on loopback, for the `stripe` node.

What it speaks, as Stripe does: `Authorization: Bearer <secret key>`; form-encoded
bodies and queries with bracketed keys (`metadata[plan]=pro`, `expand[]=customer`,
decoded by tests/_stripe.py's `decode_form`); `GET /v1/balance`; customers
(`/v1/customers`: POST creates, GET lists with `email`; `/{id}`: GET, POST updates,
merging `metadata` and unsetting a key sent empty, DELETE answers `{"id", "object",
"deleted": true}`); payment intents (`amount` and `currency` required; `/{id}/confirm`
needs a `payment_method`, `pm_card_chargeDeclined` is declined with a card_error);
invoices (`customer` required, created as drafts; `/{id}/finalize` opens a draft).
Lists are newest first, `limit` 1 to 100, `starting_after` an object id, answering
`{"object": "list", "data", "has_more", "url"}`. Errors are `{"error": {"type", "code",
"message", "param"}}`; a bad key is quoted masked, as Stripe does. `Idempotency-Key` on
a POST: a repeat with the same parameters gets the first answer with
`Idempotent-Replayed: true`; with others, an `idempotency_error`.

`lose_next_answer()` makes the next POST happen and its answer never arrive (the
client times out), the failure an idempotency key exists for. A 429 is staged by a
test (`fail_next(RATE_LIMITED)`): Stripe's `rate_limit` error.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qsl

from tests._saas._base import HANG, FakeApi, Recorded, Reply, run_fake
from tests._stripe import decode_form

__all__ = ["RATE_LIMITED", "SECRET_KEY", "FakeStripeApi", "fake_stripe_api", "form"]

SECRET_KEY: Final = "sk_test_51Loopback0000000000000000000000000000000000000000000000000000"
RATE_LIMITED: Final = Reply.json({"error": {
    "type": "invalid_request_error", "code": "rate_limit",
    "message": "Request rate limit exceeded. Learn more about rate limits here "
               "https://stripe.com/docs/rate-limits.",
}}, 429)  # fmt: skip
_PREFIXES: Final = {"customers": "cus", "payment_intents": "pi", "invoices": "in"}
_KINDS: Final = {"customers": "customer", "payment_intents": "payment_intent",
                 "invoices": "invoice"}  # fmt: skip


def form(request: Recorded) -> dict[str, Any]:
    """The request's parameters (query and form body) as Stripe reads them, nested."""
    pairs = [(name, value) for name, values in request.query.items() for value in values]
    pairs += parse_qsl(request.body.decode(), keep_blank_values=True)
    expand = [value for name, value in pairs if name == "expand[]"]
    params = decode_form([(name, value) for name, value in pairs if name != "expand[]"])
    return {**params, "expand": expand} if expand else params


def _error(status: int, kind: str, message: str, *, code: str | None = None,
           param: str | None = None, **extra: str) -> Reply:  # fmt: skip
    error: dict[str, Any] = {"type": kind, "message": message, **extra}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return Reply.json({"error": error}, status)


def _missing(kind: str, object_id: str) -> Reply:
    return _error(404, "invalid_request_error", f"No such {kind}: '{object_id}'",
                  code="resource_missing", param="id")  # fmt: skip


def _required(param: str) -> Reply:
    return _error(400, "invalid_request_error", f"Missing required param: {param}.",
                  code="parameter_missing", param=param)  # fmt: skip


class FakeStripeApi(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in _PREFIXES}
        """Collection (`customers`...) → id → object, in creation order."""
        self._ids = itertools.count(1)
        self._clock = itertools.count(1_767_225_600)
        self._idempotent: dict[str, tuple[str, Reply]] = {}
        self._lose_next = False

    def add(self, collection: str, **fields: Any) -> dict[str, Any]:
        obj = {"id": f"{_PREFIXES[collection]}_Loop{next(self._ids):010d}",
               "object": _KINDS[collection], "created": next(self._clock), "livemode": False,
               "metadata": {}, **fields}  # fmt: skip
        self.objects[collection][obj["id"]] = obj
        return obj

    def lose_next_answer(self) -> None:
        """Carry out the next POST, then never answer it."""
        self._lose_next = True

    # -- the wire -----------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            return _error(401, "invalid_request_error",
                          f"Invalid API Key provided: {given[:8]}****{given[-4:]}")  # fmt: skip
        params = form(request)
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or key is None:
            return self._route(request.method, request.path, params)
        fingerprint = hashlib.sha256(
            json.dumps([request.path, params], sort_keys=True).encode()).hexdigest()  # fmt: skip
        if key in self._idempotent:
            first, reply = self._idempotent[key]
            if first != fingerprint:
                return _error(400, "idempotency_error", "Keys for idempotent requests can only "
                              "be used with the same parameters they were first used with. "
                              f"Try using a key other than '{key}' if you meant to execute "
                              "another request.")  # fmt: skip
            return Reply(reply.status, reply.body, {**reply.headers, "Idempotent-Replayed": "true"},
                         reply.content_type)  # fmt: skip
        reply = self._route(request.method, request.path, params)
        self._idempotent[key] = (fingerprint, reply)
        if self._lose_next:
            self._lose_next = False
            return HANG
        return reply

    def _route(self, method: str, path: str, params: dict[str, Any]) -> Reply:
        parts = path.strip("/").split("/")
        if (method, parts) == ("GET", ["v1", "balance"]):
            return Reply.json({"object": "balance", "livemode": False,
                               "available": [{"amount": 0, "currency": "eur"}],
                               "pending": [{"amount": 0, "currency": "eur"}]})  # fmt: skip
        if len(parts) < 2 or parts[0] != "v1" or parts[1] not in _PREFIXES:
            return self._unrecognized(method, path)
        collection = parts[1]
        if len(parts) == 2:
            if method == "GET":
                return self._list(collection, params, path)
            if method == "POST":
                return self._create(collection, params)
            return self._unrecognized(method, path)
        found = self.objects[collection].get(parts[2])
        if found is None:
            return _missing(_KINDS[collection], parts[2])
        action = (method, collection, *parts[3:])
        if action[0] == "GET" and len(parts) == 3:
            return Reply.json(self._expanded(found, params))
        if action == ("POST", "customers"):
            return self._update(found, params)
        if action == ("DELETE", "customers"):
            del self.objects["customers"][found["id"]]
            return Reply.json({"id": found["id"], "object": "customer", "deleted": True})
        if action == ("POST", "payment_intents", "confirm"):
            return self._confirm(found, params)
        if action == ("POST", "invoices", "finalize"):
            return self._finalize(found)
        return self._unrecognized(method, path)

    @staticmethod
    def _unrecognized(method: str, path: str) -> Reply:
        return _error(404, "invalid_request_error",
                      f"Unrecognized request URL ({method}: {path}).")  # fmt: skip

    # -- the objects --------------------------------------------------------------------

    def _create(self, collection: str, params: dict[str, Any]) -> Reply:
        fields = {name: value for name, value in params.items() if name != "expand"}
        if collection == "payment_intents":
            for name in ("amount", "currency"):
                if name not in params:
                    return _required(name)
            if not str(params["amount"]).isdigit():
                return _error(400, "invalid_request_error",
                              f"Invalid integer: {params['amount']}", param="amount")  # fmt: skip
            fields = {**fields, "amount": int(params["amount"]),
                      "status": "requires_confirmation"
                      if params.get("payment_method") else "requires_payment_method"}  # fmt: skip
        if collection == "invoices":
            if "customer" not in params:
                return _required("customer")
            if params["customer"] not in self.objects["customers"]:
                return _missing("customer", params["customer"])
            fields = {**fields, "status": "draft", "amount_due": 0, "number": None}
        return Reply.json(self._expanded(self.add(collection, **fields), params))

    def _update(self, customer: dict[str, Any], params: dict[str, Any]) -> Reply:
        metadata = params.pop("metadata", None)
        customer.update({k: v for k, v in params.items() if k != "expand"})
        if isinstance(metadata, dict):
            customer["metadata"] = {k: v for k, v in {**customer["metadata"], **metadata}.items()
                                    if v != ""}  # fmt: skip
        return Reply.json(customer)

    def _confirm(self, intent: dict[str, Any], params: dict[str, Any]) -> Reply:
        method = params.get("payment_method") or intent.get("payment_method")
        if not method:
            return _error(400, "invalid_request_error", "You cannot confirm this PaymentIntent "
                          "because it's missing a payment method. To confirm the PaymentIntent "
                          f"with {intent.get('customer') or 'a customer'}, specify a payment "
                          "method attached to this customer along with the customer ID.",
                          code="payment_intent_unexpected_state")  # fmt: skip
        if method == "pm_card_chargeDeclined":
            return _error(402, "card_error", "Your card was declined.", code="card_declined",
                          decline_code="generic_decline")  # fmt: skip
        intent.update(payment_method=method, status="succeeded",
                      amount_received=intent["amount"])  # fmt: skip
        return Reply.json(intent)

    def _finalize(self, invoice: dict[str, Any]) -> Reply:
        if invoice["status"] != "draft":
            return _error(400, "invalid_request_error", "This invoice is already finalized, "
                          "you can't re-finalize a non-draft invoice.",
                          code="invoice_unexpected_state")  # fmt: skip
        invoice.update(status="open", number=f"LOOP-{len(self.objects['invoices']):04d}")
        return Reply.json(invoice)

    def _expanded(self, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        out = dict(obj)
        for field in params.get("expand") or []:
            name = field.removeprefix("data.")
            if name == "customer" and out.get("customer") in self.objects["customers"]:
                out["customer"] = self.objects["customers"][out["customer"]]
        return out

    def _list(self, collection: str, params: dict[str, Any], path: str) -> Reply:
        limit = str(params.get("limit", "10"))
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return _error(400, "invalid_request_error", "This value must be less than or equal "
                          f"to 100 (it currently is '{limit}').", param="limit")  # fmt: skip
        rows = list(reversed(self.objects[collection].values()))
        for name in ("email", "customer", "status"):
            if name in params:
                rows = [row for row in rows if row.get(name) == params[name]]
        after = params.get("starting_after")
        if after is not None:
            ids = [row["id"] for row in rows]
            if after not in ids:
                return _missing(_KINDS[collection], after)
            rows = rows[ids.index(after) + 1 :]
        chunk = [self._expanded(row, params) for row in rows[: int(limit)]]
        return Reply.json({"object": "list", "data": chunk, "has_more": len(rows) > int(limit),
                           "url": path})  # fmt: skip


@contextmanager
def fake_stripe_api() -> Iterator[FakeStripeApi]:
    with run_fake(FakeStripeApi()) as fake:
        yield fake
