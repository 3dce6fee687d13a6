"""Helpers of the http_request node: building requests, sending them, reading responses.

Everything here works on one request or one response; the node module holds
the parameters, the per-item flow and pagination. Messages never include a
URL's query or user info (`shown_url`), since credentials may travel there.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx

from linkflow.nodes.builtin._common import MISSING, Params, canonical_json
from linkflow.nodes.sdk import (
    BinaryRef,
    Item,
    JsonObject,
    NodeContext,
    NodeError,
)

__all__ = [
    "CREDENTIAL_TYPES",
    "MAX_RESPONSE_BYTES",
    "as_text",
    "auth_parts",
    "body_excerpt",
    "decode_text",
    "has_http_scheme",
    "is_json",
    "is_text",
    "media_type",
    "parse_json",
    "query_fields",
    "request_body",
    "resolve_credential",
    "response_file_name",
    "retry_after_s",
    "send",
    "shown_url",
    "status_error",
]

CREDENTIAL_TYPES: Final = ("basic", "bearer", "header", "query", "api_key", "oauth2")
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
"""A response is held in memory (and maybe in the history); bigger ones fail the item."""
EXCERPT_CHARS: Final = 200
"""How much of an error response's body its message quotes."""
RETRYABLE_STATUSES: Final = frozenset({408, 429})
"""Besides 5xx: Request Timeout and Too Many Requests may pass on a later try."""

_TEXT_TYPES: Final = ("text/", "xml", "javascript", "x-www-form-urlencoded", "json")


# --- sending ------------------------------------------------------------------


async def send(
    client: httpx.AsyncClient, request: httpx.Request, follow_redirects: bool, timeout_s: float
) -> tuple[httpx.Response, bytes]:
    """Send and read the whole body (bounded); network failures become retryable errors."""
    shown = shown_url(request.url)
    try:
        response = await client.send(request, stream=True, follow_redirects=follow_redirects)
        try:
            return response, await _read_bounded(response, shown)
        finally:
            await response.aclose()
    except httpx.TimeoutException:
        raise NodeError(
            f"the request to {shown} timed out after {timeout_s:g} s", retryable=True
        ) from None
    except httpx.TooManyRedirects:
        raise NodeError(f"the request to {shown} was redirected too many times") from None
    except (httpx.LocalProtocolError, httpx.DecodingError) as error:
        raise NodeError(f"the request to {shown} failed: {error}") from None
    except httpx.HTTPError as error:
        detail = str(error) or type(error).__name__
        raise NodeError(f"the request to {shown} failed: {detail}", retryable=True) from None


