"""The webhook trigger: an HTTP request to the workflow's webhook URL starts it."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from linkflow.nodes.builtin._common import is_expression
from linkflow.nodes.sdk import Item, JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "WebhookTrigger"]

METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_BODY_BYTES: Final = 1024 * 1024
"""1 MiB: generous for JSON payloads, small enough that a flood cannot exhaust memory."""
MAX_BODY_BYTES_CAP: Final = 64 * 1024 * 1024
"""A call's body is held in memory while its execution starts: this bounds it."""

# `rate_limit`'s notation, the `limits` library's subset the docs promise: `N/unit` or
# `N/M units`, or `unlimited` (which overrides a server-wide default).
_RATE: Final = re.compile(r"[1-9][0-9]*\s*/\s*([1-9][0-9]*\s*)?(second|minute|hour|day)s?")
UNLIMITED: Final = "unlimited"

# URL path characters that need no escaping (RFC 3986 unreserved + "/" + ":" for parameters).
_PATH: Final = re.compile(r"[A-Za-z0-9._~:/-]*")


class WebhookTrigger(Node):
    type = "webhook"
    display_name = "Webhook"
    group = NodeGroup.TRIGGER
    description = (
        "Starts the workflow when an HTTP request arrives at "
        "`/webhooks/{endpoint_id}/{path}` (a random endpoint id, rotated on request). "
        "Optionally checks a signature (`X-LinkFlow-Timestamp: <unix seconds>` and "
        "`X-LinkFlow-Signature: sha256=<hex HMAC-SHA256 of \"<timestamp>.<raw body>\">`, "
        "within 5 minutes, each signature accepted once), the caller's IP and the body size "
        "(413 when larger). `response_mode` decides what the caller gets back. Headers that "
        "carry credentials or signatures reach the workflow as `[redacted]`."
    )
    inputs = 0
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "description": "Path after the endpoint's URL; letters, digits and `._~:/-`.",
                "default": "",
            },
            "method": {
                "type": "string",
                "enum": list(METHODS),
                "description": "The HTTP method that triggers the workflow.",
                "default": "POST",
            },
            "response_mode": {
                "type": "string",
                "enum": ["immediately", "last_node", "respond_node"],
                "description": (
                    "`immediately`: 202 with the execution id; `last_node`: the last node's "
                    "first item as JSON; `respond_node`: a `respond_to_webhook` node answers."
                ),
                "default": "immediately",
            },
            "secret": {
                "anyOf": [
                    {"type": ["string", "null"]},
                    {
                        "type": "object",
                        "properties": {"sealed": {"const": True}},
                        "required": ["sealed"],
                        "additionalProperties": False,
                    },
                ],
                "description": (
                    "When set, requests must be signed with this secret (see the node's "
                    "description). Write-only: it is stored sealed, and the workflow reads "
                    "back `{\"sealed\": true}` in its place; saving that again keeps the "
                    "secret, a new string replaces it, null removes it."
                ),
                "default": None,
            },
            "legacy_signature": {
                "type": "boolean",
                "description": (
                    "Also accept the old scheme: `X-LinkFlow-Signature: sha256=<hex "
                    "HMAC-SHA256 of the raw body>` without a timestamp. It can be replayed "
                    "forever by whoever sees one call: only for senders that cannot sign "
                    "the timestamp."
                ),
                "default": False,
            },
            "ip_allowlist": {
                "type": "array",
                "items": {"type": "string"},
                "description": "IP addresses or CIDR ranges allowed to call; empty allows all.",
                "default": [],
            },
            "max_body_bytes": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_BODY_BYTES_CAP,
                "description": (
                    "Largest accepted request body in bytes (413 when larger); at most 64 MiB."
                ),
                "default": MAX_BODY_BYTES,
            },
            "rate_limit": {
                "type": ["string", "null"],
                "description": (
                    "Calls this webhook accepts, from all callers together: `N/second`, "
                    "`N/minute`, `N/hour`, `N/day` (or `N/M minutes`...); beyond it, 429 "
                    "`webhook_rate_limited` with `Retry-After`. `unlimited` lifts the "
                    "server's default (`LINKFLOW_WEBHOOK_RATE_LIMIT`, unset: no limit); "
                    "null takes it. The API's per-address limit does not apply to webhooks."
                ),
                "default": None,
            },
        },
        "required": [],
        "additionalProperties": False,
    }
    emits = (
        "One item `{method, path, headers, query, body}` describing the request; `body` is "
        "the parsed JSON, the form's fields (urlencoded or multipart: an object, a repeated "
        "name the list of its values), else the text. The files of a multipart body become "
        "binary items in the blob store: the item's `binary[<field name>]` is `{ref, size, "
        "mime_type, file_name}` (a name ending in `[]` loses it; several files under one "
        "name are `name0`, `name1`...), which `http_request` can send on (`body_type: "
        "binary` or `multipart` with `files`); the execution's input holds these refs, not "
        "the bytes."
    )

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        problems = _path_problems(parameters.get("path"))
        allowlist = parameters.get("ip_allowlist")
        if isinstance(allowlist, list):
            problems.extend(_network_problems(allowlist))
        problems.extend(_rate_problems(parameters.get("rate_limit")))
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        request = ctx.trigger_input
        if not isinstance(request, dict):
            # The webhook layer always sends a request object; anything else (a manual
            # test run) is treated as the body of a request to this endpoint.
            request = _request_around(request, ctx.raw_parameters)
        binary = _binaries(request.get("binary"))
        if binary is None:
            return NodeResult.main([Item(json=request, paired=())])
        json = {name: value for name, value in request.items() if name != "binary"}
        return NodeResult.main([Item(json=json, paired=(), binary=binary)])


def _binaries(raw: Any) -> dict[str, JsonObject] | None:
    """The uploaded files the webhook layer stored (`{name: BinaryRef json}`), if any."""
    if not isinstance(raw, dict) or not raw:
        return None
    files = {name: entry for name, entry in raw.items()
             if isinstance(entry, dict) and isinstance(entry.get("ref"), str)}  # fmt: skip
    return files or None


def _request_around(body: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    method = parameters.get("method", "POST")
    path = parameters.get("path", "")
    return {
        "method": method if isinstance(method, str) else "POST",
        "path": path if isinstance(path, str) else "",
        "headers": {},
        "query": {},
        "body": body,
    }


def _path_problems(path: Any) -> list[str]:
    if not isinstance(path, str) or is_expression(path):
        return [] if path is None else ["path must be a literal string, not an expression"]
    if not _PATH.fullmatch(path):
        return [f"path {path!r} may contain only letters, digits and ._~:/-"]
    return []


def _rate_problems(rate: Any) -> list[str]:
    if not isinstance(rate, str) or rate == UNLIMITED:
        return []  # null, or another type: the schema speaks for it
    if is_expression(rate):
        return ["rate_limit must be a literal string, not an expression"]
    if not _RATE.fullmatch(rate.strip()):
        return [f"rate_limit {rate!r} is not a rate like 100/second, 600/minute or unlimited"]
    return []


def _network_problems(allowlist: list[Any]) -> list[str]:
    problems = []
    for index, entry in enumerate(allowlist):
        if not isinstance(entry, str) or is_expression(entry):
            continue
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            problems.append(f"ip_allowlist[{index}]: {entry!r} is not an IP address or CIDR range")
    return problems


NODES: tuple[type[Node], ...] = (WebhookTrigger,)
