"""What every REST integration repeats: one call naming its operation, the service's
failures as node errors, Retry-After, and cursor pagination with a limit.

Decisions:
- Calls go through the client the node is given (`ctx.http()`, the pooled,
  SSRF-guarded one), each with its own timeout; the whole body is read, up to
  `MAX_RESPONSE_BYTES` (the http_request node's bound).
- Messages name the service and the operation (`slack message post: ...`) and
  never the URL: some services carry the token in the path (Telegram, Discord
  webhooks). Every string in `secrets` is replaced by `***` in what this module
  raises, should a library or the service quote it.
- One mapping of statuses for every service: 401 the credential was refused,
  403 not permitted, 404 not found, 408 and 5xx may pass (retryable), other 4xx
  will not. A rate limit (429, or what the service's `rate_limited` says, e.g.
  GitHub's 403 with no requests left) is retryable with the wait the service
  asked for (`retry_after`), which the engine honours instead of its backoff.
- A service's own words for an error come from its body (`detail`), cut to
  `DETAIL_CHARS`; a body that should be JSON and is not is an error too.
- Pagination loops (`collect`) stop at the `limit`, at the last page, or at
  `MAX_PAGES`, whichever comes first: a cursor that never ends cannot run forever.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import httpx

from linkflow.nodes.builtin._http import MAX_RESPONSE_BYTES, retry_after_s
from linkflow.nodes.sdk import JsonObject, NodeError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "LIST_PARAMETERS",
    "MAX_PAGES",
    "TIMEOUT_PARAMETER",
    "Answer",
    "Page",
    "Rest",
    "Service",
    "base_url",
    "collect",
    "default_detail",
    "header_retry_after",
    "list_limit",
]

DEFAULT_TIMEOUT_S: Final = 30.0
"""Per request: SaaS APIs answer in well under a second, or are in trouble."""
MAX_PAGES: Final = 100
"""Pages per list operation: at the services' page sizes, thousands of records."""
DETAIL_CHARS: Final = 300
"""How much of a service's error text a message quotes."""
DEFAULT_LIMIT: Final = 50

TIMEOUT_PARAMETER: Final[JsonObject] = {
    "type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": DEFAULT_TIMEOUT_S,
    "description": "Seconds to wait for each request to the service.",
}  # fmt: skip
LIST_PARAMETERS: Final[Mapping[str, JsonObject]] = {
    "return_all": {"type": "boolean", "default": False,
                   "description": f"list: every record (up to {MAX_PAGES} pages), not `limit`."},
    "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": DEFAULT_LIMIT,
              "description": "list: at most this many records (unless `return_all`)."},
}  # fmt: skip
"""The parameters of a list operation, as n8n users know them."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A response that was read whole: its status, headers and JSON body (None when empty)."""

    status: int
    headers: httpx.Headers
    body: Any
    links: Mapping[str, str] = field(default_factory=dict)
    """The `Link` header's URLs by `rel` (GitHub's pagination)."""


def default_detail(body: Any) -> str | None:
    """The error text of the common shapes: `{"message"}`, `{"error": "..."}`,
    `{"error": {"message"}}`, `{"description"}`."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("code")
    for value in (body.get("message"), error, body.get("description")):
        if isinstance(value, str) and value:
            return value
    return None


def header_retry_after(answer: Answer, now: datetime) -> float | None:
    """The Retry-After header, in seconds (delay-seconds or an HTTP-date)."""
    return retry_after_s(answer.headers.get("retry-after"), now)


def _is_429(answer: Answer) -> bool:
    return answer.status == 429


@dataclass(frozen=True, slots=True)
class Service:
    """How one service words its failures."""

    name: str
    """The first word of every message: `slack`, `github`."""
    detail: Callable[[Any], str | None] = default_detail
    """The service's error text in an error body."""
    rate_limited: Callable[[Answer], bool] = _is_429
    retry_after: Callable[[Answer, datetime], float | None] = header_retry_after
    """Seconds to wait before the next try, when rate limited; None: the node's backoff."""


def base_url(data: Mapping[str, Any], default: str) -> str:
    """The credential's `base_url` (or the real API's), without a trailing slash."""
    value = data.get("base_url") or default
    return str(value).rstrip("/")


def list_limit(return_all: bool, limit: int) -> int | None:
    """How many records a list operation wants: None for all of them."""
    return None if return_all else limit


