"""The wait node: suspends the execution until a time, or until its resume webhook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import (
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    Wait,
)

__all__ = ["NODES", "WaitNode"]

MAX_WAIT = timedelta(days=366)
"""Longer waits are almost surely a unit mistake (milliseconds given as seconds)."""


class WaitNode(Node):
    type = "wait"
    display_name = "Wait"
    group = NodeGroup.FLOW
    description = (
        "Pauses the execution: for `seconds`, until the time `until`, or (`resume: webhook`) "
        "until the execution's resume webhook is called, at most `timeout_s` when given. A "
        "waiting execution holds no worker; it continues where it stopped. After a timed "
        "wait the input items pass on unchanged; after a webhook resumption each item also "
        "carries `resume`: what the webhook caller sent. A time already past does not wait."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "seconds": {"type": "number", "minimum": 0, "description": "How long to wait."},
            "until": {
                "type": "string",
                "description": "ISO 8601 time to wait for (UTC when it has no offset).",
            },
            "resume": {
                "type": "string",
                "enum": ["webhook"],
                "description": "`webhook`: wait until the resume webhook is called.",
            },
            "timeout_s": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "With `resume: webhook`: continue anyway after this long.",
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    def check(self, parameters: Any) -> list[str]:
        given = [name for name in ("seconds", "until", "resume") if name in parameters]
        if len(given) != 1:
            return ["set exactly one of seconds, until or resume"]
        if "timeout_s" in parameters and "resume" not in parameters:
            return ["timeout_s applies only to resume: webhook"]
        return []

    async def run(self, ctx: NodeContext) -> NodeResult:
        resumed = ctx.resume
        if resumed is not None:
            return NodeResult.main(_resumed_items(ctx.items, resumed))
        wait = _wait_for(ctx, Params(ctx, self))
        if wait is None:
            return NodeResult.main(ctx.items)
        return NodeResult(wait=wait)


def _wait_for(ctx: NodeContext, params: Params) -> Wait | None:
    now = ctx.now()
    if params.get("resume") == "webhook":
        timeout = params.get("timeout_s")
        until = now + timedelta(seconds=float(timeout)) if timeout is not None else None
        return Wait(until=until, webhook=True)
    seconds = params.get("seconds")
    if seconds is not None:
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise NodeError("parameter 'seconds' must be a number")
        until = now + _bounded(timedelta(seconds=float(seconds)))
    else:
        until = _parse_until(params.text("until"))
        _bounded(until - now)
    return Wait(until=until) if until > now else None


def _bounded(delay: timedelta) -> timedelta:
    if delay > MAX_WAIT:
        raise NodeError(f"a wait may last at most {MAX_WAIT.days} days")
    return delay


def _parse_until(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise NodeError(f"parameter 'until' is not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _resumed_items(items: Any, resumed: JsonObject) -> list[Item]:
    if resumed.get("by") != "webhook":
        return list(items)
    payload = resumed.get("payload")
    return [item.derive({**item.json, "resume": payload}, i) for i, item in enumerate(items)]


NODES: tuple[type[Node], ...] = (WaitNode,)
