"""Live progress of an in-process run for `linkflow run --progress` (Rich, on stderr)."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from linkflow.engine import Event, EventType

__all__ = ["ProgressView"]

_STYLES = {"running": "yellow", "completed": "green", "failed": "red", "skipped": "dim",
           "retrying": "magenta"}  # fmt: skip


class ProgressView:
    """A table with one row per node, updated as the executor appends events."""

    def __init__(self, node_ids: list[str], console: Console | None = None) -> None:
        self._rows: dict[str, dict[str, str]] = {
            node_id: {"status": "pending", "runs": "0", "items": "", "time": ""}
            for node_id in node_ids
        }
        self._started: dict[str, float] = {}
        self._live = Live(self._render(), console=console or Console(stderr=True),
                          refresh_per_second=12, transient=False)  # fmt: skip

    def __enter__(self) -> ProgressView:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.update(self._render())
        self._live.__exit__(kind, error, tb)

    def __call__(self, event: Event) -> None:
        node_id = event.node_id
        if node_id is None or node_id not in self._rows:
            return
        row = self._rows[node_id]
        if event.type is EventType.NODE_STARTED:
            self._started[node_id] = time.perf_counter()
            row["status"] = "running"
        elif event.type is EventType.NODE_COMPLETED:
            outputs = event.data["outputs"]
            row["status"] = "failed" if "error" in event.data else "completed"
            row["runs"] = str(event.data["run"] + 1)
            row["items"] = ", ".join(f"{name}: {len(items)}" for name, items in outputs.items())
            row["time"] = f"{(time.perf_counter() - self._started[node_id]) * 1000:.1f} ms"
        elif event.type is EventType.NODE_FAILED:
            row["status"] = "failed"
        elif event.type is EventType.NODE_RETRYING:
            row["status"] = "retrying"
        elif event.type is EventType.NODE_SKIPPED and row["status"] == "pending":
            row["status"] = "skipped"  # a loop body that ran is not shown as skipped
        self._live.update(self._render())

    def _render(self) -> Table:
        table = Table("node", "status", "runs", "last run's items", "time", title="LinkFlow run")
        for node_id, row in self._rows.items():
            style = _STYLES.get(row["status"], "")
            table.add_row(node_id, f"[{style}]{row['status']}[/]" if style else row["status"],
                          row["runs"], row["items"], row["time"])  # fmt: skip
        return table
