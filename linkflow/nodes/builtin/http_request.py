"""The http_request node: one HTTP request per input item, with pagination.

The node sends through `ctx.http()`, the process's shared client, so the SSRF
guard and connection pooling apply to every request and every redirect hop.
It never sleeps: a response worth retrying (429, 408, 5xx, a network error)
raises a retryable `NodeError` carrying the server's Retry-After, and the
engine's retry policy (the node's `retry` settings) waits and runs the
activation again. Retries are recorded in the history like any other.

Output, by default, is what n8n users expect: the response body. A JSON
object is the item; a JSON array gives one item per element; anything else is
`{"body": value}`; a binary body is stored in the blob store and the item
carries it under `binary[binary_property]`. `full_response: true` gives one
item `{status, headers, body}` per response instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import httpx

from linkflow.nodes.builtin._common import MISSING, Params, get_path, is_expression
from linkflow.nodes.builtin._http import (
    CREDENTIAL_TYPES,
    as_text,
    auth_parts,
    body_excerpt,
    decode_text,
    has_http_scheme,
    is_json,
    is_text,
    media_type,
    parse_json,
    query_fields,
    request_body,
    resolve_credential,
    response_file_name,
    send,
    shown_url,
    status_error,
)
from linkflow.nodes.builtin._http_credentials import HTTP_CREDENTIALS
from linkflow.nodes.sdk import (
    BinaryRef,
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    Pair,
    amap_items,
)

__all__ = ["NODES", "HttpRequest"]

METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
BODY_TYPES: Final = ("json", "form", "raw", "multipart", "binary")
RESPONSE_FORMATS: Final = ("auto", "json", "text", "binary")
PAGINATION_MODES: Final = ("none", "next_link", "cursor")

DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_MAX_PAGES: Final = 10
MAX_PAGES: Final = 1000
"""Hard cap on pages per item: a next link that never ends must not run forever."""


class HttpRequest(Node):
    type = "http_request"
    display_name = "HTTP Request"
    group = NodeGroup.ACTION
    description = (
        "Sends one HTTP request per input item (through the process's SSRF-guarded, pooled "
        "client) and outputs the response. By default the output is the body: a JSON object "
        "becomes the item, a JSON array one item per element (an element that is not an "
        'object becomes `{"value": element}`; an empty array gives no item), any other value '
        '`{"body": value}`, and a binary body is stored in the blob store with the item '
        "carrying it under `binary[binary_property]` (its json is `{}`). `full_response: "
        "true` outputs one item `{status, headers, body}` per response instead (header names "
        "lower-case; a binary body is null there and the file is in `binary`). 429, 408 and "
        "5xx responses and network errors fail the item as retryable, with the server's "
        "Retry-After as the delay, so the node's `retry` settings decide whether to try again; "
        "other 4xx fail it for good, quoting the status and the start of the body. "
        "Credentials (`auth` names the slot; types basic, bearer, header, query, api_key) are "
        "never shown in output, logs or errors."
    )
    lineage = Lineage.ONE_TO_MANY
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"auth": CREDENTIAL_TYPES}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "method": {
                "type": "string",
                "enum": list(METHODS),
                "description": "The HTTP method.",
                "default": "GET",
            },
            "url": {
                "type": "string",
                "minLength": 1,
                "description": "The URL, http:// or https:// only.",
            },
            "query": {
                "type": "object",
                "additionalProperties": True,
                "description": (
                    "Query parameters added to the URL's own; a list value repeats the "
                    "parameter, null leaves it out, an object is sent as JSON text."
                ),
                "default": {},
            },
            "headers": {
                "type": "object",
                "additionalProperties": True,
                "description": "Request headers (name → value); null leaves one out.",
                "default": {},
            },
            "body": {
                "description": (
                    "The request body: any JSON value for `json`; an object for `form` and "
                    "`multipart` (its fields); text for `raw` (other values are sent as JSON "
                    "text). No body is sent when unset."
                ),
            },
            "body_type": {
                "type": "string",
                "enum": list(BODY_TYPES),
                "description": (
                    "How `body` is encoded: `json`, `form` (URL-encoded), `raw`, `multipart` "
                    "(form data, plus the item's files named in `files`), or `binary` (the "
                    "bytes of the item's binary `binary_property`)."
                ),
                "default": "json",
            },
            "content_type": {
                "type": "string",
                "description": (
                    "`raw` and `binary`: the Content-Type sent (default: text/plain for raw, "
                    "the file's type for binary); a Content-Type in `headers` wins."
                ),
            },
            "files": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "`multipart`: form field name → the name of the item's binary.",
                "default": {},
            },
            "binary_property": {
                "type": "string",
                "minLength": 1,
                "description": (
                    "The item binary uploaded with `body_type: binary`, and the name under "
                    "which a binary response is stored on the output item."
                ),
                "default": "data",
            },
            "auth": {
                "type": "string",
                "enum": ["auth"],
                "description": (
                    'The credential slot to authenticate with (`"auth"`); the node\'s '
                    '`credentials: {"auth": "<credential id or name>"}` names the credential. '
                    "Unset: no authentication."
                ),
            },
            "timeout_s": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 3600,
                "description": "Seconds to wait for each request (connect, send, each read).",
                "default": DEFAULT_TIMEOUT_S,
            },
            "response_format": {
                "type": "string",
                "enum": list(RESPONSE_FORMATS),
                "description": (
                    "How the body is read: `auto` (JSON when the Content-Type says JSON and it "
                    "parses; else text when the bytes are UTF-8 or the type is textual; else "
                    "binary), `json` (fails if it does not parse), `text`, or `binary`."
                ),
                "default": "auto",
            },
            "full_response": {
                "type": "boolean",
                "description": "Output `{status, headers, body}` per response instead of the body.",
                "default": False,
            },
            "follow_redirects": {
                "type": "boolean",
                "description": "Follow 3xx redirects (each hop passes the SSRF guard).",
                "default": True,
            },
            "never_error": {
                "type": "boolean",
                "description": "Output 4xx and 5xx responses like any other instead of failing.",
                "default": False,
            },
            "idempotency_header": {
                "type": "string",
                "minLength": 1,
                "description": (
                    "A header (e.g. `Idempotency-Key`) to send the request's stable key in: "
                    "`<execution>:<node>:<run>:<item index>`, plus `:<page>` after the first "
                    "page; it stays the same when the engine retries the node."
                ),
            },
            "pagination": {
                "type": "object",
                "description": (
                    "Follow-up requests for more pages; their items are appended in order. "
                    "Read after each response, so `next_url` may be an expression on "
                    "`response` (`{status, headers, body}`)."
                ),
                "properties": {
                    "mode": {
                        "type": "string",
                        "enum": list(PAGINATION_MODES),
                        "description": (
                            "`next_link`: request the next URL until there is none; `cursor`: "
                            "send the cursor found in each response as a query parameter."
                        ),
                        "default": "none",
                    },
                    "next_url": {
                        "type": ["string", "null"],
                        "description": (
                            "`next_link`: the next page's URL (relative URLs are resolved), "
                            'e.g. `"{{ response.body.links.next }}"`; unset: the `Link` '
                            'header\'s `rel="next"`. Empty or null ends the pages.'
                        ),
                    },
                    "cursor_path": {
                        "type": "string",
                        "minLength": 1,
                        "description": "`cursor`: dotted path of the cursor in the JSON body.",
                    },
                    "param": {
                        "type": "string",
                        "minLength": 1,
                        "description": "`cursor`: the query parameter that carries the cursor.",
                        "default": "cursor",
                    },
                    "max_pages": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_PAGES,
                        "description": f"Pages per item at most (hard cap {MAX_PAGES}).",
                        "default": DEFAULT_MAX_PAGES,
                    },
                },
                "additionalProperties": False,
            },
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        url = parameters.get("url")
        if isinstance(url, str) and not is_expression(url) and not has_http_scheme(url):
            problems.append("parameter 'url' must start with http:// or https://")
        body_type = parameters.get("body_type", "json")
        body = parameters.get("body")
        if body_type in {"form", "multipart"} and not (
            body is None or isinstance(body, dict) or is_expression(body)
        ):
            problems.append(f"parameter 'body' must be an object for body_type {body_type}")
        if parameters.get("files") and body_type != "multipart":
            problems.append("parameter 'files' applies only to body_type multipart")
        pagination = parameters.get("pagination")
        if (
            isinstance(pagination, dict)
            and pagination.get("mode") == "cursor"
            and not pagination.get("cursor_path")
        ):
            problems.append("parameter 'pagination.cursor_path' is required for mode cursor")
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        credentials: dict[str, JsonObject] = {}

        async def request(item: Item, index: int) -> list[Item]:
            call = await _Call.prepare(ctx, params, item, index, credentials)
            return await call.run()

        return await amap_items(ctx, request)


# --- per-item requests ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pagination:
    mode: str
    next_url: str | None
    next_url_given: bool
    """`next_url` was written (even if it evaluated to null): the Link header is not used."""
    cursor_path: str | None
    param: str
    max_pages: int


@dataclass(slots=True)
class _Page:
    """One response, read: what the items and the pagination are made from."""

    status: int
    headers: dict[str, str]
    body: Any
    url: httpx.URL
    links: Mapping[str | None, Mapping[str, str]]
    binary: BinaryRef | None = None

    def view(self) -> JsonObject:
        return {"status": self.status, "headers": self.headers, "body": self.body}


@dataclass(slots=True)
class _Call:
    """Everything one input item's request needs, read from the parameters once."""

    ctx: NodeContext
    index: int
    method: str
    url: str
    query: dict[str, Any]
    auth_query: dict[str, str]
    authenticated: bool
    headers: dict[str, str]
    content: dict[str, Any]
    timeout_s: float
    response_format: str
    full_response: bool
    never_error: bool
    follow_redirects: bool
    binary_property: str
    idempotency_header: str | None
    pages: int = field(default=0)

    @classmethod
    async def prepare(
        cls,
        ctx: NodeContext,
        params: Params,
        item: Item,
        index: int,
        credentials: dict[str, JsonObject],
    ) -> _Call:
        url = params.text("url", index).strip()
        if not has_http_scheme(url):
            raise NodeError(f"parameter 'url' must start with http:// or https://, not {url!r}")
        headers = {name: text for name, value in params.mapping("headers", index).items()
                   if (text := as_text(value)) is not None}  # fmt: skip
        content, content_type = await request_body(ctx, params, item, index)
        if content_type and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = content_type
        auth_headers, auth_query = auth_parts(
            await resolve_credential(ctx, params, index, credentials)
        )
        headers.update(auth_headers)
        return cls(
            ctx=ctx, index=index, method=params.text("method", index).upper(),
            url=url, query=query_fields(params.mapping("query", index)), auth_query=auth_query,
            authenticated=bool(auth_headers or auth_query),
            headers=headers, content=content, timeout_s=params.number("timeout_s", index),
            response_format=params.text("response_format", index),
            full_response=params.flag("full_response", index),
            never_error=params.flag("never_error", index),
            follow_redirects=params.flag("follow_redirects", index),
            binary_property=params.text("binary_property", index),
            idempotency_header=params.optional_text("idempotency_header", index),
        )  # fmt: skip

    async def run(self) -> list[Item]:
        items: list[Item] = []
        url: str | httpx.URL = self.url
        query: dict[str, Any] = {**self.query, **self.auth_query}
        while True:
            page = await self._fetch(url, query)
            items.extend(self._items(page))
            if page.status >= 400:  # only with never_error: an error page ends the pages
                return items
            pagination = _pagination(self.ctx, self.index, page)
            if pagination is None or pagination.mode == "none":
                return items
            following = _next_request(pagination, page, self)
            if following is None:
                return items
            if self.pages >= pagination.max_pages:
                self.ctx.log("pagination stopped at max_pages", max_pages=pagination.max_pages)
                return items
            url, query = following

    async def _fetch(self, url: str | httpx.URL, query: Mapping[str, Any]) -> _Page:
        self.pages += 1
        headers = dict(self.headers)
        if self.idempotency_header:
            key = f"{self.ctx.idempotency_key}:{self.index}"
            headers[self.idempotency_header] = key if self.pages == 1 else f"{key}:{self.pages}"
        client = self.ctx.http()
        try:
            # `params=` would replace the URL's own query (httpx 0.28); merging keeps it.
            target = httpx.URL(url).copy_merge_params(query)
            request = client.build_request(
                self.method, target, headers=headers,
                timeout=httpx.Timeout(self.timeout_s), **self.content,
            )  # fmt: skip
        except (httpx.InvalidURL, ValueError, TypeError) as error:
            raise NodeError(f"the request cannot be built: {error}") from None
        shown = shown_url(request.url)
        response, content = await send(client, request, self.follow_redirects, self.timeout_s)
        self.ctx.log("request", method=self.method, url=shown, status=response.status_code)
        if response.status_code >= 400 and not self.never_error:
            raise status_error(response, content, shown, self.ctx.now())
        return await self._read(response, content)

    async def _read(self, response: httpx.Response, content: bytes) -> _Page:
        page = _Page(
            status=response.status_code, headers=dict(response.headers.items()),
            body=None, url=response.url, links=response.links,
        )  # fmt: skip
        media = media_type(response)
        fmt = self.response_format
        if fmt in {"auto", "json"} and (fmt == "json" or is_json(media)):
            parsed = parse_json(content)
            if parsed is not MISSING:
                page.body = parsed
                return page
            if fmt == "json":
                raise NodeError(f"the response is not JSON: {body_excerpt(content, response)!r}")
        if fmt == "text" or (fmt == "auto" and is_text(media, content)):
            page.body = decode_text(content, response)
            return page
        page.binary = await self.ctx.blobs.put(
            content, mime_type=media or "application/octet-stream",
            file_name=response_file_name(response),
        )  # fmt: skip
        return page

    def _items(self, page: _Page) -> list[Item]:
        paired = (Pair(0, self.index),)
        binary = {self.binary_property: page.binary.to_json()} if page.binary else None
        if self.full_response:
            return [Item(json=page.view(), paired=paired, binary=binary)]
        if binary is not None:
            return [Item(json={}, paired=paired, binary=binary)]
        body = page.body
        if isinstance(body, dict):
            return [Item(json=body, paired=paired)]
        if isinstance(body, list):
            return [Item(json=element if isinstance(element, dict) else {"value": element},
                         paired=paired) for element in body]  # fmt: skip
        return [Item(json={"body": body}, paired=paired)]


