"""The Stripe integration: the `stripe` node (customer create/get/update/list/delete,
payment_intent create/get/confirm/list, invoice create/get/list/finalize) and the `stripe`
credential (a secret or restricted key), on Stripe's API called with httpx through
`ctx.http()`.

Decisions:
- No SDK: the `stripe` package builds its own HTTP client, and the platform's billing
  uses it already (services/stripe_gateway.py); a node must go through the guarded
  `ctx.http()`. The API is one form-encoded request per operation.
- Bodies and list filters are Stripe's parameters as the API takes them, nested
  objects and lists in Stripe's bracketed form (`metadata[plan]=pro`,
  `items[0][price]=...`); booleans are `true`/`false`, None is left out, and an empty
  string is sent as it is (Stripe's way to unset a field).
- Durable execution: every POST carries an `Idempotency-Key` of the node context's
  `idempotency_key` (execution, node, run; stable across retries and replays), the
  item's index and the operation. A node retried after a timeout or a lost answer
  therefore gets Stripe's first answer again (`Idempotent-Replayed: true`) instead of
  creating a second customer or charging twice. Stripe keeps keys for 24 hours at
  least; a retry later than that is a new request.
- Lists ask for `limit` (at most 100, Stripe's bound) and follow `starting_after`
  (the last object's id) while `has_more`, until `limit` objects are in hand.
- Stripe's errors are `{"error": {"type", "code", "message", "param"}}`: the message,
  the type, the code (and a card's `decline_code`) and the parameter are in the node
  error. A 429 is retryable (after Retry-After when Stripe sends one, else the node's
  backoff). Stripe quotes keys masked (`sk_test_****1234`); the key is masked here too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote

import httpx

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.integrations._rest import (
    LIST_PARAMETERS,
    TIMEOUT_PARAMETER,
    Page,
    Rest,
    Service,
    base_url,
    collect,
    list_limit,
)
from linkflow.nodes.sdk import (
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    amap_items,
)

__all__ = ["CREDENTIALS", "NODES", "STRIPE_CREDENTIAL", "Stripe", "form_fields"]

BASE_URL: Final = "https://api.stripe.com"
PAGE_SIZE: Final = 100
"""Stripe's largest list `limit`."""
MAX_KEY_CHARS: Final = 255
"""Stripe's longest Idempotency-Key; a longer one is replaced by its SHA-256."""
OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "customer": ("create", "get", "update", "list", "delete"),
    "payment_intent": ("create", "get", "confirm", "list"),
    "invoice": ("create", "get", "list", "finalize"),
}
_PATHS: Final[Mapping[str, str]] = {
    "customer": "/v1/customers", "payment_intent": "/v1/payment_intents",
    "invoice": "/v1/invoices",
}  # fmt: skip
_WITH_ID: Final = frozenset({"get", "update", "delete", "confirm", "finalize"})
_ALL_OPERATIONS: Final = ("create", "get", "update", "list", "delete", "confirm", "finalize")


