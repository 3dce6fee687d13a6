"""Webhook benchmark: a real `linkflow serve` process, a webhook → set → respond workflow
in `last_node` mode, at 1, 16 and 64 concurrent clients on 127.0.0.1.

Prints executions/second, p50/p99 latency, and the serve process's RSS idle and at
peak. Targets (issue 7): >= 1,000 executions/s at 64 clients, p99 < 50 ms at 16
clients, idle RSS < 150 MB, on a 2-core machine. Full execution data is saved
(every event, the execution row, per-node rows), as in production.

    python bench/webhook.py [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

WORKFLOW = {
    "name": "bench",
    "nodes": [
        {"id": "hook", "type": "webhook",
         "parameters": {"path": "bench", "method": "POST", "response_mode": "last_node"}},
        {"id": "shape", "type": "set",
         "parameters": {"fields": {"greeting": "Hello {{ json.body.name }}"},
                        "keep_only_set": True}},
        {"id": "answer", "type": "noop"},
    ],
    "connections": [{"from": "hook", "to": "shape"}, {"from": "shape", "to": "answer"}],
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def load(url: str, requests: int, clients: int) -> tuple[float, float, float]:
    latencies: list[float] = []
    remaining = requests

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await http.post(url, json={"name": "Ada"})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:200]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        started = time.perf_counter()
        await asyncio.gather(*[client(http) for _ in range(clients)])
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return len(latencies) / elapsed, p50, p99


def setup(base: str) -> str:
    account = {"email": "load@example.com", "password": "a long and unusual passphrase 2026"}
    token = httpx.post(f"{base}/api/v1/auth/register", json=account).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/api/v1/workflows", json=WORKFLOW, headers=headers).json()
    active = httpx.post(f"{base}/api/v1/workflows/{created['id']}/activate", headers=headers)
    return str(active.json()["webhooks"][0]["url"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "LINKFLOW_DATA_DIR": data_dir,  # noqa: TID251 - child env
               "LINKFLOW_RATE_LIMIT_ENABLED": "false", "LINKFLOW_LOG_LEVEL": "warning"}  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "linkflow", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            url = setup(base)
            asyncio.run(load(url, 100, 4))  # warm up: compile, caches, connections
            print(f"idle RSS: {rss_mib(server.pid):.0f} MiB")
            peak = 0.0
            for clients in (1, 16, 64):
                count = max(args.requests // (8 if clients == 1 else 1), 50)
                rate, p50, p99 = asyncio.run(load(url, count, clients))
                peak = max(peak, rss_mib(server.pid))
                print(f"{clients:>3} clients: {rate:,.0f} executions/s, "
                      f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
            print(f"peak RSS: {peak:.0f} MiB")
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("serve did not stop within 30 s of SIGTERM; killed")
                server.kill()
                server.wait(timeout=10)


if __name__ == "__main__":
    main()
