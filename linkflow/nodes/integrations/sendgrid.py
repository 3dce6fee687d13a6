"""The SendGrid integration: the `sendgrid` node (mail send, with attachments from the
items' binaries and dynamic templates) and the `sendgrid` credential (an API key), on
SendGrid's v3 Web API called with httpx through `ctx.http()`.

Decisions:
- No SDK: the official `sendgrid` package is synchronous (python-http-client on
  urllib), so its requests would bypass the SSRF-guarded client; mail send is one
  POST of a JSON document.
- One message per item, one personalization per message (its to, cc and bcc, and
  the template's dynamic data). SendGrid refuses an address that appears twice
  across to, cc and bcc; the node says so before sending.
- SendGrid answers 202 with an empty body and the message's id in
  `X-Message-Id`, which the item carries out. Its errors are
  `{"errors": [{"message", "field"}]}`: the node quotes each message with its field.
- A 429 is retryable after `Retry-After`, or, as SendGrid documents its limits,
  after the epoch second in `X-RateLimit-Reset`.
- The base URL is the credential's (default https://api.sendgrid.com; the EU
  subuser region is https://api.eu.sendgrid.com), so tests and proxies can stand in.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any, ClassVar, Final

import httpx

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.integrations._rest import (
    TIMEOUT_PARAMETER,
    Answer,
    Rest,
    Service,
    base_url,
    header_retry_after,
)
from linkflow.nodes.sdk import (
    BinaryRef,
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    amap_items,
)

__all__ = ["CREDENTIALS", "NODES", "SENDGRID_CREDENTIAL", "SendGrid"]

BASE_URL: Final = "https://api.sendgrid.com"
MAX_MESSAGE_BYTES: Final = 30 * 1024 * 1024
"""SendGrid's limit for a whole message, attachments included (base64 grows them by 4/3)."""
MAIL_SEND_SCOPE: Final = "mail.send"


def _detail(body: Any) -> str | None:
    """SendGrid's `{"errors": [{"message", "field"}]}`, each message with its field."""
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return None
    parts = []
    for error in body["errors"]:
        if not isinstance(error, dict) or not error.get("message"):
            continue
        field = error.get("field")
        parts.append(f"{error['message']} ({field})" if field else str(error["message"]))
    return "; ".join(parts) or None


def _retry_after(answer: Answer, now: datetime) -> float | None:
    delay = header_retry_after(answer, now)
    if delay is not None:
        return delay
    reset = answer.headers.get("x-ratelimit-reset", "")
    if reset.isdigit():
        return max(0.0, float(reset) - now.timestamp())
    return None


SERVICE: Final = Service("sendgrid", detail=_detail, retry_after=_retry_after)


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    key = str(data.get("api_key") or "")
    return Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers={"Authorization": f"Bearer {key}"}, secrets=(key,))  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /v3/scopes: the key is valid, and it may send mail."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    body = (await rest.call("test", "GET", "/v3/scopes")).body
    scopes = body.get("scopes") if isinstance(body, dict) else None
    if not isinstance(scopes, list):
        raise rest.error("test", "the answer has no scopes list")
    if MAIL_SEND_SCOPE not in scopes:
        raise rest.error("test", f"the key is valid but lacks the {MAIL_SEND_SCOPE} scope")
    return f"the key may send mail ({len(scopes)} scopes)"


SENDGRID_CREDENTIAL: Final = CredentialType(
    "sendgrid",
    "SendGrid",
    "A SendGrid API key with the mail.send scope.",
    (
        CredentialField("api_key", required=True, secret=True,
                        description="The key (SG....) from Settings → API Keys."),
        CredentialField("base_url", "url", default=BASE_URL,
                        description="The v3 API's address (the EU region: "
                        "https://api.eu.sendgrid.com)."),
    ),
    check=_check,
)  # fmt: skip

_ADDRESS_LIST: Final = {"type": ["string", "array"], "items": {"type": "string"}}