def _detail(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    facts = [str(error[key]) for key in ("type", "code", "decline_code") if error.get(key)]
    if error.get("param"):
        facts.append(f"param {error['param']}")
    message = error.get("message")
    if not isinstance(message, str) or not message:
        return ", ".join(facts) or None
    return f"{message} ({', '.join(facts)})" if facts else message


SERVICE: Final = Service("stripe", detail=_detail)


def form_fields(value: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """`value` as Stripe's form fields: `{"metadata": {"a": 1}}` → `metadata[a]=1`,
    lists by position (`items[0][price]`), booleans as `true`/`false`, None left out."""
    fields: list[tuple[str, str]] = []
    for name, element in value.items():
        key = f"{prefix}[{name}]" if prefix else str(name)
        fields.extend(_form_value(key, element))
    return fields


def _form_value(key: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return form_fields(value, key)
    if isinstance(value, list | tuple):
        return [pair for position, element in enumerate(value)
                for pair in _form_value(f"{key}[{position}]", element)]  # fmt: skip
    if isinstance(value, bool):
        return [(key, "true" if value else "false")]
    return [(key, str(value))]


def idempotency_key(ctx: NodeContext, index: int, operation: str) -> str:
    """The key of item `index`'s POST: the same on every retry and replay of this run.
    The operation is in it because Stripe refuses a key reused on another endpoint."""
    key = f"linkflow:{ctx.idempotency_key}:{index}:{operation.replace(' ', '.')}"
    if len(key) > MAX_KEY_CHARS:
        key = "linkflow:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    key = str(data.get("secret_key") or "")
    return Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers={"Authorization": f"Bearer {key}"}, secrets=(key,))  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /v1/balance: any valid key may read it (a restricted one needs Balance read)."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    balance = (await rest.call("balance get", "GET", "/v1/balance")).body
    mode = "live" if isinstance(balance, dict) and balance.get("livemode") else "test"
    return f"authenticated ({mode} mode)"


STRIPE_CREDENTIAL: Final = CredentialType(
    "stripe",
    "Stripe",
    "A secret key (sk_live_... or sk_test_...) or a restricted key (rk_...) with write "
    "access to customers, payment intents and invoices (Developers, API keys).",
    (
        CredentialField(
            "secret_key", required=True, secret=True, description="The key (sk_... or rk_...)."
        ),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The API's address, without /v1 (another one for tests).",
        ),
    ),
    check=_check,
)


class Stripe(Node):
    type = "stripe"
    display_name = "Stripe"
    group = NodeGroup.ACTION
    description = (
        "Per item, one Stripe API call (credential slot `stripe`): `customer` `create`, "
        "`get`, `update`, `list`, `delete`; `payment_intent` `create`, `get`, `confirm`, "
        "`list`; `invoice` `create`, `get`, `list`, `finalize`. `fields` are Stripe's "
        "parameters (nested ones as objects, sent in Stripe's bracketed form); `list` takes "
        "Stripe's `filters` and follows `starting_after` up to `limit` (one item per "
        "object). Every POST carries an Idempotency-Key stable across retries, so a retried "
        "node never creates or charges twice. Output items are Stripe's objects. Stripe's "
        "errors fail the item with their type, code and message; a 429 is retryable."
    )
    lineage = Lineage.ONE_TO_MANY
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"stripe": ("stripe",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": list(OPERATIONS), "default": "customer",
                         "description": "customer, payment_intent or invoice."},
            "operation": {"type": "string", "enum": list(_ALL_OPERATIONS), "default": "get",
                          "description": "customer: create, get, update, list, delete; "
                                         "payment_intent: create, get, confirm, list; "
                                         "invoice: create, get, list, finalize."},
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_]+$",
                   "description": "get, update, delete, confirm, finalize: the object's id "
                                  "(`cus_...`, `pi_...`, `in_...`)."},
            "fields": {"type": "object", "additionalProperties": True, "default": {},
                       "description": "create, update, confirm, finalize: Stripe's parameters, "
                                      'e.g. `{"amount": 2000, "currency": "eur", '
                                      '"metadata": {"order": "42"}}`.'},
            "filters": {"type": "object", "additionalProperties": True, "default": {},
                        "description": "list: Stripe's list parameters, e.g. "
                                       '`{"customer": "cus_...", "status": "open"}`.'},
            "expand": {"type": "array", "items": {"type": "string", "minLength": 1},
                       "description": "Fields of the answer to expand (`expand[]`), e.g. "
                                      "`customer`; under list, `data.customer`."},
            **LIST_PARAMETERS,
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["resource", "operation"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        resource = parameters.get("resource", "customer")
        operation = parameters.get("operation", "get")
        allowed = OPERATIONS.get(resource, ())
        if operation not in allowed:
            return [f"operation {operation!r} is not one of {resource}'s: {', '.join(allowed)}"]
        if operation in _WITH_ID and parameters.get("id") is None:
            return [f"id is required for {resource} {operation}"]
        return []

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        rest: Rest | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal rest
            resource = params.text("resource", index)
            operation = params.text("operation", index)
            if operation not in OPERATIONS.get(resource, ()):
                raise NodeError(f"stripe: {resource} has no operation {operation!r}",
                                item_index=index)  # fmt: skip
            if rest is None:
                data = await ctx.credential("stripe")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            key = idempotency_key(ctx, index, f"{resource} {operation}")
            call = _Call(rest, params, index, resource, operation, key)
            objects = await (call.list() if operation == "list" else call.one())
            return [item.derive(found, index) for found in objects]

        return await amap_items(ctx, apply)


class _Call:
    """One item's request: the resource's path, Stripe's form fields, the item's key."""

    def __init__(self, rest: Rest, params: Params, index: int, resource: str, operation: str,
                 key: str) -> None:  # fmt: skip
        self.rest = rest
        self.params = params
        self.index = index
        self.name = f"{resource} {operation}"
        self.operation = operation
        self.path = _PATHS[resource]
        self.key = key
        self.expand = [("expand[]", str(field)) for field in params.array("expand", index)]

    def _id_path(self) -> str:
        object_id = self.params.optional_text("id", self.index)
        if not object_id:
            raise NodeError(f"stripe {self.name}: id is required", item_index=self.index)
        return f"{self.path}/{quote(object_id, safe='')}"

    async def one(self) -> list[JsonObject]:
        operation = self.operation
        if operation in ("get", "delete"):
            method, path = operation.upper(), self._id_path()
            answer = await self.rest.call(self.name, method, path, params=_query(self.expand))
            return [answer.body]
        path = self.path if operation == "create" else self._id_path()
        if operation in ("confirm", "finalize"):
            path = f"{path}/{operation}"
        fields = form_fields(self.params.mapping("fields", self.index)) + self.expand
        # httpx encodes a mapping; repeated keys (expand[]) need lists.
        answer = await self.rest.call(self.name, "POST", path, data=_query(fields),
                                      headers={"Idempotency-Key": self.key})  # fmt: skip
        return [answer.body]

    async def list(self) -> list[JsonObject]:
        params, index = self.params, self.index
        limit = list_limit(params.flag("return_all", index), params.integer("limit", index))
        filters = form_fields(params.mapping("filters", index)) + self.expand

        async def page(after: str | None, wanted: int | None) -> Page:
            size = PAGE_SIZE if wanted is None else min(PAGE_SIZE, wanted)
            query = [*filters, ("limit", str(size))]
            if after:
                query.append(("starting_after", after))
            body = (await self.rest.call(self.name, "GET", self.path, params=_query(query))).body
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise self.rest.error(self.name, "the answer has no data list")
            last = data[-1].get("id") if data and isinstance(data[-1], dict) else None
            return data, str(last) if body.get("has_more") is True and last else None

        return await collect(page, limit)


def _query(fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Form fields as the mapping httpx takes: a repeated name becomes a list."""
    out: dict[str, Any] = {}
    for name, value in fields:
        if name in out:
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out


NODES: tuple[type[Node], ...] = (Stripe,)
CREDENTIALS: tuple[CredentialType, ...] = (STRIPE_CREDENTIAL,)
