"""Item lineage: following an item back to the item of an upstream node it came from.

Every output item records the input items it descends from (`Item.paired`),
and every node run records which upstream outputs its inputs came from
(`Segment`s). `trace` walks those links backwards. When the walk reaches the
target node by more than one item, or by none, it says so, naming both nodes
and the item, instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence

from linkflow.engine.state import ExecutionState, NodeRun, Segment
from linkflow.nodes.sdk import Item

__all__ = ["ItemRef", "LineageError", "locate", "trace"]

ItemRef = tuple[str, int, str, int]
"""(node id, run index, output name, item index) of one output item."""


class LineageError(Exception):
    """An item's origin in an upstream node is broken or ambiguous."""


def locate(segments: Sequence[Segment], index: int) -> ItemRef | None:
    """Which upstream output item is item `index` of an input made of `segments`."""
    offset = index
    for segment in segments:
        if offset < segment.count:
            return (segment.node_id, segment.run, segment.output, offset)
        offset -= segment.count
    return None


def _sources(state: ExecutionState, ref: ItemRef) -> list[ItemRef] | None:
    """The refs an output item descends from; None when a link is broken."""
    node_id, run_index, output, index = ref
    run: NodeRun = state.runs[node_id][run_index]
    item: Item = run.outputs[output][index]
    found: list[ItemRef] = []
    for pair in item.paired or ():
        source_run = state.runs[node_id][pair.run] if pair.run is not None else run
        if pair.input >= len(source_run.inputs):
            return None
        upstream = locate(source_run.inputs[pair.input], pair.index)
        if upstream is None:
            return None
        found.append(upstream)
    return found


def trace(state: ExecutionState, start: ItemRef, target: str) -> ItemRef:
    """The single item of node `target` that the output item `start` descends from."""
    found: set[ItemRef] = set()
    seen: set[ItemRef] = set()
    todo = [start]
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        if ref[0] == target:
            found.add(ref)
            continue
        sources = _sources(state, ref)
        if sources is None:
            raise LineageError(
                f"the link from item {ref[3]} of node {ref[0]!r} back towards node "
                f"{target!r} is broken"
            )
        todo.extend(sources)
    if len(found) == 1:
        return found.pop()
    if not found:
        raise LineageError(
            f"item {start[3]} of node {start[0]!r} does not descend from any item of "
            f"node {target!r}"
        )
    indexes = ", ".join(str(ref[3]) for ref in sorted(found))
    raise LineageError(
        f"item {start[3]} of node {start[0]!r} descends from several items of node "
        f"{target!r} (items {indexes}); use node[{target!r}].items instead"
    )
