"""The Twilio integration: the `twilio` node (SMS send) and the `twilio` credential (an
account's SID and auth token), on Twilio's REST API (2010-04-01) called with httpx
through `ctx.http()`.

Decisions:
- No SDK: twilio-python brings its own HTTP client (requests, or aiohttp for async),
  whose connections would not pass the SSRF guard; sending is one form POST.
- Twilio's 2010 API takes form-encoded fields with its capitalised names (`To`,
  `From`, `MessagingServiceSid`, `Body`, `MediaUrl` repeated per URL) and HTTP basic
  auth `AccountSid:AuthToken`; the `.json` suffix asks for JSON answers.
- A message goes from `from` (a Twilio number), through `messaging_service_sid`, or
  both (Twilio then sends from `from`, which must be in the service's pool).
- The output item is the Message resource Twilio returns (`sid`, `status`, ...):
  `queued` or `accepted`, not yet delivered.
- Twilio's errors are `{"code", "message", "more_info", "status"}`: the message, the
  code and its documentation link are in the node error; a 429 (code 20429) is
  retryable, after Retry-After when Twilio sends one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote

import httpx

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.integrations._rest import TIMEOUT_PARAMETER, Rest, Service, base_url
from linkflow.nodes.sdk import (
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

__all__ = ["CREDENTIALS", "NODES", "TWILIO_CREDENTIAL", "Twilio"]

BASE_URL: Final = "https://api.twilio.com"
API_VERSION: Final = "/2010-04-01"
MAX_MEDIA: Final = 10
"""Twilio takes at most 10 MediaUrl per message."""
MAX_BODY_CHARS: Final = 1600
"""Twilio refuses a longer Body (error 21617)."""
_SID_PATTERN: Final = "^MG[0-9a-fA-F]{32}$"


def _detail(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    code = body.get("code")
    more = body.get("more_info")
    said = str(body["message"])
    if code is None:
        return said
    return f"{said} (Twilio error {code}" + (f", {more})" if more else ")")


SERVICE: Final = Service("twilio", detail=_detail)


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> tuple[Rest, str]:
    sid = str(data.get("account_sid") or "")
    token = str(data.get("auth_token") or "")
    basic = base64.b64encode(f"{sid}:{token}".encode()).decode("ascii")
    rest = Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers={"Authorization": f"Basic {basic}"}, secrets=(token, basic))  # fmt: skip
    return rest, f"{API_VERSION}/Accounts/{quote(sid, safe='')}"


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /2010-04-01/Accounts/{AccountSid}.json: the SID and token work together."""
    rest, account = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    body = (await rest.call("account get", "GET", f"{account}.json")).body
    if not isinstance(body, dict):
        raise rest.error("account get", "the answer is not a JSON object")
    return f"authenticated as {body.get('friendly_name')} ({body.get('status')})"


TWILIO_CREDENTIAL: Final = CredentialType(
    "twilio",
    "Twilio",
    "A Twilio account's SID and auth token (Console, Account Info).",
    (
        CredentialField(
            "account_sid", required=True, description="The account's SID (AC followed by 32 hex)."
        ),
        CredentialField("auth_token", required=True, secret=True, description="The auth token."),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The API's address, without the version (another one for tests).",
        ),
    ),
    check=_check,
)


class Twilio(Node):
    type = "twilio"
    display_name = "Twilio"
    group = NodeGroup.ACTION
    description = (
        "Per item, one Twilio API call (credential slot `twilio`): `sms` `send` sends `body` "
        "(and `media_url`s, as MMS) to `to`, from `from` or through `messaging_service_sid` "
        "(POST /2010-04-01/Accounts/{AccountSid}/Messages.json). The output item is the "
        "Message Twilio returns (`sid`, `status`: queued, not yet delivered). Twilio's errors "
        "fail the item with its message and error code; a 429 is retryable after Retry-After. "
        "The auth token is never shown in errors or logs."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"twilio": ("twilio",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": ["sms"], "default": "sms",
                         "description": "What to act on: an SMS (or MMS) message."},
            "operation": {"type": "string", "enum": ["send"], "default": "send",
                          "description": "send: send the message."},
            "to": {"type": "string", "minLength": 1,
                   "description": "The recipient, in E.164 (`+15558675310`), or a channel "
                                  "address (`whatsapp:+15558675310`)."},
            "from": {"type": "string", "minLength": 1,
                     "description": "The sender: a Twilio number in E.164, an alphanumeric "
                                    "sender id, or a channel address."},
            "messaging_service_sid": {"type": "string", "pattern": _SID_PATTERN,
                                      "description": "The Messaging Service to send through "
                                                     "(MG...), instead of or with `from`."},
            "body": {"type": "string", "minLength": 1, "maxLength": MAX_BODY_CHARS,
                     "description": "The text of the message."},
            "media_url": {"type": "array", "maxItems": MAX_MEDIA,
                          "items": {"type": "string", "format": "uri", "minLength": 1},
                          "default": [],
                          "description": f"Public URLs of media to send (MMS), at most "
                                         f"{MAX_MEDIA}."},
            "extra": {"type": "object", "additionalProperties": {"type": ["string", "number",
                                                                          "boolean"]},
                      "default": {},
                      "description": "More fields of Twilio's Messages API, sent as they are "
                                     "(e.g. `StatusCallback`, `ValidityPeriod`)."},
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["to"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        problems = []
        if parameters.get("from") is None and parameters.get("messaging_service_sid") is None:
            problems.append("sms send needs from or messaging_service_sid")
        if parameters.get("body") is None and not parameters.get("media_url"):
            problems.append("sms send needs a body or a media_url")
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        api: tuple[Rest, str] | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal api
            resource = params.text("resource", index)
            operation = params.text("operation", index)
            if (resource, operation) != ("sms", "send"):
                raise NodeError(f"twilio: {resource} has no operation {operation!r}",
                                item_index=index)  # fmt: skip
            if api is None:
                data = await ctx.credential("twilio")
                api = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            rest, account = api
            form = _form(params, index)
            answer = await rest.call("sms send", "POST", f"{account}/Messages.json", data=form)
            if not isinstance(answer.body, dict) or not answer.body.get("sid"):
                raise rest.error("sms send", "the answer is not a Message (no sid)")
            return [item.derive(answer.body, index)]

        return await amap_items(ctx, apply)


def _form(params: Params, index: int) -> dict[str, Any]:
    extra = params.mapping("extra", index)
    form: dict[str, Any] = {name: _field(value) for name, value in extra.items()}
    form["To"] = params.text("to", index)
    sender = params.optional_text("from", index)
    service = params.optional_text("messaging_service_sid", index)
    if sender is None and service is None:
        raise NodeError("twilio sms send: from or messaging_service_sid is required",
                        item_index=index)  # fmt: skip
    if sender is not None:
        form["From"] = sender
    if service is not None:
        form["MessagingServiceSid"] = service
    body = params.optional_text("body", index)
    media = [str(url) for url in params.array("media_url", index) if url]
    if body is None and not media:
        raise NodeError("twilio sms send: a body or a media_url is required", item_index=index)
    if body is not None:
        form["Body"] = body
    if media:
        form["MediaUrl"] = media
    return form


def _field(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


NODES: tuple[type[Node], ...] = (Twilio,)
CREDENTIALS: tuple[CredentialType, ...] = (TWILIO_CREDENTIAL,)
