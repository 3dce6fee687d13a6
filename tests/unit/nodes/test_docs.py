"""docs/nodes.md is generated from the registry, and every node type documents itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from linkflow.nodes import docgen, integrations
from linkflow.nodes.registry import BUILTIN_MODULES, default_registry
from linkflow.nodes.sdk import Node, NodeGroup

BUILTIN = "linkflow.nodes.builtin."
DOCS = Path(__file__).resolve().parents[3] / "docs" / "nodes.md"
REGISTRY = default_registry(plugins=False)
NODES = list(REGISTRY)
TYPES = {
    "manual", "webhook", "schedule", "error", "if", "switch", "merge", "loop", "filter", "sort",
    "limit", "aggregate", "split_out", "remove_duplicates", "noop", "set", "stop_and_error",
    "datetime", "crypto", "wait", "execute_workflow", "respond_to_webhook", "http_request", "code",
}  # fmt: skip
"""The contract's core node types built so far (http_request and code join them)."""


def _properties(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every property of a schema, with those of objects nested in arrays."""
    found = []
    for name, prop in schema.get("properties", {}).items():
        found.append((f"{prefix}{name}", prop))
        items = prop.get("items")
        if isinstance(items, dict) and "properties" in items:
            found.extend(_properties(items, f"{prefix}{name}[]."))
    return found


class TestDocs:
    def test_docs_nodes_md_is_the_generators_output(self) -> None:
        """Regenerate with `python -m linkflow.nodes.docgen > docs/nodes.md`."""
        assert DOCS.read_text(encoding="utf-8") == docgen.render(REGISTRY)

    def test_the_module_writes_the_reference_to_stdout(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`python -m linkflow.nodes.docgen` prints what `render` returns."""
        docgen.main()
        assert capsys.readouterr().out == docgen.render(REGISTRY)

    def test_every_node_has_a_section(self) -> None:
        """Each type has its heading in the reference."""
        text = docgen.render(REGISTRY)
        for node in NODES:
            assert f"## `{node.type}`: {node.display_name}" in text


class TestRegistry:
    def test_the_registry_holds_every_contract_type_one_per_module(self) -> None:
        """One node type per built-in module, with the contract's type names."""
        builtin = [node for node in NODES if type(node).__module__.startswith(BUILTIN)]
        assert len(BUILTIN_MODULES) == len(builtin)
        assert {node.type for node in builtin} >= TYPES

    def test_every_integration_module_is_registered_without_a_list(self) -> None:
        """Each module of nodes/integrations adds its node and credential types by being
        there: no list names them."""
        package = Path(integrations.__file__).parent
        modules = {path.stem for path in package.glob("[!_]*.py")}
        registered = {type(node).__module__.rsplit(".", 1)[-1] for node in NODES
                      if type(node).__module__.startswith(integrations.__name__)}  # fmt: skip
        assert modules == registered >= {"redis", "postgres", "smtp"}
        assert {"redis", "postgres", "smtp"} <= set(REGISTRY.credential_types)

    def test_the_reference_documents_each_credential_type_and_links_slots_to_them(self) -> None:
        """A node's slot names its accepted types, each with a section of its fields."""
        text = docgen.render(REGISTRY)
        for name, kind in REGISTRY.credential_types.items():
            assert f"### `{name}`: {kind.display_name}" in text
        assert "- **Credentials:** `redis`: [`redis`](#credential-redis)" in text

    @pytest.mark.parametrize("node", NODES, ids=lambda node: node.type)
    def test_every_node_declares_itself(self, node: Node) -> None:
        """Display name, group, description, and inputs fit the group."""
        assert node.display_name
        assert node.description
        assert isinstance(node.group, NodeGroup)
        assert (node.inputs == 0) == (node.group is NodeGroup.TRIGGER)
        if node.group is NodeGroup.TRIGGER:
            assert node.emits

    @pytest.mark.parametrize("node", NODES, ids=lambda node: node.type)
    def test_every_schema_is_valid_and_closed(self, node: Node) -> None:
        """Draft 2020-12, an object, no undeclared parameters."""
        schema = node.parameters_schema
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert set(schema.get("required", ())) <= set(schema["properties"])

    @pytest.mark.parametrize("node", NODES, ids=lambda node: node.type)
    def test_every_property_has_a_description_and_a_valid_default(self, node: Node) -> None:
        """The editor shows the description; a default must pass its own schema."""
        for path, prop in _properties(node.parameters_schema):
            assert prop.get("description"), f"{node.type}.{path} has no description"
            if "default" in prop:
                Draft202012Validator(prop).validate(prop["default"])
