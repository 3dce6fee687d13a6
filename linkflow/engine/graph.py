"""The workflow as a graph: edges, loops, and the order of execution.

Cycles are allowed only through `loop` nodes. A depth-first walk from the
triggers (in document order) classifies each edge that returns to a node on
the walk's stack as a back edge; every back edge must end at a loop node. With
back edges removed the graph is a DAG, and its topological order (ties broken
by document order) is the engine's order of execution.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from linkflow.engine.document import Connection, Problem, WorkflowDocument

__all__ = ["Edge", "Graph", "build_graph"]

LOOP_TYPE = "loop"


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    output: str
    target: str
    input: int
    back: bool = False


@dataclass(slots=True)
class Graph:
    """Adjacency of a valid workflow, precomputed once per document."""

    order: tuple[str, ...]
    """All node ids in execution priority order (topological, then document order)."""
    rank: Mapping[str, int]
    incoming: Mapping[str, tuple[Edge, ...]]
    outgoing: Mapping[str, tuple[Edge, ...]]
    loop_bodies: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Loop node id → the nodes its `loop` output reaches (re-run on every batch)."""
    forward_in: Mapping[str, tuple[Edge, ...]] = field(default_factory=dict)
    back_in: Mapping[str, tuple[Edge, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.forward_in = {n: tuple(e for e in es if not e.back) for n, es in self.incoming.items()}
        self.back_in = {n: tuple(e for e in es if e.back) for n, es in self.incoming.items()}


def _edges(connections: Sequence[Connection]) -> list[Edge]:
    return [Edge(c.from_, c.output, c.to, c.input) for c in connections]


def _classify_back_edges(
    node_ids: Sequence[str], outgoing: Mapping[str, list[Edge]], roots: Sequence[str]
) -> set[Edge]:
    """Iterative DFS; an edge to a node still on the stack closes a cycle."""
    back: set[Edge] = set()
    state: dict[str, int] = {}  # 1 = on stack, 2 = finished
    for root in [*roots, *node_ids]:
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, position = stack[-1]
            edges = outgoing[node]
            if position == len(edges):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, position + 1)
            edge = edges[position]
            seen = state.get(edge.target)
            if seen == 1:
                back.add(edge)
            elif seen is None:
                state[edge.target] = 1
                stack.append((edge.target, 0))
    return back


def _topological(node_ids: Sequence[str], edges: Sequence[Edge]) -> list[str] | None:
    index = {node_id: i for i, node_id in enumerate(node_ids)}
    indegree = dict.fromkeys(node_ids, 0)
    successors: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    for edge in edges:
        indegree[edge.target] += 1
        successors[edge.source].append(edge.target)
    ready = [(index[n], n) for n in node_ids if indegree[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for target in successors[node]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, (index[target], target))
    return order if len(order) == len(node_ids) else None


def _reachable(start: Sequence[str], outgoing: Mapping[str, Sequence[Edge]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(edge.target for edge in outgoing[node] if not edge.back)
    return seen


def build_graph(
    document: WorkflowDocument, node_types: Mapping[str, str], roots: Sequence[str]
) -> tuple[Graph | None, list[Problem]]:
    """Build the graph of a document whose node ids are unique and whose edges resolve.

    `node_types` maps node id to type name; `roots` are the trigger nodes.
    """
    node_ids = [node.id for node in document.nodes]
    edges = _edges(document.connections)
    outgoing: dict[str, list[Edge]] = {node_id: [] for node_id in node_ids}
    for edge in edges:
        outgoing[edge.source].append(edge)
    back = _classify_back_edges(node_ids, outgoing, roots)
    problems = [
        Problem(
            f"the connection from {edge.source!r} closes a cycle at {edge.target!r}, "
            "which is not a loop node; cycles must pass through a loop node and return to it",
            node_id=edge.target,
            code="cycle",
        )
        for edge in sorted(back, key=lambda e: (e.source, e.target))
        if node_types[edge.target] != LOOP_TYPE
    ]
    if problems:
        return None, problems
    marked = [Edge(e.source, e.output, e.target, e.input, e in back) for e in edges]
    order = _topological(node_ids, [edge for edge in marked if not edge.back])
    if order is None:  # pragma: no cover - the DFS above removes every cycle
        return None, [Problem("the workflow has a cycle", code="cycle")]
    incoming: dict[str, list[Edge]] = {node_id: [] for node_id in node_ids}
    out: dict[str, list[Edge]] = {node_id: [] for node_id in node_ids}
    for edge in marked:
        incoming[edge.target].append(edge)
        out[edge.source].append(edge)
    frozen_out = {k: tuple(v) for k, v in out.items()}
    bodies = {
        node_id: frozenset(
            _reachable([e.target for e in frozen_out[node_id] if e.output == "loop"], frozen_out)
            - {node_id}
        )
        for node_id in node_ids
        if node_types[node_id] == LOOP_TYPE
    }
    graph = Graph(
        order=tuple(order),
        rank={node_id: i for i, node_id in enumerate(order)},
        incoming={k: tuple(v) for k, v in incoming.items()},
        outgoing=frozen_out,
        loop_bodies=bodies,
    )
    return graph, []
