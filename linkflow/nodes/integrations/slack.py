"""The Slack integration: the `slack` node (message post/update/delete, channel
list/create, user get/list) and the `slack` credential (a bot token), on Slack's
Web API called with httpx through `ctx.http()`.

Decisions:
- No SDK: slack_sdk's async client brings aiohttp, whose connections would not
  pass the SSRF guard; the Web API is one POST or GET per method.
- Writes send JSON (`Content-Type: application/json; charset=utf-8`, as Slack
  asks); reads send query parameters. The token goes in `Authorization: Bearer`.
- Slack answers HTTP 200 with `{"ok": false, "error": "<code>"}` for most
  failures: that is a node error naming the operation and Slack's code (and,
  for `missing_scope`, the scope Slack says is needed). A refused token, a 429
  (with Retry-After) and Slack's own transient codes are told apart.
- Lists follow `response_metadata.next_cursor` until `limit` records are in
  hand, asking for no more than needed per page (Slack allows up to 1000, and
  recommends 200).
- Each output item is what Slack answered (without `ok`), or one item per
  channel or user for the lists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

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

__all__ = ["CREDENTIALS", "NODES", "SLACK_CREDENTIAL", "Slack"]

BASE_URL: Final = "https://slack.com/api"
PAGE_SIZE: Final = 200
"""Records per page of a list: what Slack recommends (it allows up to 1000)."""
JSON_TYPE: Final = "application/json; charset=utf-8"

OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "message": ("post", "update", "delete"),
    "channel": ("list", "create"),
    "user": ("get", "list"),
}
_REQUIRED: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("message", "post"): ("channel",),
    ("message", "update"): ("channel", "ts"),
    ("message", "delete"): ("channel", "ts"),
    ("channel", "create"): ("name",),
    ("user", "get"): ("user",),
}
_REFUSED_TOKEN: Final = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
_TRANSIENT: Final = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
"""Slack's codes for failures of its own that may pass on a later try."""


