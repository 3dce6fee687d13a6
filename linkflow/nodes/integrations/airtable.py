"""The Airtable integration: the `airtable` node (record create, list, search, update,
delete) and the `airtable` credential (a personal access token), on Airtable's Web API
called with httpx through `ctx.http()`.

Decisions:
- No SDK: pyairtable is synchronous (requests); the Web API is one request per
  operation.
- One record per item and request, so each output item descends from its input item
  and a failure names the item. Many items in a burst may pass Airtable's 5 requests
  per second per base: the 429 is retried like any other (below), not avoided; batches
  of 10 records per request are not built yet.
- Lists follow Airtable's `offset` until `limit` records are in hand, sending
  `maxRecords` and a `pageSize` of at most 100 (Airtable's limit). `search` is a
  list with a `filter_by_formula` required.
- Airtable's errors are `{"error": {"type", "message"}}` (or `{"error": "NOT_FOUND"}`):
  both are in the node error. A 429 asks for 30 seconds of quiet (Airtable's rule; it
  sends no Retry-After), which becomes the retry delay unless a Retry-After says otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote

import httpx

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.integrations._rest import (
    LIST_PARAMETERS,
    TIMEOUT_PARAMETER,
    Answer,
    Page,
    Rest,
    Service,
    base_url,
    collect,
    header_retry_after,
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

__all__ = ["AIRTABLE_CREDENTIAL", "CREDENTIALS", "NODES", "Airtable"]

BASE_URL: Final = "https://api.airtable.com/v0"
PAGE_SIZE: Final = 100
"""Airtable's largest `pageSize`."""
RATE_LIMIT_WAIT_S: Final = 30.0
"""What Airtable asks after a 429: "wait 30 seconds before subsequent requests will succeed"."""
OPERATIONS: Final = ("create", "list", "search", "update", "delete")
_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "create": ("fields",),
    "search": ("filter_by_formula",),
    "update": ("record_id", "fields"),
    "delete": ("record_id",),
}


def _detail(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        return ": ".join(str(part) for part in (kind, message) if part) or None
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return ": ".join(str(errors[0][key]) for key in ("error", "message") if errors[0].get(key))
    return None


def _retry_after(answer: Answer, now: datetime) -> float:
    delay = header_retry_after(answer, now)
    return RATE_LIMIT_WAIT_S if delay is None else delay


SERVICE: Final = Service("airtable", detail=_detail, retry_after=_retry_after)


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    token = str(data.get("token") or "")
    return Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers={"Authorization": f"Bearer {token}"}, secrets=(token,))  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /meta/whoami: the token's user."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    me = (await rest.call("whoami", "GET", "/meta/whoami")).body
    return f"authenticated as {me.get('email') or me.get('id')}"


AIRTABLE_CREDENTIAL: Final = CredentialType(
    "airtable",
    "Airtable",
    "A personal access token (airtable.com/create/tokens) with the data.records scopes "
    "and access to the bases the workflows use.",
    (
        CredentialField("token", required=True, secret=True, description="The token (pat...)."),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The Web API's address, with its version (another one for tests).",
        ),
    ),
    check=_check,
)