# --- pagination ---------------------------------------------------------------


def _pagination(ctx: NodeContext, index: int, page: _Page) -> _Pagination | None:
    """The pagination settings, evaluated with `response` bound to this page."""
    if ctx.raw_parameters.get("pagination") is None:
        return None
    value = ctx.param("pagination", index, extra={"response": page.view()})
    if not isinstance(value, dict):
        raise NodeError("parameter 'pagination' must be an object", item_index=index)
    mode = value.get("mode") or "none"
    max_pages = value.get("max_pages", DEFAULT_MAX_PAGES)
    if mode not in PAGINATION_MODES:
        raise NodeError(f"parameter 'pagination.mode' must be one of {', '.join(PAGINATION_MODES)}")
    if not isinstance(max_pages, int) or isinstance(max_pages, bool) or max_pages < 1:
        raise NodeError("parameter 'pagination.max_pages' must be a positive integer")
    next_url = value.get("next_url")
    cursor_path = value.get("cursor_path")
    return _Pagination(
        mode=mode, next_url=None if next_url is None else str(next_url),
        next_url_given="next_url" in value,
        cursor_path=None if cursor_path is None else str(cursor_path),
        param=str(value.get("param") or "cursor"), max_pages=min(max_pages, MAX_PAGES),
    )  # fmt: skip


