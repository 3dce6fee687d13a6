"""JSON, hashing and HMAC, base64, URLs and HTML entities.

Hashes read text as UTF-8; any other value is hashed as its compact JSON with
sorted keys, so equal objects hash equally. Digests are lower-case hex unless
`encoding="base64"` is asked for (Shopify and Slack style signatures).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
from collections.abc import Callable
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import orjson

from linkflow.engine.expressions._convert import to_json_value
from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions.library._base import (
    Entry,
    as_mapping,
    as_text,
    quoted,
    render_text,
)

__all__ = ["ENTRIES"]


def to_json(value: object, pretty: object = False) -> str:
    """JSON text: compact, or indented by 2 with `pretty=true`."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    data = to_json_value(value)
    try:
        return orjson.dumps(data, option=option).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        if pretty:
            return json.dumps(data, indent=2, ensure_ascii=False)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def from_json(value: object) -> object:
    """Parse JSON text."""
    text = as_text(value)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ExpressionError(f"invalid JSON at position {error.pos}: {error.msg}") from None


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    data = to_json_value(value)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def _digest(raw: bytes, encoding: object) -> str:
    kind = as_text(encoding)
    if kind == "hex":
        return raw.hex()
    if kind == "base64":
        return base64.b64encode(raw).decode()
    raise ExpressionError(f"unknown digest encoding {kind!r} (use hex or base64)")


def _hasher(name: str) -> Callable[[object, object], str]:
    def digest(value: object, encoding: object = "hex") -> str:
        return _digest(hashlib.new(name, _bytes(value), usedforsecurity=False).digest(), encoding)

    digest.__name__ = name
    digest.__doc__ = f"{name.upper()} digest of the value."
    return digest


def _hmac(name: str) -> Callable[[object, object, object], str]:
    def sign(value: object, key: object, encoding: object = "hex") -> str:
        return _digest(hmac.new(_bytes(key), _bytes(value), name).digest(), encoding)

    sign.__name__ = f"hmac_{name}"
    sign.__doc__ = f"HMAC-{name.upper()} of the value with `key`."
    return sign


def b64encode(value: object) -> str:
    """Standard base64 of the UTF-8 text."""
    return base64.b64encode(_bytes(value)).decode()


def _decoded_text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ExpressionError("the decoded data is binary, not UTF-8 text") from None


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)


def b64decode(value: object) -> str:
    """Decode standard base64 into UTF-8 text (missing padding is tolerated)."""
    try:
        raw = base64.b64decode(_padded(as_text(value).strip()), validate=True)
    except (binascii.Error, ValueError):
        raise ExpressionError("the value is not valid base64") from None
    return _decoded_text(raw)


def b64url_encode(value: object) -> str:
    """URL-safe base64 without padding (as in JWTs)."""
    return base64.urlsafe_b64encode(_bytes(value)).decode().rstrip("=")


def b64url_decode(value: object) -> str:
    """Decode URL-safe base64 (padding optional) into UTF-8 text."""
    text = _padded(as_text(value).strip())
    try:
        raw = base64.b64decode(text, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ExpressionError("the value is not valid URL-safe base64") from None
    return _decoded_text(raw)


def url_encode(value: object) -> str:
    """Percent-encode text for use inside a URL component (like encodeURIComponent)."""
    return quote(as_text(value), safe="-_.!~*'()")


def url_decode(value: object) -> str:
    """Decode percent-encoding (a "+" stays a "+")."""
    return unquote(as_text(value))


def _query_value(value: object) -> str:
    return render_text(value)


def query_string(value: object) -> str:
    """Encode an object as a URL query; lists repeat the key, nulls are left out."""
    pairs: list[tuple[str, str]] = []
    for key, item in as_mapping(value).items():
        if item is None:
            continue
        if isinstance(item, list | tuple):
            pairs.extend((key, _query_value(v)) for v in item if v is not None)
        else:
            pairs.append((key, _query_value(item)))
    return urlencode(pairs)


def url_parse(value: object) -> dict[str, object]:
    """Split a URL into scheme, host, port, path, query (an object) and fragment."""
    try:
        parts = urlsplit(as_text(value))
        port = parts.port
    except ValueError:
        raise ExpressionError(f"{quoted(as_text(value))} is not a valid URL") from None
    query: dict[str, object] = {
        k: v[0] if len(v) == 1 else v
        for k, v in parse_qs(parts.query, keep_blank_values=True).items()
    }
    return {
        "scheme": parts.scheme,
        "host": parts.hostname,
        "port": port,
        "path": parts.path,
        "query": query,
        "fragment": parts.fragment,
        "username": parts.username,
    }


def html_unescape(value: object) -> str:
    """Decode HTML entities: "&amp;lt;" → "<"."""
    return html.unescape(as_text(value))


ENTRIES = (
    Entry("to_json", to_json),
    Entry("from_json", from_json),
    Entry("md5", _hasher("md5")),
    Entry("sha1", _hasher("sha1")),
    Entry("sha256", _hasher("sha256")),
    Entry("sha512", _hasher("sha512")),
    Entry("hmac_sha1", _hmac("sha1")),
    Entry("hmac_sha256", _hmac("sha256")),
    Entry("hmac_sha512", _hmac("sha512")),
    Entry("b64encode", b64encode),
    Entry("b64decode", b64decode),
    Entry("b64url_encode", b64url_encode),
    Entry("b64url_decode", b64url_decode),
    Entry("url_encode", url_encode),
    Entry("url_decode", url_decode),
    Entry("url_parse", url_parse),
    Entry("query_string", query_string),
    Entry("html_unescape", html_unescape),
)