class Airtable(Node):
    type = "airtable"
    display_name = "Airtable"
    group = NodeGroup.ACTION
    description = (
        "Per item, one Airtable Web API call on `table` of base `base_id` (credential slot "
        "`airtable`): `create` a record with `fields`, `list` records (of a `view`, sorted, "
        "following Airtable's offset up to `limit`; one item per record), `search` them with "
        "a `filter_by_formula`, `update` the `fields` of `record_id` (the others are kept), or "
        "`delete` it. Output items are Airtable's records (`id`, `createdTime`, `fields`). "
        "Airtable's errors fail the item with their type and message; a 429 is retryable "
        "after the 30 s Airtable asks for."
    )
    lineage = Lineage.ONE_TO_MANY
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"airtable": ("airtable",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": ["record"], "default": "record",
                         "description": "What to act on: a record."},
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "list",
                          "description": "create, list, search, update or delete."},
            "base_id": {"type": "string", "pattern": "^app[A-Za-z0-9]{14}$",
                        "description": "The base, `app...` (in its API docs or URL)."},
            "table": {"type": "string", "minLength": 1,
                      "description": "The table's name or id (`tbl...`)."},
            "record_id": {"type": "string", "pattern": "^rec[A-Za-z0-9]{14}$",
                          "description": "update, delete: the record, `rec...`."},
            "fields": {"type": "object", "additionalProperties": True,
                       "description": "create, update: field name → value."},
            "typecast": {"type": "boolean", "default": False,
                         "description": "create, update: let Airtable convert text values "
                                        "(e.g. add a select option)."},
            "filter_by_formula": {"type": "string", "minLength": 1,
                                  "description": "list, search: an Airtable formula a record "
                                                 "must make true, e.g. `{Status}='Done'`."},
            "view": {"type": "string", "minLength": 1,
                     "description": "list, search: only the records of this view, in its order."},
            "return_fields": {"type": "array", "items": {"type": "string"},
                              "description": "list, search: only these fields."},
            "sort": {"type": "array",
                     "items": {"type": "object",
                               "properties": {
                                   "field": {"type": "string", "description": "A field."},
                                   "direction": {"type": "string", "enum": ["asc", "desc"],
                                                 "default": "asc",
                                                 "description": "asc or desc."}},
                               "required": ["field"], "additionalProperties": False},
                     "description": "list, search: the order (over the view's)."},
            **LIST_PARAMETERS,
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["operation", "base_id", "table"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "list")
        return [
            f"{name} is required for {operation}"
            for name in _REQUIRED.get(operation, ())
            if parameters.get(name) is None
        ]

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        rest: Rest | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal rest
            operation = params.text("operation", index)
            if rest is None:
                data = await ctx.credential("airtable")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            base = quote(params.text("base_id", index), safe="")
            path = f"/{base}/{quote(params.text('table', index), safe='')}"
            records = await _OPERATIONS[operation](rest, params, index, path)
            return [item.derive(record, index) for record in records]

        return await amap_items(ctx, apply)


def _fields(params: Params, index: int) -> JsonObject:
    body: JsonObject = {"fields": params.mapping("fields", index)}
    if params.flag("typecast", index):
        body["typecast"] = True
    return body


def _record_path(params: Params, index: int, path: str) -> str:
    return f"{path}/{quote(params.text('record_id', index), safe='')}"


async def _create(rest: Rest, params: Params, index: int, path: str) -> list[JsonObject]:
    answer = await rest.call("record create", "POST", path, json=_fields(params, index))
    return [answer.body]


async def _update(rest: Rest, params: Params, index: int, path: str) -> list[JsonObject]:
    target = _record_path(params, index, path)
    # PATCH keeps the fields not sent; PUT would clear them.
    answer = await rest.call("record update", "PATCH", target, json=_fields(params, index))
    return [answer.body]


async def _delete(rest: Rest, params: Params, index: int, path: str) -> list[JsonObject]:
    answer = await rest.call("record delete", "DELETE", _record_path(params, index, path))
    return [answer.body]


async def _list(rest: Rest, params: Params, index: int, path: str) -> list[JsonObject]:
    operation = "record " + params.text("operation", index)
    formula = params.optional_text("filter_by_formula", index)
    if operation == "record search" and not formula:
        raise NodeError("airtable record search: filter_by_formula is required", item_index=index)
    limit = list_limit(params.flag("return_all", index), params.integer("limit", index))
    query: dict[str, Any] = {"filterByFormula": formula, "view": params.get("view", index),
                             "fields[]": params.get("return_fields", index),
                             "maxRecords": limit}  # fmt: skip
    for position, order in enumerate(params.array("sort", index)):
        query[f"sort[{position}][field]"] = order["field"]
        query[f"sort[{position}][direction]"] = order.get("direction", "asc")

    async def page(offset: str | None, wanted: int | None) -> Page:
        size = PAGE_SIZE if wanted is None else min(PAGE_SIZE, wanted)
        paged = {**query, "pageSize": size, "offset": offset}
        body = (await rest.call(operation, "GET", path, params=paged)).body
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise rest.error(operation, "the answer has no records list")
        return records, body.get("offset") or None

    return await collect(page, limit)


_OPERATIONS: Final[
    Mapping[str, Callable[[Rest, Params, int, str], Awaitable[list[JsonObject]]]]
] = {"create": _create, "list": _list, "search": _list, "update": _update, "delete": _delete}

NODES: tuple[type[Node], ...] = (Airtable,)
CREDENTIALS: tuple[CredentialType, ...] = (AIRTABLE_CREDENTIAL,)