class Rest:
    """One service's API for one activation: its base URL, auth headers and timeout.

    `call` raises `NodeError` naming the service and the operation for every
    failure (network, status, a body that is not JSON) and returns the `Answer`
    otherwise; `check` lets a service refuse an answer whose status is fine
    (Slack's `{"ok": false}`).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        service: Service,
        base: str,
        *,
        now: Callable[[], datetime],
        timeout_s: float = DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        check: Callable[[Rest, str, Answer], None] | None = None,
    ) -> None:
        self.http = http
        self.service = service
        self.base = base
        self.now = now
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.secrets = tuple(secret for secret in secrets if secret)
        self.check = check

    def error(self, operation: str, reason: str, **fields: Any) -> NodeError:
        """A node error `<service> <operation>: <reason>`, secrets masked."""
        message = f"{self.service.name} {operation}: {reason}"
        for secret in self.secrets:
            message = message.replace(secret, "***")
        return NodeError(message, **fields)

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        absolute: bool = False,
    ) -> Answer:
        """`method` `base + path` (`path` as it is when `absolute`); the answer, or an error."""
        url = path if absolute else f"{self.base}{path}"
        try:
            request = self.http.build_request(
                method, url, params=_query(params), json=json, data=data, files=files,
                headers={**self.headers, **(headers or {})}, timeout=self.timeout_s,
            )  # fmt: skip
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as error:
            raise self.error(operation, f"cannot build the request: {error}") from None
        status, response_headers, content, links = await self._send(operation, request)
        answer = Answer(status, response_headers, self._parse(operation, status, content), links)
        if self.service.rate_limited(answer):
            delay = self.service.retry_after(answer, self.now())
            wait = f"; retry after {delay:g} s" if delay is not None else ""
            raise self.error(operation, f"rate limited (HTTP {status}){wait}",
                             retryable=True, retry_after_s=delay)  # fmt: skip
        if status >= 400:
            raise self._status_error(operation, answer)
        if self.check is not None:
            self.check(self, operation, answer)
        return answer

    async def _send(
        self, operation: str, request: httpx.Request
    ) -> tuple[int, httpx.Headers, bytes, dict[str, str]]:
        try:
            response = await self.http.send(request, stream=True)
            try:
                content = await self._read(operation, response)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise self.error(operation, f"timed out after {self.timeout_s:g} s",
                             retryable=True) from None  # fmt: skip
        except NodeError as error:  # the SSRF guard refused the address
            raise self.error(operation, error.message, retryable=error.retryable) from None
        except httpx.HTTPError as error:
            detail = str(error) or type(error).__name__
            raise self.error(operation, f"the request failed: {detail}", retryable=True) from None
        links = {
            str(link.get("rel")): str(link["url"])
            for link in response.links.values()
            if link.get("url") and link.get("rel")
        }
        return response.status_code, response.headers, content, links

    async def _read(self, operation: str, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        too_large = self.error(operation, f"the answer is larger than {MAX_RESPONSE_BYTES} bytes")
        if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse(self, operation: str, status: int, content: bytes) -> Any:
        if not content.strip():
            return None
        try:
            return json.loads(content)
        except (ValueError, RecursionError):
            if status >= 400:
                # An error page (a proxy's HTML): the status says enough.
                return content[:DETAIL_CHARS].decode("utf-8", "replace")
            raise self.error(
                operation, f"the answer is not JSON (HTTP {status}): {_excerpt(content)}"
            ) from None

    def _status_error(self, operation: str, answer: Answer) -> NodeError:
        status = answer.status
        detail = self.service.detail(answer.body) if not isinstance(answer.body, str) else None
        said = detail or (answer.body if isinstance(answer.body, str) else "")
        suffix = f" (HTTP {status}" + (f": {_cut(said)})" if said else ")")
        if status == 401:
            return self.error(operation, "the credential was refused" + suffix)
        if status == 403:
            return self.error(operation, "not permitted" + suffix)
        if status == 404:
            return self.error(operation, "not found" + suffix)
        if status == 408 or status >= 500:
            delay = header_retry_after(answer, self.now())
            return self.error(operation, "the service failed" + suffix, retryable=True,
                              retry_after_s=delay)  # fmt: skip
        return self.error(operation, "refused" + suffix)


def _query(params: Mapping[str, Any] | None) -> dict[str, str | list[str]] | None:
    """Query fields: None left out, booleans as `true`/`false`, a list repeats the field."""
    if params is None:
        return None
    out: dict[str, str | list[str]] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, list):
            out[name] = [_query_text(element) for element in value if element is not None]
        else:
            out[name] = _query_text(value)
    return out


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "…"


def _excerpt(content: bytes) -> str:
    return _cut(content[: DETAIL_CHARS * 4].decode("utf-8", "replace")) or "(empty)"


Page = tuple[Sequence[Any], str | None]
"""One page's records and the cursor of the next one (None or empty: the last page)."""


async def collect(
    fetch: Callable[[str | None, int | None], Awaitable[Page]],
    limit: int | None,
    *,
    max_pages: int = MAX_PAGES,
) -> list[Any]:
    """Records from `fetch(cursor, still_wanted)`, page after page, until `limit` are
    in hand (None: all), the cursor ends, or `max_pages` pages were read."""
    records: list[Any] = []
    cursor: str | None = None
    for _ in range(max_pages):
        wanted = None if limit is None else limit - len(records)
        page, cursor = await fetch(cursor, wanted)
        records.extend(page)
        if not cursor or (limit is not None and len(records) >= limit):
            break
    return records if limit is None else records[:limit]
