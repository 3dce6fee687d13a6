"""A small Stripe-compatible API server on loopback, and Stripe-signed webhook events.

Stripe cannot be run here, so the tests talk to this instead, through the official
`stripe` package (`LINKFLOW_STRIPE_API_BASE`). It speaks Stripe's wire protocol as far
as LinkFlow uses it: form-encoded bodies with bracketed keys (`items[0][price]`),
bearer API keys, Stripe's object shapes (`object`, `id` prefixes, lists with
`has_more`), Stripe's error envelope (`{"error": {"type", "code", "message",
"param"}}`) and `Idempotency-Key` (a repeat with the same parameters gets the first
answer; with other parameters, an `idempotency_error`). Objects live in memory.

`signed_event` builds an event and the `Stripe-Signature` header exactly as Stripe
does (HMAC-SHA256 of "<t>.<body>" under the endpoint secret).

Never bind anything but a loopback address here.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeStripe", "decode_form", "fake_stripe", "signed_event"]

API_KEY: Final = "sk_test_linkflow_loopback"
WEBHOOK_SECRET: Final = "whsec_linkflow_loopback_secret"
PERIOD_S: Final = 30 * 86400

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form keys as nested dicts and lists (`a[0][b]=1`)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        path = [head, *_KEY_PART.findall("[" + rest)] if rest else [head]
        node: Any = root
        for index, part in enumerate(path):
            last = index == len(path) - 1
            nxt: Any = value if last else ({} if not path[index + 1].isdigit() else [])
            if isinstance(node, list):
                position = int(part)
                while len(node) <= position:
                    node.append(None)
                if node[position] is None or last:
                    node[position] = nxt
                node = node[position]
            else:
                if part not in node or last:
                    node[part] = nxt
                node = node[part]
    return root


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None


@dataclass
class FakeStripe:
    """The server's state: its objects, and the calls it received."""

    url: str = ""
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _idempotent: dict[str, tuple[str, int, bytes]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        # Random like Stripe's, so ids of two servers never meet in one database.
        return f"{prefix}_{uuid.uuid4().hex[:14]}{next(self._ids)}"

    def add_price(self, lookup_key: str, amount: int) -> dict[str, Any]:
        price = {
            "id": self.new_id("price"),
            "object": "price",
            "active": True,
            "lookup_key": lookup_key,
            "unit_amount": amount,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "type": "recurring",
        }
        self.prices[price["id"]] = price
        return price

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    # -- the API ------------------------------------------------------------------------

    def handle(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        route = (method, *parts[:3])
        if route == ("GET", "v1", "prices"):
            keys = params.get("lookup_keys") or []
            found = [p for p in self.prices.values() if p["lookup_key"] in keys and p["active"]]
            return 200, self._list(found, "/v1/prices")
        if route == ("POST", "v1", "customers"):
            customer = {
                "id": self.new_id("cus"),
                "object": "customer",
                "name": params.get("name"),
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
                "created": int(time.time()),
            }
            self.customers[customer["id"]] = customer
            return 200, customer
        if route == ("POST", "v1", "subscriptions") and len(parts) == 2:
            return self._create_subscription(params)
        if route[:2] == ("POST", "v1") and parts[1] == "subscriptions" and len(parts) == 3:
            return self._update_subscription(parts[2], params)
        if route[:2] == ("GET", "v1") and parts[1] == "subscriptions" and len(parts) == 3:
            sub = self.subscriptions.get(parts[2])
            return (200, sub) if sub else _missing("subscription", parts[2])
        if route[:2] == ("DELETE", "v1") and parts[1] == "subscriptions" and len(parts) == 3:
            return self._cancel_subscription(parts[2])
        if route[:3] == ("POST", "v1", "checkout") and parts[2:] == ["sessions"]:
            return self._checkout(params)
        if route[:3] == ("POST", "v1", "billing_portal") and parts[2:] == ["sessions"]:
            if params.get("customer") not in self.customers:
                return _missing("customer", str(params.get("customer")))
            sid = self.new_id("bps")
            return 200, {
                "id": sid,
                "object": "billing_portal.session",
                "customer": params["customer"],
                "return_url": params.get("return_url"),
                "url": f"{self.url}/p/session/{sid}",
            }
        if route == ("GET", "v1", "invoices"):
            return 200, self._invoices(params)
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path})")

    def _price(self, price_id: object) -> dict[str, Any] | None:
        return self.prices.get(str(price_id))

    def _create_subscription(self, params: dict[str, Any]) -> tuple[int, Any]:
        customer = params.get("customer")
        if customer not in self.customers:
            return _missing("customer", str(customer))
        items = params.get("items") or []
        price = self._price(items[0].get("price") if items else None)
        if price is None:
            return _missing("price", str(items))
        now = int(time.time())
        sub_id = self.new_id("sub")
        sub = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer,
            "status": "active",
            "created": now,
            "start_date": now,
            "current_period_start": now,
            "current_period_end": now + PERIOD_S,
            "cancel_at": None,
            "canceled_at": None,
            "cancel_at_period_end": False,
            "metadata": params.get("metadata", {}),
            "items": {
                "object": "list",
                "has_more": False,
                "data": [
                    {
                        "id": self.new_id("si"),
                        "object": "subscription_item",
                        "price": price,
                        "quantity": 1,
                        "current_period_start": now,
                        "current_period_end": now + PERIOD_S,
                    }
                ],
            },
        }
        self.subscriptions[sub_id] = sub
        self._invoice(customer, sub_id, price["unit_amount"], now)
        return 200, sub

    def _update_subscription(self, sub_id: str, params: dict[str, Any]) -> tuple[int, Any]:
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return _missing("subscription", sub_id)
        if sub["status"] == "canceled":
            return 400, _error(
                "invalid_request_error", "A canceled subscription can only update its metadata."
            )
        for item in params.get("items") or []:
            price = self._price(item.get("price"))
            if price is None:
                return _missing("price", str(item.get("price")))
            sub["items"]["data"][0]["price"] = price
        sub["metadata"] = {**sub["metadata"], **params.get("metadata", {})}
        return 200, sub

    def _cancel_subscription(self, sub_id: str) -> tuple[int, Any]:
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return _missing("subscription", sub_id)
        now = int(time.time())
        sub.update(status="canceled", canceled_at=now, ended_at=now)
        return 200, sub

    def _checkout(self, params: dict[str, Any]) -> tuple[int, Any]:
        items = params.get("line_items") or []
        if (
            params.get("mode") != "subscription"
            or not items
            or not self._price(items[0].get("price"))
        ):
            return 400, _error(
                "invalid_request_error",
                "line_items[0][price] is invalid",
                param="line_items[0][price]",
            )
        sid = self.new_id("cs")
        return 200, {
            "id": sid,
            "object": "checkout.session",
            "mode": "subscription",
            "customer": params.get("customer"),
            "status": "open",
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "metadata": params.get("metadata", {}),
            "url": f"{self.url}/c/pay/{sid}",
        }

    def _invoice(self, customer: str, sub_id: str, amount: int, now: int) -> None:
        invoice_id = self.new_id("in")
        self.invoices[invoice_id] = {
            "id": invoice_id,
            "object": "invoice",
            "customer": customer,
            "subscription": sub_id,
            "number": f"LF-{len(self.invoices) + 1:04d}",
            "status": "paid",
            "currency": "usd",
            "amount_due": amount,
            "amount_paid": amount,
            "created": now,
            "hosted_invoice_url": f"{self.url}/i/{invoice_id}",
            "invoice_pdf": f"{self.url}/i/{invoice_id}/pdf",
        }

    def _invoices(self, params: dict[str, Any]) -> dict[str, Any]:
        mine = [
            i for i in reversed(self.invoices.values()) if i["customer"] == params.get("customer")
        ]
        after = params.get("starting_after")
        if after:
            ids = [i["id"] for i in mine]
            mine = mine[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit") or 10)
        return self._list(mine[:limit], "/v1/invoices", has_more=len(mine) > limit)

    @staticmethod
    def _list(data: list[Any], url: str, *, has_more: bool = False) -> dict[str, Any]:
        return {"object": "list", "data": data, "has_more": has_more, "url": url}

    # -- the wire -----------------------------------------------------------------------

    def serve_request(
        self, method: str, path: str, headers: dict[str, str], params: dict[str, Any]
    ) -> tuple[int, bytes]:
        if headers.get("authorization") != f"Bearer {API_KEY}":
            return 401, json.dumps(
                _error("invalid_request_error", "Invalid API Key provided")
            ).encode()
        key = headers.get("idempotency-key")
        fingerprint = hashlib.sha256(
            json.dumps([method, path, params], sort_keys=True).encode()
        ).hexdigest()
        with self.lock:
            self.calls.append(Call(method, path, params, key))
            if key is not None and key in self._idempotent:
                first, status, body = self._idempotent[key]
                if first != fingerprint:
                    return 400, json.dumps(
                        _error(
                            "idempotency_error",
                            "Keys for idempotent requests can only be used "
                            "with the same parameters they were first used with.",
                        )
                    ).encode()
                return status, body
            status, answer = self.handle(method, path, params)
            body = json.dumps(answer).encode()
            if key is not None and method == "POST":
                self._idempotent[key] = (fingerprint, status, body)
            return status, body


def _error(
    kind: str, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


def _missing(kind: str, ident: str) -> tuple[int, Any]:
    return 404, _error(
        "invalid_request_error", f"No such {kind}: '{ident}'", code="resource_missing"
    )


def _handler(state: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            pairs += parse_qsl(body, keep_blank_values=True)
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = state.serve_request(
                self.command, parts.path, headers, decode_form(pairs)
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Request-Id", f"req_{time.monotonic_ns()}")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextlib.contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    """A fake Stripe on 127.0.0.1 with the prices `pro` and `business`, for the block."""
    state = FakeStripe()
    state.add_price("pro", 2_000)
    state.add_price("business", 10_000)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def signed_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int | None = None,
    event_id: str | None = None,
    secret: str = WEBHOOK_SECRET,
    signed_at: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """An event's body and headers as Stripe sends them to a webhook endpoint."""
    created = int(time.time()) if created is None else created
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": obj},
    }
    body = json.dumps(event).encode()
    return body, signed_headers(body, secret=secret, signed_at=signed_at)


def signed_headers(
    body: bytes, *, secret: str = WEBHOOK_SECRET, signed_at: int | None = None
) -> dict[str, str]:
    """The headers Stripe sends with `body`, signed with `secret`."""
    timestamp = int(time.time()) if signed_at is None else signed_at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    header = f"t={timestamp},v1={digest.hexdigest()}"
    return {"Stripe-Signature": header, "Content-Type": "application/json"}
