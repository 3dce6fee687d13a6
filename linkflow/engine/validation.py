"""Validation of a workflow document: every problem, each with its node id.

Checks, in order: the document's shape; unique ids and display names; known
node types; connections that resolve to real nodes, outputs and inputs; cycles
that do not pass through a loop node; parameters against each node type's JSON
Schema (an expression string is accepted wherever the schema expects another
type, since its value is only known at run time); expressions that do not
parse; and each node type's own `check()`.

`compile_workflow` returns the validated, compiled form the executor runs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError as SchemaError

from linkflow.engine.document import NodeSpec, Problem, WorkflowDocument, parse_document
from linkflow.engine.expressions import Dialect
from linkflow.engine.graph import Graph, build_graph
from linkflow.engine.parameters import CompiledParameters, compile_parameters
from linkflow.nodes.registry import NodeRegistry
from linkflow.nodes.sdk import ERROR_OUTPUT, Node, NodeGroup, OnError

__all__ = ["CompiledNode", "CompiledWorkflow", "InvalidWorkflow", "compile_workflow"]


class InvalidWorkflow(Exception):
    """The document cannot run; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class CompiledNode:
    spec: NodeSpec
    node: Node
    parameters: CompiledParameters
    outputs: tuple[str, ...]
    is_trigger: bool
    input_count: int


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    document: WorkflowDocument
    nodes: Mapping[str, CompiledNode]
    graph: Graph
    names: Mapping[str, str]
    """Display name or id → node id, for `node["..."]` in expressions."""

    def node(self, node_id: str) -> CompiledNode:
        return self.nodes[node_id]

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(n for n in self.graph.order if self.nodes[n].is_trigger)


def _accepts_expressions(dialect: Dialect) -> type[Any]:
    """A validator class on which an expression string satisfies every keyword."""
    keywords = Draft202012Validator.VALIDATORS

    def lenient(check: Callable[..., Iterator[SchemaError] | None]) -> Callable[..., Any]:
        def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
            if isinstance(instance, str) and dialect.is_expression(instance):
                return None
            return check(validator, value, instance, schema)

        return run

    extended: type[Any] = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, validators={name: lenient(check) for name, check in keywords.items()}
    )
    return extended


@cache
def _validator_class(dialect: Hashable) -> type[Any]:
    return _accepts_expressions(cast(Dialect, dialect))


def _schema_problems(spec: NodeSpec, node: Node, dialect: Dialect) -> list[Problem]:
    validator = _validator_class(cast(Hashable, dialect))(node.parameters_schema)
    problems = []
    for error in sorted(validator.iter_errors(spec.parameters), key=lambda e: list(e.path)):
        path = ".".join(str(part) for part in error.absolute_path)
        problems.append(
            Problem(
                message=error.message,
                node_id=spec.id,
                field=f"parameters.{path}" if path else "parameters",
                code="invalid_parameter",
            )
        )
    return problems


def _identity_problems(document: WorkflowDocument) -> list[Problem]:
    problems: list[Problem] = []
    seen_ids: set[str] = set()
    seen_names: dict[str, str] = {}
    for spec in document.nodes:
        if spec.id in seen_ids:
            problems.append(Problem("duplicate node id", spec.id, "id", "duplicate_id"))
        seen_ids.add(spec.id)
        if spec.name is not None:
            other = seen_names.get(spec.name)
            if other is not None and other != spec.id:
                problems.append(
                    Problem(
                        f"display name {spec.name!r} is also used by node {other!r}",
                        spec.id,
                        "name",
                        "duplicate_name",
                    )
                )
            seen_names[spec.name] = spec.id
    if not document.nodes:
        problems.append(Problem("a workflow needs at least one node", code="empty"))
    return problems


def _connection_problems(
    document: WorkflowDocument, nodes: Mapping[str, CompiledNode]
) -> list[Problem]:
    problems: list[Problem] = []
    ids = {spec.id for spec in document.nodes}
    for i, conn in enumerate(document.connections):
        field = f"connections.{i}"
        for end, node_id in (("from", conn.from_), ("to", conn.to)):
            if node_id not in ids:
                problems.append(
                    Problem(
                        f"connection {end} unknown node {node_id!r}", node_id, field, "dangling"
                    )
                )
        source, target = nodes.get(conn.from_), nodes.get(conn.to)
        if source is not None and conn.output not in source.outputs:
            if conn.output == ERROR_OUTPUT:
                message = "output 'error' exists only when the node's on_error is 'output'"
            else:
                message = (
                    f"node has no output {conn.output!r} (outputs: {', '.join(source.outputs)})"
                )
            problems.append(Problem(message, conn.from_, field, "unknown_output"))
        if target is not None:
            count = target.input_count
            if conn.input >= count:
                problems.append(
                    Problem(
                        f"node has {count} input(s); input {conn.input} does not exist",
                        conn.to,
                        field,
                        "unknown_input",
                    )
                )
    return problems


def _compile_node(
    spec: NodeSpec, registry: NodeRegistry, dialect: Dialect
) -> tuple[CompiledNode | None, list[Problem]]:
    if spec.type not in registry:
        return None, [Problem(f"unknown node type {spec.type!r}", spec.id, "type", "unknown_type")]
    node = registry.get(spec.type)
    problems = _schema_problems(spec, node, dialect)
    parameters, syntax_errors = compile_parameters(spec.parameters, node.raw_parameters, dialect)
    problems.extend(
        Problem(reason, spec.id, f"parameters.{path}", "expression_syntax")
        for path, reason in syntax_errors
    )
    if not problems:
        problems.extend(
            Problem(message, spec.id, "parameters", "invalid_parameter")
            for message in node.check(spec.parameters)
        )
    outputs = node.output_names(spec.parameters) if not problems else node.outputs
    if spec.on_error is OnError.OUTPUT:
        outputs = (*outputs, ERROR_OUTPUT)
    is_trigger = node.group is NodeGroup.TRIGGER
    inputs = node.input_count(spec.parameters) if not problems else node.inputs
    return CompiledNode(spec, node, parameters, outputs, is_trigger, inputs), problems


def compile_workflow(raw: object, registry: NodeRegistry, dialect: Dialect) -> CompiledWorkflow:
    """Validate a document and compile it for the executor; raise `InvalidWorkflow`."""
    document, problems = parse_document(raw)
    if document is None:
        raise InvalidWorkflow(problems)
    problems = _identity_problems(document)
    nodes: dict[str, CompiledNode] = {}
    for spec in document.nodes:
        compiled, node_problems = _compile_node(spec, registry, dialect)
        problems.extend(node_problems)
        if compiled is not None:
            nodes.setdefault(spec.id, compiled)
    problems.extend(_connection_problems(document, nodes))
    if problems:
        raise InvalidWorkflow(problems)
    types = {node_id: compiled.spec.type for node_id, compiled in nodes.items()}
    roots = [node_id for node_id, compiled in nodes.items() if compiled.is_trigger]
    graph, graph_problems = build_graph(document, types, roots)
    if graph is None:
        raise InvalidWorkflow(graph_problems)
    names = {node_id: node_id for node_id in nodes}
    names.update({spec.name: spec.id for spec in document.nodes if spec.name})
    return CompiledWorkflow(document=document, nodes=nodes, graph=graph, names=names)
