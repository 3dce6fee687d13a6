"""The Notion integration: the `notion` node (page create/get/update, database query) and
the `notion` credential (an integration's token), on Notion's REST API called with httpx
through `ctx.http()`.

Decisions:
- No SDK: notion-client is a thin wrapper over httpx, but builds its own client;
  the API is one JSON request per operation.
- Every request pins the API version (`Notion-Version`), as Notion requires.
- Properties are Notion's property values as the API takes them
  (`{"Status": {"select": {"name": "Done"}}}`); `title` is a shortcut for the
  title property (`title_property`, "title" under a page parent).
- A database query follows `next_cursor` while `has_more`, asking for no more
  than needed per page (at most 100, Notion's limit), until `limit` pages are in hand.
- Notion's errors are `{"object": "error", "status", "code", "message"}`: the code
  and the message are in the node error; a 429 (`rate_limited`) is retryable after
  Retry-After.
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

__all__ = ["CREDENTIALS", "NODES", "NOTION_CREDENTIAL", "Notion"]

BASE_URL: Final = "https://api.notion.com/v1"
NOTION_VERSION: Final = "2022-06-28"
PAGE_SIZE: Final = 100
"""Notion's largest `page_size`."""
OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "page": ("create", "get", "update"),
    "database": ("query",),
}
_REQUIRED: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("page", "get"): ("page_id",),
    ("page", "update"): ("page_id",),
    ("database", "query"): ("database_id",),
}
_ID_SCHEMA: Final[JsonObject] = {"type": "string", "pattern": "^[0-9a-fA-F-]{32,36}$"}


def _detail(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    code = body.get("code")
    return f"{body['message']} ({code})" if code else str(body["message"])


SERVICE: Final = Service("notion", detail=_detail)


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    token = str(data.get("token") or "")
    headers = {"Authorization": f"Bearer {token}", "Notion-Version": NOTION_VERSION}
    return Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers=headers, secrets=(token,))  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /users/me: the integration's bot user."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    me = (await rest.call("user get", "GET", "/users/me")).body
    return f"authenticated as {me.get('name')}"


NOTION_CREDENTIAL: Final = CredentialType(
    "notion",
    "Notion",
    "An internal integration's secret (Settings, Connections, Develop or manage integrations); "
    "share the pages and databases with the integration.",
    (
        CredentialField(
            "token", required=True, secret=True, description="The secret (ntn_... or secret_...)."
        ),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The API's address, with its version (another one for tests).",
        ),
    ),
    check=_check,
)


