"""The switch node routes items to the outputs of the rules they match."""

from __future__ import annotations

from typing import Any

from tests.unit.nodes._support import (
    NODE,
    START,
    document,
    edge,
    node,
    node_problems,
    problems,
    run,
    run_node,
)

ITEMS = [{"n": 1}, {"n": 15}, {"n": 150}, {"n": -3}]
RULES = [
    {"condition": "{{ json.n >= 100 }}", "output": "big"},
    {"condition": "{{ json.n >= 10 }}", "output": "medium"},
    {"condition": "{{ json.n >= 0 }}", "output": "small"},
]


def _switch(**parameters: Any) -> dict[str, Any]:
    return {"rules": RULES, **parameters}


class TestSwitchRouting:
    async def test_the_first_matching_rule_wins(self) -> None:
        """Each item goes to one output: the first rule that matches."""
        result = await run_node("switch", _switch(), ITEMS)
        assert result.output_of(NODE, "big") == [{"n": 150}]
        assert result.output_of(NODE, "medium") == [{"n": 15}]
        assert result.output_of(NODE, "small") == [{"n": 1}]

    async def test_an_unmatched_item_is_dropped_without_fallback(self) -> None:
        """With `fallback: null` the item no rule matches goes nowhere."""
        result = await run_node("switch", _switch(), ITEMS)
        routed = [
            item for name in ("big", "medium", "small") for item in result.output_of(NODE, name)
        ]
        assert {"n": -3} not in routed

    async def test_an_unmatched_item_goes_to_the_fallback(self) -> None:
        """The fallback output receives items no rule matches."""
        result = await run_node("switch", _switch(fallback="other"), ITEMS)
        assert result.output_of(NODE, "other") == [{"n": -3}]

    async def test_all_matches_sends_an_item_to_every_matching_output(self) -> None:
        """With `all_matches`, an item may go to several outputs."""
        result = await run_node("switch", _switch(all_matches=True), ITEMS)
        assert result.output_of(NODE, "big") == [{"n": 150}]
        assert result.output_of(NODE, "medium") == [{"n": 15}, {"n": 150}]
        assert result.output_of(NODE, "small") == [{"n": 1}, {"n": 15}, {"n": 150}]

    async def test_rules_sharing_an_output_send_an_item_there_once(self) -> None:
        """Two matching rules with the same output do not duplicate the item."""
        rules = [{"condition": True, "output": "a"}, {"condition": True, "output": "a"}]
        result = await run_node("switch", {"rules": rules, "all_matches": True}, [{"x": 1}])
        assert result.output_of(NODE, "a") == [{"x": 1}]

    async def test_outputs_are_the_rules_outputs_and_the_fallback(self) -> None:
        """Each rule's output and the fallback can be connected; others cannot."""
        nodes = [node(START, "manual"), node(NODE, "switch", _switch(fallback="other"))]
        nodes += [node(name, "noop") for name in ("big", "medium", "small", "other")]
        edges = [edge(START, NODE)] + [
            edge(NODE, name, name) for name in ("big", "medium", "small", "other")
        ]
        result = await run(document(nodes, edges), ITEMS)
        assert result.output_of("other") == [{"n": -3}]
        edges.append(edge(NODE, "other", "missing"))
        assert any("missing" in p for p in problems(document(nodes, edges)))

    async def test_routed_items_keep_their_lineage(self) -> None:
        """Items pass through unchanged and trace to their source."""
        result = await run_node("switch", _switch(), ITEMS)
        assert result.item_lineage(NODE, "medium") == [[(START, 0, 1)]]


class TestSwitchCheck:
    def test_at_least_one_rule_is_required(self) -> None:
        """An empty rule list is refused."""
        assert node_problems("switch", {"rules": []}) == [
            "rules must be a list of at least one rule"
        ]

    def test_rules_may_not_be_an_expression(self) -> None:
        """The rules define the outputs, which must be known before a run."""
        assert node_problems("switch", {"rules": "{{ vars.rules }}"}) == [
            "rules must be written out, not an expression (they define the outputs)"
        ]

    def test_the_error_output_name_is_reserved(self) -> None:
        """`error` belongs to on_error: output."""
        found = node_problems("switch", {"rules": [{"condition": True, "output": "error"}]})
        assert len(found) == 1
        assert "reserved" in found[0]

    def test_output_names_follow_the_id_rule(self) -> None:
        """Names with spaces, or too long, are refused; so is a bad fallback."""
        rules = [
            {"condition": True, "output": "has space"},
            {"condition": True, "output": "x" * 65},
        ]
        found = node_problems("switch", {"rules": rules, "fallback": "a/b"})
        assert [p.split(":")[0] for p in found] == [
            "rules[0].output",
            "rules[1].output",
            "fallback",
        ]

    def test_a_rule_without_output_is_refused(self) -> None:
        """Every rule names its output."""
        assert node_problems("switch", {"rules": [{"condition": True}]}) != []
