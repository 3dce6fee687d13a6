"""The node registry: node type name → node instance, credential type name → declaration.

Where node types come from:
- the built-in modules (`BUILTIN_MODULES`) and every module of the
  `linkflow.nodes.integrations` package, found by listing the package: an
  integration is one module exporting `NODES` (node classes) and `CREDENTIALS`
  (`CredentialType`s), and adding one changes no other file;
- installed packages, through the `linkflow.nodes` entry point group. An
  entry names a `Node` subclass, a `CredentialType`, or a module exporting
  `NODES` and/or `CREDENTIALS` as an integration module does.

Invariant: a broken package never takes the process down. An entry point that
cannot be loaded (missing module, syntax error, an exception at import), that
names something else, or whose types clash with registered ones is skipped
whole (none of its types is registered), logged once with the entry's and the
distribution's names, and kept in `NodeRegistry.problems`.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Final

from linkflow.nodes.sdk import CredentialType, Node
from linkflow.observability.logging import get_logger

__all__ = [
    "ENTRY_POINT_GROUP",
    "NodeRegistry",
    "PluginProblem",
    "UnknownNodeType",
    "default_registry",
]

log = get_logger(__name__)

ENTRY_POINT_GROUP: Final = "linkflow.nodes"
INTEGRATIONS_PACKAGE: Final = "linkflow.nodes.integrations"

BUILTIN_MODULES = (
    "manual", "webhook", "schedule", "error_trigger",
    "if_", "switch", "merge", "loop", "filter", "sort", "limit", "aggregate",
    "split_out", "remove_duplicates", "noop", "set", "stop_and_error", "datetime_", "crypto",
    "wait", "execute_workflow", "respond_to_webhook", "http_request", "code",
)  # fmt: skip


class UnknownNodeType(KeyError):
    """No node type of that name is registered."""


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """An entry point that was skipped, and why."""

    entry_point: str
    """``name = value`` as the package declares it."""
    distribution: str | None
    """The installed package that declares it (None when the metadata does not say)."""
    reason: str


@dataclass(frozen=True, slots=True)
class _Contribution:
    nodes: tuple[type[Node], ...]
    credentials: tuple[CredentialType, ...]


class NodeRegistry:
    """Holds one instance per node type (node instances are stateless and shared) and
    the credential types, in the order they were registered."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._credentials: dict[str, CredentialType] = {}
        self.problems: list[PluginProblem] = []

    def register(self, node_class: type[Node]) -> type[Node]:
        """Register a node type (usable as a class decorator). A name may be taken once."""
        name = node_class.type
        if name in self._nodes and type(self._nodes[name]) is not node_class:
            raise ValueError(f"node type {name!r} is already registered")
        self._nodes[name] = node_class()
        return node_class

    def register_credential(self, kind: CredentialType) -> CredentialType:
        """Register a credential type. A name may be taken once."""
        known = self._credentials.get(kind.name)
        if known is not None and known is not kind:
            raise ValueError(f"credential type {kind.name!r} is already registered")
        self._credentials[kind.name] = kind
        return kind

    def register_module(self, module: ModuleType) -> None:
        """Register what a module exports as `NODES` and `CREDENTIALS` (all or nothing)."""
        self._add(_contribution_of_module(module))

    def get(self, type_name: str) -> Node:
        try:
            return self._nodes[type_name]
        except KeyError:
            raise UnknownNodeType(type_name) from None

    @property
    def credential_types(self) -> Mapping[str, CredentialType]:
        """Every credential type, by name."""
        return self._credentials

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._nodes

    def __iter__(self) -> Iterator[Node]:
        return iter(sorted(self._nodes.values(), key=lambda node: node.type))

    def __len__(self) -> int:
        return len(self._nodes)

    def load_entry_points(self, entries: Iterable[EntryPoint]) -> None:
        """Register each entry's types; a broken one is skipped and reported (see above)."""
        for entry in entries:
            distribution = entry.dist.name if entry.dist is not None else None
            try:
                self._add(_contribution_of(entry.load()))
            # A plugin is foreign code: whatever its import raises, the server must start.
            except Exception as error:  # noqa: BLE001 - reported and skipped, see the docstring
                reason = f"{type(error).__name__}: {error}"[:500]
                problem = PluginProblem(f"{entry.name} = {entry.value}", distribution, reason)
                self.problems.append(problem)
                log.warning("nodes.plugin_skipped", entry_point=problem.entry_point,
                            distribution=distribution, reason=reason)  # fmt: skip

    def _add(self, contribution: _Contribution) -> None:
        for node_class in contribution.nodes:
            known = self._nodes.get(node_class.type)
            if known is not None and type(known) is not node_class:
                raise ValueError(f"node type {node_class.type!r} is already registered")
        for kind in contribution.credentials:
            other = self._credentials.get(kind.name)
            if other is not None and other is not kind:
                raise ValueError(f"credential type {kind.name!r} is already registered")
        for node_class in contribution.nodes:
            self.register(node_class)
        for kind in contribution.credentials:
            self.register_credential(kind)


def _contribution_of(value: object) -> _Contribution:
    if isinstance(value, ModuleType):
        return _contribution_of_module(value)
    if isinstance(value, CredentialType):
        return _Contribution((), (value,))
    if isinstance(value, type) and issubclass(value, Node):
        _check_node_class(value)
        return _Contribution((value,), ())
    raise TypeError(
        f"the entry point names a {type(value).__name__}, not a Node subclass, "
        "a CredentialType or a module"
    )


def _contribution_of_module(module: ModuleType) -> _Contribution:
    nodes = tuple(getattr(module, "NODES", ()))
    credentials = tuple(getattr(module, "CREDENTIALS", ()))
    if not nodes and not credentials:
        raise TypeError(f"module {module.__name__} exports neither NODES nor CREDENTIALS")
    for node_class in nodes:
        if not (isinstance(node_class, type) and issubclass(node_class, Node)):
            raise TypeError(f"{module.__name__}.NODES holds {node_class!r}, not a Node subclass")
        _check_node_class(node_class)
    for kind in credentials:
        if not isinstance(kind, CredentialType):
            raise TypeError(f"{module.__name__}.CREDENTIALS holds {kind!r}, not a CredentialType")
    return _Contribution(nodes, credentials)


def _check_node_class(node_class: type[Node]) -> None:
    missing = [name for name in ("type", "display_name", "group", "description")
               if not hasattr(node_class, name)]  # fmt: skip
    if missing:
        raise TypeError(f"{node_class.__name__} does not set {', '.join(missing)}")
    if getattr(node_class, "__abstractmethods__", None):
        raise TypeError(f"{node_class.__name__} does not implement run")


def _builtin_modules() -> Iterator[ModuleType]:
    for module_name in BUILTIN_MODULES:
        yield import_module(f"linkflow.nodes.builtin.{module_name}")
    package = import_module(INTEGRATIONS_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
        if not info.name.startswith("_"):
            yield import_module(f"{INTEGRATIONS_PACKAGE}.{info.name}")


def default_registry(*, plugins: bool = True) -> NodeRegistry:
    """A registry with every built-in node and credential type, plus installed plugins."""
    registry = NodeRegistry()
    for module in _builtin_modules():
        registry.register_module(module)
    if plugins:
        registry.load_entry_points(entry_points(group=ENTRY_POINT_GROUP))
    return registry
