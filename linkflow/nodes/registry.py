"""The node registry: node type name → node instance.

A custom node is one file defining a `Node` subclass and one call to
`registry.register(MyNode)`. Node types packaged separately are found through
the `linkflow.nodes` entry-point group, each entry naming a `Node` subclass.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from importlib.metadata import entry_points

from linkflow.nodes.sdk import Node

__all__ = ["NodeRegistry", "UnknownNodeType", "default_registry"]

BUILTIN_MODULES = (
    "manual", "webhook", "schedule", "error_trigger",
    "if_", "switch", "merge", "loop", "filter", "sort", "limit", "aggregate",
    "split_out", "remove_duplicates", "noop", "set", "stop_and_error", "datetime_", "crypto",
    "wait", "execute_workflow", "respond_to_webhook", "http_request", "code",
)  # fmt: skip


class UnknownNodeType(KeyError):
    """No node type of that name is registered."""


class NodeRegistry:
    """Holds one instance per node type; node instances are stateless and shared."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}

    def register(self, node_class: type[Node]) -> type[Node]:
        """Register a node type (usable as a class decorator). A name may be taken once."""
        name = node_class.type
        if name in self._nodes and type(self._nodes[name]) is not node_class:
            raise ValueError(f"node type {name!r} is already registered")
        self._nodes[name] = node_class()
        return node_class

    def get(self, type_name: str) -> Node:
        try:
            return self._nodes[type_name]
        except KeyError:
            raise UnknownNodeType(type_name) from None

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._nodes

    def __iter__(self) -> Iterator[Node]:
        return iter(sorted(self._nodes.values(), key=lambda node: node.type))

    def __len__(self) -> int:
        return len(self._nodes)


def _builtin_classes() -> Iterator[type[Node]]:
    for module_name in BUILTIN_MODULES:
        module = import_module(f"linkflow.nodes.builtin.{module_name}")
        yield from module.NODES


def default_registry(*, plugins: bool = True) -> NodeRegistry:
    """A registry with every built-in node type, plus installed plugins."""
    registry = NodeRegistry()
    for node_class in _builtin_classes():
        registry.register(node_class)
    if plugins:
        for entry in entry_points(group="linkflow.nodes"):
            registry.register(entry.load())
    return registry