class SendGrid(Node):
    type = "sendgrid"
    display_name = "SendGrid"
    group = NodeGroup.ACTION
    description = (
        "Sends one e-mail per item through SendGrid's v3 mail send API (credential slot "
        "`sendgrid`): from `from_address` to `to` (and `cc`, `bcc`; a list, or a "
        "comma-separated string, `Name <address>` allowed), with `subject` and a `text` "
        "and/or `html` body, or a dynamic template (`template_id` with "
        "`dynamic_template_data`). `attachments` names the item's binaries to attach "
        '(`["*"]`: all of them). The item comes out with SendGrid\'s `message_id` and the '
        "`recipients`. A 429 is retryable after SendGrid's Retry-After."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"sendgrid": ("sendgrid",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": ["mail"], "default": "mail",
                         "description": "What to act on: mail."},
            "operation": {"type": "string", "enum": ["send"], "default": "send",
                          "description": "What to do: send a message."},
            "from_address": {"type": "string", "minLength": 3,
                             "description": "The sender (a verified one), e.g. "
                             "`Ada <ada@example.com>`."},
            "to": {**_ADDRESS_LIST, "description": "The recipients."},
            "cc": {**_ADDRESS_LIST, "description": "Copy recipients."},
            "bcc": {**_ADDRESS_LIST, "description": "Blind copy recipients."},
            "reply_to": {"type": "string", "description": "The Reply-To address."},
            "subject": {"type": "string",
                        "description": "The subject line (a template may set its own)."},
            "text": {"type": "string", "description": "The plain text body."},
            "html": {"type": "string", "description": "The HTML body."},
            "template_id": {"type": "string", "minLength": 1,
                            "description": "A dynamic template's id (d-...)."},
            "dynamic_template_data": {"type": "object", "additionalProperties": True,
                                      "default": {},
                                      "description": "The template's data (its "
                                      "handlebars variables)."},
            "attachments": {"type": "array", "items": {"type": "string"}, "default": [],
                            "description": "Names of the item's binaries to attach; `*`: all."},
            "categories": {"type": "array", "items": {"type": "string"}, "maxItems": 10,
                           "default": [], "description": "SendGrid categories, for its stats."},
            "sandbox_mode": {"type": "boolean", "default": False,
                             "description": "Validate the message without delivering it."},
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["from_address", "to"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        if parameters.get("template_id") is None and (
            parameters.get("text") is None and parameters.get("html") is None
        ):
            return ["one of text, html and template_id is required"]
        if parameters.get("template_id") is None and parameters.get("subject") is None:
            return ["subject is required unless a template_id is set"]
        return []

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        rest: Rest | None = None

        async def send(item: Item, index: int) -> Sequence[Item]:
            nonlocal rest
            mail, recipients = await _mail(ctx, params, item, index)
            if rest is None:
                data = await ctx.credential("sendgrid")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            answer = await rest.call("mail send", "POST", "/v3/mail/send", json=mail)
            json = {**item.json, "message_id": answer.headers.get("x-message-id"),
                    "recipients": recipients}  # fmt: skip
            return [item.derive(json, index)]

        return await amap_items(ctx, send)


def _addresses(value: Any, name: str, index: int) -> list[JsonObject]:
    """`{"email", "name"?}` per address of a list or a comma-separated string."""
    if value is None:
        return []
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
        raise NodeError(f"sendgrid mail send: {name} must be an address or a list of them",
                        item_index=index)  # fmt: skip
    found: list[JsonObject] = []
    for display, address in getaddresses(parts):
        if not address:
            continue
        if "@" not in address:
            raise NodeError(f"sendgrid mail send: {name} holds {address!r}, not an e-mail "
                            "address", item_index=index)  # fmt: skip
        found.append({"email": address, "name": display} if display else {"email": address})
    return found


def _one_address(params: Params, name: str, index: int) -> JsonObject | None:
    found = _addresses(params.get(name, index), name, index)
    if len(found) > 1:
        raise NodeError(f"sendgrid mail send: {name} must be one address", item_index=index)
    return found[0] if found else None


def _personalization(params: Params, index: int) -> tuple[JsonObject, list[str]]:
    lists = {name: _addresses(params.get(name, index), name, index) for name in ("to", "cc", "bcc")}
    if not lists["to"]:
        raise NodeError("sendgrid mail send: there is no recipient in to", item_index=index)
    seen: set[str] = set()
    for entry in lists["to"] + lists["cc"] + lists["bcc"]:
        email = str(entry["email"]).lower()
        if email in seen:
            raise NodeError(f"sendgrid mail send: {entry['email']} is named twice across to, cc "
                            "and bcc (SendGrid refuses that)", item_index=index)  # fmt: skip
        seen.add(email)
    personalization: JsonObject = {name: found for name, found in lists.items() if found}
    data = params.mapping("dynamic_template_data", index)
    if data and params.optional_text("template_id", index):
        personalization["dynamic_template_data"] = data
    return personalization, [str(entry["email"]) for entries in lists.values() for entry in entries]


async def _mail(
    ctx: NodeContext, params: Params, item: Item, index: int
) -> tuple[JsonObject, list[str]]:
    """The mail send document for item `index`, and its recipients."""
    personalization, recipients = _personalization(params, index)
    sender = _one_address(params, "from_address", index)
    if sender is None:
        raise NodeError("sendgrid mail send: from_address is not an address", item_index=index)
    mail: JsonObject = {"personalizations": [personalization], "from": sender}
    reply_to = _one_address(params, "reply_to", index)
    if reply_to is not None:
        mail["reply_to"] = reply_to
    subject = params.optional_text("subject", index)
    if subject is not None:
        mail["subject"] = subject
    template = params.optional_text("template_id", index)
    if template:
        mail["template_id"] = template
    # SendGrid wants text/plain before text/html.
    content = [{"type": kind, "value": value} for kind, value in (
        ("text/plain", params.optional_text("text", index)),
        ("text/html", params.optional_text("html", index)),
    ) if value is not None]  # fmt: skip
    if content:
        mail["content"] = content
    elif not template:
        raise NodeError("sendgrid mail send: one of text, html and template_id is required",
                        item_index=index)  # fmt: skip
    if not template and subject is None:
        raise NodeError("sendgrid mail send: subject is required unless a template_id is set",
                        item_index=index)  # fmt: skip
    attachments = await _attachments(ctx, item, params.array("attachments", index), index)
    if attachments:
        mail["attachments"] = attachments
    categories = [str(category) for category in params.array("categories", index)]
    if categories:
        mail["categories"] = categories
    if params.flag("sandbox_mode", index):
        mail["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return mail, recipients


async def _attachments(
    ctx: NodeContext, item: Item, names: list[Any], index: int
) -> list[JsonObject]:
    binaries = item.binary or {}
    wanted = list(binaries) if "*" in names else [str(name) for name in names]
    found: list[JsonObject] = []
    total = 0
    for name in wanted:
        raw = binaries.get(name)
        if raw is None:
            have = ", ".join(sorted(binaries)) or "none"
            raise NodeError(f"sendgrid mail send: the item has no binary {name!r} (it has: "
                            f"{have})", item_index=index)  # fmt: skip
        ref = BinaryRef.from_json(raw)
        total += ref.size
        if total * 4 // 3 > MAX_MESSAGE_BYTES:
            raise NodeError(f"sendgrid mail send: the attachments exceed SendGrid's "
                            f"{MAX_MESSAGE_BYTES} bytes per message", item_index=index)  # fmt: skip
        content = await ctx.blobs.get(ref)
        found.append({"content": base64.b64encode(content).decode("ascii"),
                      "filename": ref.file_name or name, "type": ref.mime_type,
                      "disposition": "attachment"})  # fmt: skip
    return found


NODES: tuple[type[Node], ...] = (SendGrid,)
CREDENTIALS: tuple[CredentialType, ...] = (SENDGRID_CREDENTIAL,)
