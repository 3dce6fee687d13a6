"""Engine benchmark: node runs/s, per-execution overhead, item throughput, memory.

All in-process with the in-memory history, on one core. Targets (see the
engine issue): >= 20,000 trivial node runs/s, < 200 us overhead per 3-node
execution, and memory flat across 10,000 consecutive executions.

    python bench/engine.py [--quick]
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import sys
import time
from typing import Any

from linkflow.engine import CompiledWorkflow, Engine


def linear(count: int, fields: dict[str, Any]) -> dict[str, Any]:
    nodes = [{"id": "start", "type": "manual"}]
    nodes += [
        {"id": f"n{i}", "type": "set", "parameters": {"fields": fields}} for i in range(count)
    ]
    ids = [n["id"] for n in nodes]
    return {
        "name": "bench",
        "nodes": nodes,
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def executions(engine: Engine, workflow: CompiledWorkflow, count: int, payload: Any) -> float:
    started = time.perf_counter()
    for _ in range(count):
        result = await engine.run(workflow, input=payload)
        assert result.status == "completed", result.error
    return time.perf_counter() - started


async def main(quick: bool) -> None:
    engine = Engine()
    scale = 10 if quick else 1

    ten = engine.compile(linear(9, {"a": 1, "b": "x"}))  # manual + 9 set = 10 nodes
    runs = 2000 // scale
    await executions(engine, ten, 50, {"v": 1})
    elapsed = await executions(engine, ten, runs, {"v": 1})
    print(
        f"10-node linear set workflow: {runs * 10 / elapsed:,.0f} node runs/s "
        f"({elapsed / runs * 1e6:,.0f} us per execution)"
    )

    three = engine.compile(linear(2, {"a": 1}))
    runs = 5000 // scale
    elapsed = await executions(engine, three, runs, {"v": 1})
    print(f"3-node workflow: {elapsed / runs * 1e6:,.0f} us per execution")

    dynamic = engine.compile(linear(2, {"total": "{{ json.v * 2 }}", "name": "n{{ json.v }}"}))
    elapsed = await executions(engine, dynamic, runs, {"v": 1})
    print(f"3-node workflow with expressions: {elapsed / runs * 1e6:,.0f} us per execution")

    big = engine.compile(linear(1, {"double": "{{ json.i * 2 }}", "tag": "static"}))
    count = 100_000 // scale
    items = [{"i": i} for i in range(count)]
    started = time.perf_counter()
    result = await engine.run(big, input=items)
    elapsed = time.perf_counter() - started
    assert len(result.output) == count
    print(
        f"set node with {count:,} items: {count / elapsed:,.0f} items/s "
        f"(per-item expression), peak RSS {peak_rss_mib():,.0f} MiB"
    )
    del result, items

    runs = 10_000 // scale
    await executions(engine, three, 1000 // scale, {"v": 1})
    before = rss_mib()
    await executions(engine, three, runs, {"v": 1})
    after = rss_mib()
    print(
        f"RSS across {runs:,} executions: {before:,.1f} MiB -> {after:,.1f} MiB "
        f"({after - before:+.1f} MiB)"
    )
    print(f"peak RSS: {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv))
