"""Code sandbox benchmark: cold start, and the per-call overhead of the warm pool.

Target (see the sandbox issue): a trivial call through the warm pool costs
under 5 ms (p50). "Trivial" is `return items` with one item, so the figure is
the sandbox's overhead: frames over pipes, the request process (forked ahead
of time), its limits, compiling the code, and JSON both ways.

    python bench/sandbox.py [--quick] [--sandbox auto|bubblewrap|none]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from linkflow.nodes.sdk import CodeMode, CodeRequest
from linkflow.sandbox import CodePool, SandboxMode
from linkflow.sandbox._protection import bubblewrap_launch, find_bubblewrap, unsandboxed_launch
from linkflow.sandbox._worker import Worker

TRIVIAL = CodeRequest(code="return items", mode=CodeMode.ALL_ITEMS, items=[{"n": 1}])


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def cold_start(mode: SandboxMode, workers: int) -> tuple[float, float, str]:
    """Seconds for `start()` (probe + workers) and for the first call after it."""
    pool = CodePool(workers=workers, sandbox=mode, allow_unsandboxed=True)
    started = time.perf_counter()
    protections = await pool.start()
    ready = time.perf_counter()
    await pool.run(TRIVIAL)
    first = time.perf_counter()
    await pool.close()
    return ready - started, first - ready, protections.sandbox if protections else "refused"


async def worker_start(mode: SandboxMode, rounds: int) -> float:
    """Median seconds from spawning one worker to its hello."""
    bwrap = find_bubblewrap()
    use_bwrap = mode is not SandboxMode.NONE and bwrap is not None
    launch = bubblewrap_launch(bwrap) if use_bwrap and bwrap else unsandboxed_launch()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        worker = await Worker.start(launch)
        times.append(time.perf_counter() - started)
        await worker.stop()
    return statistics.median(times)


async def warm_calls(mode: SandboxMode, workers: int, calls: int) -> list[float]:
    """Seconds per trivial call, one after the other, through a started pool."""
    pool = CodePool(workers=workers, sandbox=mode, allow_unsandboxed=True)
    await pool.start()
    for _ in range(50):  # warm-up
        await pool.run(TRIVIAL)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await pool.run(TRIVIAL)
        samples.append(time.perf_counter() - started)
    await pool.close()
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sandbox", default="auto", choices=[mode.value for mode in SandboxMode])
    args = parser.parse_args()
    mode = SandboxMode(args.sandbox)
    calls = 300 if args.quick else 3000

    pool_start, first_call, sandbox = await cold_start(mode, workers=2)
    print(f"sandbox: {sandbox}")
    print(f"cold start: pool.start() with 2 workers (probe included) {pool_start * 1000:.0f} ms; "
          f"first call after it {first_call * 1000:.1f} ms")  # fmt: skip
    one = await worker_start(mode, rounds=3 if args.quick else 10)
    print(f"cold start: one worker, spawn to ready (median) {one * 1000:.0f} ms")
    for workers in (2, 1):
        samples = await warm_calls(mode, workers, calls)
        p50, p99 = percentile(samples, 0.50) * 1000, percentile(samples, 0.99) * 1000
        verdict = "ok" if p50 < 5 else "over the 5 ms target"
        print(f"warm trivial call, {workers} worker(s), {calls} sequential calls: "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({verdict})")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
