"""The schedule trigger: cron (with a time zone) or a fixed interval."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from linkflow.nodes.builtin._common import is_expression, timezone_problem
from linkflow.nodes.sdk import Item, JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "ScheduleTrigger", "cron_problem"]

_CRON_ALIASES: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
# Used only when croniter is not installed: digits, names (JAN, MON), and * / , - ? L W #.
_CRON_FIELD: Final = re.compile(r"[0-9A-Za-z*/,?#-]+")


class ScheduleTrigger(Node):
    type = "schedule"
    display_name = "Schedule Trigger"
    group = NodeGroup.TRIGGER
    description = (
        "Starts the workflow on a schedule: a cron expression evaluated in `timezone`, or every "
        "`interval_s` seconds. Give exactly one of `cron` and `interval_s`. A 6-field cron "
        "expression has seconds as its first field (as in n8n)."
    )
    inputs = 0
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "cron": {
                "type": "string",
                "description": (
                    "Cron expression: 5 fields (minute hour day-of-month month day-of-week), "
                    "6 fields (seconds first), or an alias such as `@daily`."
                ),
            },
            "interval_s": {
                "type": "integer",
                "minimum": 1,
                "description": "Run every this many seconds.",
            },
            "timezone": {
                "type": "string",
                "description": "IANA time zone the cron expression is evaluated in.",
                "default": "UTC",
            },
        },
        "required": [],
        "additionalProperties": False,
    }
    emits = (
        "One item `{scheduled_at, fired_at}`: when the run was due and when it started (ISO "
        "8601, UTC). Run by hand, both are the current time."
    )

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        cron, interval = parameters.get("cron"), parameters.get("interval_s")
        if (cron is None) == (interval is None):
            return ["give exactly one of cron and interval_s"]
        problems = []
        if isinstance(cron, str):
            problems.extend(_literal_only("cron", cron) or cron_problem(cron))
        timezone = parameters.get("timezone")
        if isinstance(timezone, str):
            problems.extend(_literal_only("timezone", timezone) or timezone_problem(timezone))
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        fired = ctx.trigger_input
        now = ctx.now().isoformat()
        json = dict(fired) if isinstance(fired, dict) else {}
        json.setdefault("scheduled_at", now)
        json.setdefault("fired_at", now)
        return NodeResult.main([Item(json=json, paired=())])


def _literal_only(name: str, value: str) -> list[str]:
    # The scheduler computes fire times without running the workflow, so no expressions.
    return [f"{name} must be written out, not an expression"] if is_expression(value) else []


def cron_problem(expression: str) -> list[str]:
    """Why a cron expression is invalid; empty when it is valid."""
    expression = expression.strip()
    fields = expression.split()
    if expression.lower() in _CRON_ALIASES:
        return []
    if len(fields) not in (5, 6):
        return [f"cron {expression!r} must have 5 or 6 fields, not {len(fields)}"]
    try:
        from croniter import croniter  # optional: the full grammar when it is installed
    except ImportError:  # pragma: no cover - croniter is a dependency, this is a fallback
        valid = all(_CRON_FIELD.fullmatch(field) for field in fields)
    else:
        valid = bool(croniter.is_valid(expression, second_at_beginning=len(fields) == 6))
    return [] if valid else [f"cron {expression!r} is not a valid cron expression"]


NODES: tuple[type[Node], ...] = (ScheduleTrigger,)