class Notion(Node):
    type = "notion"
    display_name = "Notion"
    group = NodeGroup.ACTION
    description = (
        "Per item, one Notion API call (credential slot `notion`): `page` `create` (under "
        "`parent_database_id` or `parent_page_id`, with `properties`, a `title` and "
        "`children` blocks), `get` or `update` (`properties`, `archived`); `database` "
        "`query` (with Notion's `filter` and `sorts`; one item per page, following Notion's "
        "cursor up to `limit`). The output item is the page Notion returns. Notion's errors "
        "fail the item with its code and message; a 429 is retryable after Retry-After."
    )
    lineage = Lineage.ONE_TO_MANY
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"notion": ("notion",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": list(OPERATIONS), "default": "page",
                         "description": "page or database."},
            "operation": {"type": "string", "enum": ["create", "get", "update", "query"],
                          "default": "create",
                          "description": "page: create, get, update; database: query."},
            "page_id": {**_ID_SCHEMA, "description": "page get, update: the page's id."},
            "database_id": {**_ID_SCHEMA, "description": "database query: the database's id."},
            "parent_database_id": {**_ID_SCHEMA,
                                   "description": "page create: the database the page goes in."},
            "parent_page_id": {**_ID_SCHEMA,
                               "description": "page create: the page the page goes under."},
            "title": {"type": "string",
                      "description": "page create, update: the page's title (plain text)."},
            "title_property": {"type": "string", "minLength": 1, "default": "Name",
                               "description": "The database's title property (under a page "
                                              "parent it is always `title`)."},
            "properties": {"type": "object", "additionalProperties": True, "default": {},
                           "description": "page create, update: Notion property values, e.g. "
                                          '`{"Status": {"select": {"name": "Done"}}}`.'},
            "children": {"type": "array", "items": {"type": "object"},
                         "description": "page create: the page's content, as Notion blocks."},
            "archived": {"type": "boolean",
                         "description": "page update: move the page to the trash (or back)."},
            "filter": {"type": "object", "additionalProperties": True,
                       "description": "database query: Notion's filter object."},
            "sorts": {"type": "array", "items": {"type": "object"},
                      "description": "database query: Notion's sort objects."},
            **LIST_PARAMETERS,
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["resource", "operation"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        resource = parameters.get("resource", "page")
        operation = parameters.get("operation", "create")
        allowed = OPERATIONS.get(resource, ())
        if operation not in allowed:
            return [f"operation {operation!r} is not one of {resource}'s: {', '.join(allowed)}"]
        problems = [
            f"{name} is required for {resource} {operation}"
            for name in _REQUIRED.get((resource, operation), ())
            if parameters.get(name) is None
        ]
        parents = [p for p in ("parent_database_id", "parent_page_id") if parameters.get(p)]
        if (resource, operation) == ("page", "create") and len(parents) != 1:
            problems.append("page create needs one of parent_database_id and parent_page_id")
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        rest: Rest | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal rest
            resource = params.text("resource", index)
            operation = params.text("operation", index)
            if operation not in OPERATIONS.get(resource, ()):
                raise NodeError(f"notion: {resource} has no operation {operation!r}")
            if rest is None:
                data = await ctx.credential("notion")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            pages = await _OPERATIONS[(resource, operation)](rest, params, index)
            return [item.derive(page, index) for page in pages]

        return await amap_items(ctx, apply)


def _title(text: str) -> list[JsonObject]:
    return [{"type": "text", "text": {"content": text}}]


def _properties(params: Params, index: int, title_property: str) -> JsonObject:
    properties = dict(params.mapping("properties", index))
    title = params.optional_text("title", index)
    if title is not None:
        properties[title_property] = {"title": _title(title)}
    return properties


async def _page_create(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    database = params.optional_text("parent_database_id", index)
    page = params.optional_text("parent_page_id", index)
    if database is not None and page is None:
        parent = {"database_id": database}
        properties = _properties(params, index, params.text("title_property", index))
    elif page is not None and database is None:
        parent = {"page_id": page}
        properties = _properties(params, index, "title")
    else:
        raise NodeError("notion page create: one of parent_database_id and parent_page_id "
                        "is required", item_index=index)  # fmt: skip
    body: JsonObject = {"parent": parent, "properties": properties}
    children = params.get("children", index)
    if children:
        body["children"] = children
    return [(await rest.call("page create", "POST", "/pages", json=body)).body]


def _page_path(params: Params, index: int) -> str:
    return "/pages/" + quote(params.text("page_id", index), safe="")


async def _page_get(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    return [(await rest.call("page get", "GET", _page_path(params, index))).body]


async def _page_update(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    body: JsonObject = {}
    properties = _properties(params, index, params.text("title_property", index))
    if properties:
        body["properties"] = properties
    archived = params.get("archived", index)
    if archived is not None:
        body["archived"] = bool(archived)
    if not body:
        raise NodeError("notion page update: nothing to update (properties, title, archived)",
                        item_index=index)  # fmt: skip
    return [(await rest.call("page update", "PATCH", _page_path(params, index), json=body)).body]


async def _database_query(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    path = f"/databases/{quote(params.text('database_id', index), safe='')}/query"
    limit = list_limit(params.flag("return_all", index), params.integer("limit", index))
    query: JsonObject = {}
    for name in ("filter", "sorts"):
        value = params.get(name, index)
        if value:
            query[name] = value

    async def page(cursor: str | None, wanted: int | None) -> Page:
        size = PAGE_SIZE if wanted is None else min(PAGE_SIZE, wanted)
        body = {**query, "page_size": size, **({"start_cursor": cursor} if cursor else {})}
        answer = (await rest.call("database query", "POST", path, json=body)).body
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise rest.error("database query", "the answer has no results list")
        more = answer.get("has_more") is True
        return results, (answer.get("next_cursor") or None) if more else None

    return await collect(page, limit)


_OPERATIONS: Final[
    Mapping[tuple[str, str], Callable[[Rest, Params, int], Awaitable[list[JsonObject]]]]
] = {
    ("page", "create"): _page_create, ("page", "get"): _page_get,
    ("page", "update"): _page_update, ("database", "query"): _database_query,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (Notion,)
CREDENTIALS: tuple[CredentialType, ...] = (NOTION_CREDENTIAL,)
