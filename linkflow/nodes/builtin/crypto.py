"""The crypto node: hashes, HMACs, UUIDs and base64, per item."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

from linkflow.nodes.builtin._common import Params, canonical_json, set_path
from linkflow.nodes.sdk import (
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    map_items,
)

__all__ = ["NODES", "Crypto"]

OPERATIONS: Final = ("hash", "hmac", "uuid", "base64_encode", "base64_decode")
ALGORITHMS: Final = ("md5", "sha1", "sha256", "sha384", "sha512")

# Parameters each operation needs beyond `operation` (checked when written, not per item).
_REQUIRED: Final = {
    "hash": ("value",),
    "hmac": ("value", "secret"),
    "base64_encode": ("value",),
    "base64_decode": ("value",),
}


class Crypto(Node):
    type = "crypto"
    display_name = "Crypto"
    group = NodeGroup.ACTION
    description = (
        "Per item, writes to `output_field`: `hash` (digest of `value` by `algorithm`), "
        "`hmac` (keyed with `secret`), `uuid` (a random UUID v4, recorded so a replay sees the "
        "same one), `base64_encode` or `base64_decode` (standard or URL-safe alphabet, padding "
        "optional; the result must be UTF-8 text). Text is taken as UTF-8; a `value` that is "
        "not text is first written as compact JSON with sorted keys. md5 and sha1 are for "
        "checksums and legacy APIs, not for security."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {
                "type": "string",
                "enum": list(OPERATIONS),
                "description": "What to compute.",
                "default": "hash",
            },
            "value": {
                "description": "The input: text, or any JSON value (hashed as canonical JSON).",
            },
            "algorithm": {
                "type": "string",
                "enum": list(ALGORITHMS),
                "description": "hash/hmac: the digest algorithm.",
                "default": "sha256",
            },
            "secret": {
                "type": "string",
                "description": "hmac: the key (UTF-8).",
            },
            "encoding": {
                "type": "string",
                "enum": ["hex", "base64"],
                "description": "hash/hmac: how the digest is written.",
                "default": "hex",
            },
            "output_field": {
                "type": "string",
                "description": "Dotted path where the result is written.",
                "default": "data",
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "hash")
        return [
            f"{name} is required when operation is {operation}"
            for name in _REQUIRED.get(operation, ())
            if parameters.get(name) is None
        ]

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        operation = _OPERATIONS[params.text("operation")]

        def apply(item: Item, index: int) -> Item:
            result = operation(ctx, params, index)
            json = dict(item.json)
            set_path(json, params.text("output_field", index), result)
            return item.derive(json, index)

        return map_items(ctx, apply)


def _value_bytes(params: Params, index: int) -> bytes:
    value = params.required("value", index)
    text = value if isinstance(value, str) else canonical_json(value)
    return text.encode()


def _encode(digest: bytes, params: Params, index: int) -> str:
    if params.text("encoding", index) == "base64":
        return base64.b64encode(digest).decode("ascii")
    return digest.hex()


def _hash(ctx: NodeContext, params: Params, index: int) -> str:
    algorithm = params.text("algorithm", index)
    digest = hashlib.new(algorithm, _value_bytes(params, index), usedforsecurity=False).digest()
    return _encode(digest, params, index)


def _hmac(ctx: NodeContext, params: Params, index: int) -> str:
    key = params.text("secret", index).encode()
    digest = hmac.new(key, _value_bytes(params, index), params.text("algorithm", index)).digest()
    return _encode(digest, params, index)


def _uuid(ctx: NodeContext, params: Params, index: int) -> str:
    return ctx.uuid4()


def _base64_encode(ctx: NodeContext, params: Params, index: int) -> str:
    return base64.b64encode(_value_bytes(params, index)).decode("ascii")


def _base64_decode(ctx: NodeContext, params: Params, index: int) -> str:
    text = params.text("value", index).strip()
    # Accept the URL-safe alphabet and missing padding: both are common in tokens.
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True).decode("utf-8")
    except binascii.Error:
        raise NodeError("parameter 'value' is not valid base64") from None
    except UnicodeDecodeError:
        raise NodeError("parameter 'value' does not decode to UTF-8 text") from None


_OPERATIONS: Final[Mapping[str, Callable[[NodeContext, Params, int], str]]] = {
    "hash": _hash,
    "hmac": _hmac,
    "uuid": _uuid,
    "base64_encode": _base64_encode,
    "base64_decode": _base64_decode,
}


NODES: tuple[type[Node], ...] = (Crypto,)
