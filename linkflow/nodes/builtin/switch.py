"""The switch node: routes each item to the outputs of the rules it matches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from linkflow.nodes.builtin._common import (
    CONDITION_SCHEMA,
    OUTPUT_NAME_PATTERN,
    Params,
    is_expression,
    is_truthy,
)
from linkflow.nodes.sdk import (
    ERROR_OUTPUT,
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeGroup,
    NodeResult,
    route_items,
)

__all__ = ["NODES", "Switch"]


class Switch(Node):
    type = "switch"
    display_name = "Switch"
    group = NodeGroup.FLOW
    description = (
        "Sends each item to the output of the first rule whose `condition` is true (or of "
        "every such rule with `all_matches`). An item no rule matches goes to `fallback`, or "
        "is dropped when `fallback` is null. Outputs are the rules' distinct output names in "
        "order, then the fallback. Every rule's condition is evaluated for every item. "
        "Truthiness is the `if` node's. Items pass through unchanged."
    )
    outputs = ()
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "rules": {
                "type": "array",
                "description": "Rules in order; at least one.",
                "items": {
                    "type": "object",
                    "properties": {
                        "condition": CONDITION_SCHEMA,
                        "output": {
                            "type": "string",
                            "description": (
                                "Output the item goes to: 1-64 letters, digits, `_` or `-`; "
                                "not `error`. Rules may share an output."
                            ),
                        },
                    },
                    "required": ["condition", "output"],
                    "additionalProperties": False,
                },
            },
            "fallback": {
                "type": ["string", "null"],
                "description": "Output for items no rule matches; null drops them.",
                "default": None,
            },
            "all_matches": {
                "type": "boolean",
                "description": "Send an item to every matching rule's output, not just the first.",
                "default": False,
            },
        },
        "required": ["rules"],
        "additionalProperties": False,
    }

    def output_names(self, parameters: Mapping[str, Any]) -> tuple[str, ...]:
        names = [rule.get("output") for rule in _rules(parameters)]
        names.append(parameters.get("fallback"))
        return tuple(dict.fromkeys(name for name in names if isinstance(name, str)))

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        if is_expression(parameters.get("rules")):
            return ["rules must be written out, not an expression (they define the outputs)"]
        rules = _rules(parameters)
        if not isinstance(parameters.get("rules"), list) or not rules:
            return ["rules must be a list of at least one rule"]
        problems = [
            problem
            for index, rule in enumerate(rules)
            for problem in _name_problems(f"rules[{index}].output", rule.get("output"))
        ]
        fallback = parameters.get("fallback")
        if fallback is not None:
            problems.extend(_name_problems("fallback", fallback))
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        all_matches = params.flag("all_matches")
        fallback: str | None = params.get("fallback")

        def choose(item: Item, index: int) -> list[str]:
            matched = [rule["output"] for rule in params.array("rules", index)
                       if is_truthy(rule["condition"])]  # fmt: skip
            if not matched:
                return [fallback] if fallback is not None else []
            return list(dict.fromkeys(matched)) if all_matches else matched[:1]

        return route_items(ctx, choose, self.output_names(ctx.raw_parameters))


def _rules(parameters: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rules = parameters.get("rules")
    if not isinstance(rules, list):
        return []
    return [rule for rule in rules if isinstance(rule, Mapping)]


def _name_problems(where: str, name: Any) -> list[str]:
    if not isinstance(name, str) or not OUTPUT_NAME_PATTERN.fullmatch(name):
        return [f"{where}: output name {name!r} must be 1-64 letters, digits, '_' or '-'"]
    if name == ERROR_OUTPUT:
        return [f"{where}: output name 'error' is reserved for failed items"]
    return []


NODES: tuple[type[Node], ...] = (Switch,)