async def _read_bounded(response: httpx.Response, shown: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise _too_large(shown)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _too_large(shown)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(shown: str) -> NodeError:
    return NodeError(f"the response from {shown} is larger than {MAX_RESPONSE_BYTES} bytes")


def status_error(response: httpx.Response, content: bytes, shown: str, now: datetime) -> NodeError:
    status = response.status_code
    message = f"HTTP {status} {response.reason_phrase} from {shown}"
    excerpt = body_excerpt(content, response)
    if excerpt:
        message += f": {excerpt}"
    if status in RETRYABLE_STATUSES or status >= 500:
        delay = retry_after_s(response.headers.get("retry-after"), now)
        return NodeError(message, retryable=True, retry_after_s=delay)
    return NodeError(message)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for (delay-seconds or an HTTP-date); None if unusable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is unusable
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


# --- request parts ------------------------------------------------------------


def has_http_scheme(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://"))


def shown_url(url: httpx.URL) -> str:
    """The URL for messages and logs: no query or user info, which may hold secrets."""
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


def as_text(value: Any) -> str | None:
    """A parameter value as header/query/form text; None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return canonical_json(value)


def _fields(values: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """Query or form fields: null is left out, a list repeats the field."""
    fields: dict[str, str | list[str]] = {}
    for name, value in values.items():
        if isinstance(value, list):
            fields[name] = [text for element in value if (text := as_text(element)) is not None]
        elif (text := as_text(value)) is not None:
            fields[name] = text
    return fields


def query_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    return dict(_fields(values))


async def request_body(
    ctx: NodeContext, params: Params, item: Item, index: int
) -> tuple[dict[str, Any], str | None]:
    """`build_request` keyword arguments for the body, and a default Content-Type."""
    body_type = params.text("body_type", index)
    content_type = params.optional_text("content_type", index)
    if body_type == "binary":
        ref, data = await _binary(ctx, item, params.text("binary_property", index), index)
        return {"content": data}, content_type or ref.mime_type
    body = params.get("body", index)
    files = params.mapping("files", index)
    if body_type == "multipart" and (body is not None or files):
        return {"files": await _multipart(ctx, item, index, _object_body(body, index), files)}, None
    if body is None:
        return {}, None
    if body_type == "json":
        return {"json": body}, None
    if body_type == "form":
        return {"data": _fields(_object_body(body, index))}, None
    text = body if isinstance(body, str) else canonical_json(body)
    return {"content": text.encode()}, content_type or "text/plain; charset=utf-8"


def _object_body(body: Any, index: int) -> Mapping[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise NodeError("parameter 'body' must be an object for form and multipart bodies",
                        item_index=index)  # fmt: skip
    return body


async def _multipart(
    ctx: NodeContext, item: Item, index: int, body: Mapping[str, Any], files: Mapping[str, Any]
) -> list[tuple[str, tuple[str | None, bytes] | tuple[str | None, bytes, str]]]:
    # Text fields go in as parts without a file name, so the body is multipart
    # even when no file is attached (httpx would URL-encode fields alone).
    parts: list[tuple[str, tuple[str | None, bytes] | tuple[str | None, bytes, str]]] = []
    for name, values in _fields(body).items():
        for value in values if isinstance(values, list) else [values]:
            parts.append((name, (None, value.encode())))
    for name, property_name in files.items():
        ref, data = await _binary(ctx, item, str(property_name), index)
        parts.append((name, (ref.file_name or name, data, ref.mime_type)))
    return parts


async def _binary(ctx: NodeContext, item: Item, name: str, index: int) -> tuple[BinaryRef, bytes]:
    raw = (item.binary or {}).get(name)
    if raw is None:
        raise NodeError(f"the item has no binary {name!r}", item_index=index)
    ref = BinaryRef.from_json(raw)
    try:
        return ref, await ctx.blobs.get(ref)
    except LookupError:
        raise NodeError(f"the item's binary {name!r} is missing from the blob store",
                        item_index=index) from None  # fmt: skip


# --- credentials --------------------------------------------------------------


async def resolve_credential(
    ctx: NodeContext, params: Params, index: int, cache: dict[str, JsonObject]
) -> JsonObject | None:
    slot = params.optional_text("auth", index)
    if slot is None:
        return None
    if slot not in cache:
        cache[slot] = await ctx.credential(slot)
    return cache[slot]


def auth_parts(credential: JsonObject | None) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that authenticate with `credential`."""
    if credential is None:
        return {}, {}
    kind = str(credential.get("type") or _guess_type(credential))

    def need(name: str) -> str:
        value = credential.get(name)
        if value is None or value == "":
            raise NodeError(f"the {kind} credential has no {name!r}")
        return str(value)

    if kind == "basic":
        token = base64.b64encode(f"{need('username')}:{need('password')}".encode()).decode()
        return {"Authorization": f"Basic {token}"}, {}
    if kind == "bearer":
        return {"Authorization": f"Bearer {need('token')}"}, {}
    if kind == "oauth2":  # the resolver refreshed the access token if it had expired
        return {"Authorization": f"Bearer {need('access_token')}"}, {}
    if kind in {"header", "query"}:
        pair = {need("name"): need("value")}
        return (pair, {}) if kind == "header" else ({}, pair)
    if kind == "api_key":
        key = str(credential.get("value") or need("key"))
        name = str(credential.get("name") or "X-API-Key")
        return ({}, {name: key}) if credential.get("in") == "query" else ({name: key}, {})
    raise NodeError(
        f"credential type {kind!r} cannot authenticate an HTTP request; "
        f"use one of {', '.join(CREDENTIAL_TYPES)}"
    )


def _guess_type(credential: JsonObject) -> str:
    if "token" in credential:
        return "bearer"
    if "username" in credential:
        return "basic"
    return "header" if "name" in credential else "unknown"


# --- responses ----------------------------------------------------------------


def media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def is_text(media: str, content: bytes) -> bool:
    if any(marker in media for marker in _TEXT_TYPES):
        return True
    if b"\x00" in content:
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_json(content: bytes) -> Any:
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return MISSING


def decode_text(content: bytes, response: httpx.Response) -> str:
    try:
        return content.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset
        return content.decode("utf-8", errors="replace")


def body_excerpt(content: bytes, response: httpx.Response) -> str:
    text = " ".join(decode_text(content[: EXCERPT_CHARS * 4], response).split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def response_file_name(response: httpx.Response) -> str | None:
    disposition = response.headers.get("content-disposition")
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        name = message.get_filename()
        if name:
            return name
    last = response.url.path.rsplit("/", 1)[-1]
    return last or None


# --- items --------------------------------------------------------------------