def _detail(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


SERVICE: Final = Service("slack", detail=_detail)


def _refuse_not_ok(rest: Rest, operation: str, answer: Answer) -> None:
    body = answer.body
    if not isinstance(body, dict):
        raise rest.error(operation, "the answer is not a JSON object")
    if body.get("ok") is True:
        return
    code = str(body.get("error") or "unknown_error")
    if code in _REFUSED_TOKEN:
        raise rest.error(operation, f"Slack refused the token ({code})")
    if code == "missing_scope":
        needed = body.get("needed")
        scope = f"; the token needs the {needed} scope" if needed else ""
        raise rest.error(operation, f"Slack answered missing_scope{scope}")
    raise rest.error(operation, f"Slack answered {code}", retryable=code in _TRANSIENT)


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    token = str(data.get("token") or "")
    return Rest(
        http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
        headers={"Authorization": f"Bearer {token}"}, secrets=(token,), check=_refuse_not_ok,
    )  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """auth.test with the token: who it is, in which workspace."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    body = (await rest.call("auth test", "POST", "/auth.test")).body
    return f"authenticated as {body.get('user')} in {body.get('team')}"


SLACK_CREDENTIAL: Final = CredentialType(
    "slack",
    "Slack",
    "A Slack app's bot token (xoxb-...) or user token (xoxp-...).",
    (
        CredentialField(
            "token",
            required=True,
            secret=True,
            description="The OAuth token from the app's OAuth & Permissions page.",
        ),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The Web API's address (another one for a proxy or tests).",
        ),
    ),
    check=_check,
)


class Slack(Node):
    type = "slack"
    display_name = "Slack"
    group = NodeGroup.ACTION
    description = (
        "Per item, one Slack Web API call (credential slot `slack`): `message` `post` "
        "(chat.postMessage: `text` and/or `blocks` to `channel`, in `thread_ts`), `update` "
        "(chat.update of `ts`) or `delete` (chat.delete); `channel` `list` "
        "(conversations.list, one item per channel) or `create` (conversations.create); "
        "`user` `get` (users.info) or `list` (users.list, one item per user). Lists follow "
        "Slack's cursors up to `limit` records (`return_all`: every one). The output item is "
        "Slack's answer without `ok`. Slack's `{ok: false}` answers fail the item with "
        "Slack's error code; a 429 is retryable after Slack's Retry-After."
    )
    lineage = Lineage.ONE_TO_MANY
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"slack": ("slack",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": list(OPERATIONS), "default": "message",
                         "description": "What to act on: a message, a channel or a user."},
            "operation": {"type": "string", "enum": ["post", "update", "delete", "list",
                                                     "create", "get"],
                          "default": "post",
                          "description": "message: post, update, delete; channel: list, "
                                         "create; user: get, list."},
            "channel": {"type": "string", "minLength": 1,
                        "description": "message: the channel's id (or `#name` for post)."},
            "text": {"type": "string",
                     "description": "message post, update: the text (the fallback with blocks)."},
            "blocks": {"type": "array", "items": {"type": "object"},
                       "description": "message post, update: Block Kit blocks."},
            "thread_ts": {"type": "string", "minLength": 1,
                          "description": "message post: reply in the thread of this message."},
            "ts": {"type": "string", "minLength": 1,
                   "description": "message update, delete: the message's timestamp id."},
            "name": {"type": "string", "minLength": 1, "maxLength": 80,
                     "description": "channel create: the new channel's name."},
            "is_private": {"type": "boolean", "default": False,
                           "description": "channel create: a private channel."},
            "types": {"type": "string", "default": "public_channel",
                      "description": "channel list: comma-separated kinds, e.g. "
                                     "`public_channel,private_channel`."},
            "exclude_archived": {"type": "boolean", "default": True,
                                 "description": "channel list: leave archived channels out."},
            "user": {"type": "string", "minLength": 1, "description": "user get: the user's id."},
            **LIST_PARAMETERS,
            "extra": {"type": "object", "additionalProperties": True, "default": {},
                      "description": "More arguments of the Slack method, sent as they are "
                                     "(e.g. `unfurl_links`, `mrkdwn`)."},
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["resource", "operation"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        resource = parameters.get("resource", "message")
        operation = parameters.get("operation", "post")
        allowed = OPERATIONS.get(resource, ())
        if operation not in allowed:
            return [f"operation {operation!r} is not one of {resource}'s: {', '.join(allowed)}"]
        problems = [
            f"{name} is required for {resource} {operation}"
            for name in _REQUIRED.get((resource, operation), ())
            if parameters.get(name) is None
        ]
        if (resource, operation) in {("message", "post"), ("message", "update")} and (
            parameters.get("text") is None and parameters.get("blocks") is None
        ):
            problems.append(f"one of text and blocks is required to {operation} a message")
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        rest: Rest | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal rest
            resource = params.text("resource", index)
            operation = params.text("operation", index)
            if operation not in OPERATIONS.get(resource, ()):
                raise NodeError(f"slack: {resource} has no operation {operation!r}")
            if rest is None:
                data = await ctx.credential("slack")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            answers = await _OPERATIONS[(resource, operation)](rest, params, index)
            return [item.derive(answer, index) for answer in answers]

        return await amap_items(ctx, apply)


def _without_ok(body: JsonObject) -> JsonObject:
    return {key: value for key, value in body.items() if key not in {"ok", "warning"}}


def _message_fields(params: Params, index: int) -> JsonObject:
    fields: JsonObject = {"channel": params.text("channel", index)}
    text = params.optional_text("text", index)
    if text is not None:
        fields["text"] = text
    blocks = params.get("blocks", index)
    if blocks is not None:
        fields["blocks"] = blocks
    return fields


async def _post(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    body = {**params.mapping("extra", index), **_message_fields(params, index)}
    thread = params.optional_text("thread_ts", index)
    if thread is not None:
        body["thread_ts"] = thread
    return [await _write(rest, "message post", "/chat.postMessage", body)]


async def _update(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    body = {**params.mapping("extra", index), **_message_fields(params, index),
            "ts": params.text("ts", index)}  # fmt: skip
    return [await _write(rest, "message update", "/chat.update", body)]


async def _delete(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    body = {**params.mapping("extra", index), "channel": params.text("channel", index),
            "ts": params.text("ts", index)}  # fmt: skip
    return [await _write(rest, "message delete", "/chat.delete", body)]


async def _create_channel(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    body = {**params.mapping("extra", index), "name": params.text("name", index),
            "is_private": params.flag("is_private", index)}  # fmt: skip
    answer = await _write(rest, "channel create", "/conversations.create", body)
    return [answer.get("channel") or answer]


async def _get_user(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    query = {**params.mapping("extra", index), "user": params.text("user", index)}
    body = (await rest.call("user get", "GET", "/users.info", params=query)).body
    return [body.get("user") or _without_ok(body)]


async def _list_channels(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    query = {**params.mapping("extra", index), "types": params.text("types", index),
             "exclude_archived": params.flag("exclude_archived", index)}  # fmt: skip
    return await _list(rest, params, index, "channel list", "/conversations.list", "channels",
                       query)  # fmt: skip


async def _list_users(rest: Rest, params: Params, index: int) -> list[JsonObject]:
    query = params.mapping("extra", index)
    return await _list(rest, params, index, "user list", "/users.list", "members", query)


async def _write(rest: Rest, operation: str, path: str, body: JsonObject) -> JsonObject:
    answer = await rest.call(operation, "POST", path, json=body,
                             headers={"Content-Type": JSON_TYPE})  # fmt: skip
    return _without_ok(answer.body)


async def _list(
    rest: Rest, params: Params, index: int, operation: str, path: str, key: str,
    query: Mapping[str, Any],
) -> list[JsonObject]:  # fmt: skip
    limit = list_limit(params.flag("return_all", index), params.integer("limit", index))

    async def page(cursor: str | None, wanted: int | None) -> Page:
        size = PAGE_SIZE if wanted is None else min(PAGE_SIZE, wanted)
        query_page = {**query, "limit": size, "cursor": cursor}
        body = (await rest.call(operation, "GET", path, params=query_page)).body
        records = body.get(key)
        if not isinstance(records, list):
            raise rest.error(operation, f"the answer has no {key} list")
        metadata = body.get("response_metadata") or {}
        return records, metadata.get("next_cursor") or None

    return await collect(page, limit)


_OPERATIONS: Final[
    Mapping[tuple[str, str], Callable[[Rest, Params, int], Awaitable[list[JsonObject]]]]
] = {
    ("message", "post"): _post, ("message", "update"): _update,
    ("message", "delete"): _delete, ("channel", "list"): _list_channels,
    ("channel", "create"): _create_channel, ("user", "get"): _get_user,
    ("user", "list"): _list_users,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (Slack,)
CREDENTIALS: tuple[CredentialType, ...] = (SLACK_CREDENTIAL,)