def _next_request(
    pagination: _Pagination, page: _Page, first: _Call
) -> tuple[str | httpx.URL, dict[str, Any]] | None:
    """The next page's URL and query, or None when there are no more pages."""
    if pagination.mode == "next_link":
        if pagination.next_url_given:
            target = pagination.next_url
        else:
            target = page.links.get("next", {}).get("url")
        if not target:
            return None
        url = page.url.join(target)
        if url == page.url:
            return None  # the same page again would loop
        if first.authenticated and _origin(url) != _origin(httpx.URL(first.url)):
            raise NodeError(
                f"the next page {shown_url(url)} is on another site than {shown_url(page.url)}; "
                "credentials are only sent to the site they were used for"
            )
        # The next link carries its own query; only credentials are added again.
        return url, dict(first.auth_query)
    if pagination.cursor_path is None:
        raise NodeError("parameter 'pagination.cursor_path' is required for mode cursor")
    cursor = get_path(page.body, pagination.cursor_path)
    text = None if cursor is MISSING else as_text(cursor)
    if not text or page.url.params.get(pagination.param) == text:
        return None  # no cursor ends the pages; the same one again would loop
    return first.url, {**first.query, pagination.param: text, **first.auth_query}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


NODES: tuple[type[Node], ...] = (HttpRequest,)
CREDENTIALS = HTTP_CREDENTIALS
