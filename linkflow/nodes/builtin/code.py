"""The code node: runs the user's Python in the sandbox (`ctx.code`), never in the engine."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import (
    CodeMode,
    CodeRequest,
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
)

__all__ = ["MAX_CODE_CHARS", "NODES", "Code"]

MAX_CODE_CHARS = 256 * 1024
"""Longer code is refused: it is kept in every version of the workflow document."""


class Code(Node):
    type = "code"
    display_name = "Code"
    group = NodeGroup.ACTION
    description = (
        "Runs Python in a sandbox (no network, no files of the server, no environment, CPU, "
        "memory and time limits). With `mode: all_items` the code runs once: `items` is the "
        "list of the input items' JSON objects and the code returns a list (each element "
        "that is not an object becomes `{\"value\": element}`). With `each_item` it runs once "
        "per item: `item` is the item's object, `item_index` its position, and the code "
        "returns an object. The code is a function body: end it with `return`. What it "
        "prints goes to the node's log. Lineage: `each_item` pairs output item i with input "
        "item i; `all_items` does the same when it returns as many items as it received, "
        "otherwise its items descend from no particular input item."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "code": {
                "type": "string",
                "maxLength": MAX_CODE_CHARS,
                "description": (
                    "Python source, run as a function body; never evaluated as an "
                    "expression (`{{ }}` is left as it is)."
                ),
            },
            "mode": {
                "enum": [mode.value for mode in CodeMode],
                "description": "`all_items`: once, with `items`; `each_item`: once per `item`.",
                "default": CodeMode.ALL_ITEMS.value,
            },
            "timeout_s": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 3600,
                "description": (
                    "Seconds the code may run; at most, and by default, the server's limit "
                    "(`LINKFLOW_CODE_TIMEOUT_S`)."
                ),
            },
        },
        "required": ["code"],
        "additionalProperties": False,
    }
    raw_parameters: ClassVar[frozenset[str]] = frozenset({"code"})
    lineage = Lineage.EXPLICIT

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        code = parameters.get("code")
        if not isinstance(code, str) or len(code) > MAX_CODE_CHARS:
            return []  # the schema reports it
        return _syntax_problem(code)

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        mode = CodeMode(params.text("mode"))
        timeout = params.get("timeout_s")
        request = CodeRequest(
            code=params.text("code"),
            mode=mode,
            items=[item.json for item in ctx.items],
            # No limit of the node's own: the runner's (LINKFLOW_CODE_TIMEOUT_S) applies.
            timeout_s=float(timeout) if timeout is not None else None,
        )
        result = await ctx.code.run(request)
        for line in result.logs:
            ctx.log(line, source="print")
        if not isinstance(result.value, list):
            raise NodeError("the code runner returned something other than a list")
        if mode is CodeMode.EACH_ITEM:
            return NodeResult.main(_each_item(ctx.items, result.value))
        return NodeResult.main(_all_items(ctx.items, result.value))


def _syntax_problem(code: str) -> list[str]:
    """Only parses (nothing runs in the engine): a top-level `return` parses fine."""
    try:
        ast.parse(code, filename="<code>")
    except SyntaxError as error:
        where = f" (line {error.lineno})" if error.lineno else ""
        return [f"parameter 'code': SyntaxError: {error.msg}{where}"]
    except (ValueError, RecursionError, MemoryError) as error:
        return [f"parameter 'code' cannot be parsed: {type(error).__name__}"]
    return []


def _as_object(value: Any) -> JsonObject:
    return value if isinstance(value, dict) else {"value": value}


def _paired(inputs: Sequence[Item], values: list[Any]) -> list[Item]:
    """Output item i from input item i (keeping its binaries)."""
    pairs = enumerate(zip(inputs, values, strict=True))
    return [item.derive(_as_object(value), index) for index, (item, value) in pairs]


def _each_item(inputs: Sequence[Item], values: list[Any]) -> list[Item]:
    if len(values) != len(inputs):
        raise NodeError(f"the code returned {len(values)} results for {len(inputs)} items")
    return _paired(inputs, values)


def _all_items(inputs: Sequence[Item], values: list[Any]) -> list[Item]:
    if len(values) == len(inputs):
        return _paired(inputs, values)
    # Not one result per input item: no input item is the source of any in particular.
    return [Item(json=_as_object(value), paired=()) for value in values]


NODES: tuple[type[Node], ...] = (Code,)
