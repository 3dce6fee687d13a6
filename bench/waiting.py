"""Waiting executions benchmark: what N executions suspended at once cost `linkflow serve`.

Starts serve on a fresh data dir (SQLite), activates a webhook → wait (resume:
webhook) workflow answering `immediately`, calls it N times (32 at once) and waits
until every execution is `waiting` in the database; then prints the RSS of serve
and of its writer process, at the start and with the N waiting. Target (issue 16):
10,000 executions waiting at once cost under 1 GB.

    python bench/waiting.py [--executions N]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webhook import (
    free_port,
    rss_mib,
    settle_rss,
    setup,
    start_serve,
    wait_ready,
    writer_pids,
)

WORKFLOW = {
    "name": "waits",
    "nodes": [
        {"id": "hook", "type": "webhook",
         "parameters": {"path": "w", "method": "POST", "response_mode": "immediately"}},
        {"id": "pause", "type": "wait", "parameters": {"resume": "webhook"}},
    ],
    "connections": [{"from": "hook", "to": "pause"}],
}  # fmt: skip
CONCURRENCY = 32


async def call(url: str, count: int) -> None:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(index: int) -> None:
            async with slots:
                response = await http.post(url, json={"i": index})
                if response.status_code != 202:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")

        await asyncio.gather(*(one(index) for index in range(count)))


def waiting(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT count(*) FROM executions WHERE status = 'waiting'")
        return int(row.fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=10_000)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_serve(port, data_dir)
        try:
            wait_ready(base)
            hook = setup(base, WORKFLOW)
            print(f"idle RSS at start: serve {rss_mib(server.pid):.0f} MiB")
            started = time.perf_counter()
            asyncio.run(call(hook, args.executions))
            deadline = time.monotonic() + 600
            while (count := waiting(Path(data_dir) / "linkflow.db")) < args.executions:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {count} of {args.executions} are waiting")
                time.sleep(0.5)
            elapsed = time.perf_counter() - started
            print(f"{args.executions:,} executions waiting after {elapsed:.1f} s")
            serve = settle_rss(server.pid, 5)
            writers = [rss_mib(pid) for pid in writer_pids(server.pid)]
            total = serve + sum(writers)
            print(f"RSS with them waiting: serve {serve:.0f} MiB, writer process "
                  f"{sum(writers):.0f} MiB: {total:.0f} MiB in all "
                  f"({'under' if total < 1024 else 'OVER'} the 1 GB target)")  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
