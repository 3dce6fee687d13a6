"""Webhook benchmark: a real `linkflow serve` process, a webhook → set → respond workflow
in `last_node` mode, at 1, 16 and 64 concurrent clients on 127.0.0.1.

Prints executions/second, p50/p99 latency, the CPU per execution of serve and of
what writes for it (its SQLite writer process, or PostgreSQL's processes when this
script starts the PostgreSQL), and serve's RSS idle, at peak and idle again after the
load. Targets (issue 7): >= 1,000 executions/s at 64 clients, p99 < 50 ms at 16
clients, idle RSS < 150 MB, on a 2-core machine; (issue 16) on PostgreSQL, p50 at one
client within 1.5x of SQLite's and >= 1,000 executions/s at 64 clients, and idle RSS
back within 20 % of its start after the load. Full execution data is saved (every
event, the execution row, per-node rows), as in production.

`--nodes N` makes the workflow a line of N set nodes after the webhook (default: one
set and one noop); `--items N` sends N items in each call's body, split into N items
by a split-out node before the set nodes.

The load comes from wrk (Debian's `wrk`) when it is installed: a Python client
needs about a core of its own at these rates, which on two cores would be measuring
the client. Without wrk, a keep-alive httpx client is used (and says so).

    python bench/webhook.py [--seconds S] [--rounds N] [--clients 1,16,64]
        [--database-url URL|postgres] [--nodes N] [--items N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

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
BODY = '{"name": "Ada"}'
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def workflow(nodes: int | None, items: int) -> dict[str, object]:
    """The default workflow, or a webhook, a split-out of `items` items when more than
    one, and a line of `nodes` set nodes."""
    if nodes is None and items <= 1:
        return WORKFLOW
    hook = dict(WORKFLOW["nodes"][0])  # type: ignore[index]
    chain: list[dict[str, object]] = [hook]
    if items > 1:
        chain.append({"id": "split", "type": "split_out", "parameters": {"field": "body.items"}})
    field = "json.items.name" if items > 1 else "json.body.name"
    for index in range(nodes or 1):
        source = field if index == 0 else "json.greeting"
        chain.append({"id": f"set{index}", "type": "set",
                      "parameters": {"fields": {"greeting": f"Hello {{{{ {source} }}}}"},
                                     "keep_only_set": True}})  # fmt: skip
    links = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(chain)]
    return {"name": "bench", "nodes": chain, "connections": links}


def body(items: int) -> str:
    if items <= 1:
        return BODY
    return orjson.dumps({"items": [{"name": f"Ada {i}"} for i in range(items)]}).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(parent: int | None) -> float:
    """CPU of `parent` and of its children (PostgreSQL's postmaster and backends)."""
    if parent is None:
        return 0.0
    total = cpu_seconds(parent)
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"PPid:\t{parent}\n" in status.read_text():
                total += cpu_seconds(int(status.parent.name))
        except OSError:
            continue
    return total


def writer_pids(parent: int) -> list[int]:
    """The writer processes serve started (`python -m linkflow.store.writer_process`):
    one on SQLite, one per writer connection on PostgreSQL."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"PPid:\t{parent}\n" not in status.read_text():
                continue
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if b"linkflow.store.writer_process" in cmdline:
            pids.append(int(status.parent.name))
    return pids


def wrk_load(url: str, seconds: float, clients: int, script: Path) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"failed requests:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, _wrk_ms(out, "50%"), _wrk_ms(out, "99%")


def _wrk_ms(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def httpx_load(
    url: str, seconds: float, clients: int, payload: str = BODY
) -> tuple[float, float, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await http.post(url, content=payload,
                                       headers={"content-type": "application/json"})  # fmt: skip
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


def setup(base: str, definition: dict[str, object] = WORKFLOW) -> str:
    account = {"email": "load@example.com", "password": "a long and unusual passphrase 2026"}
    token = httpx.post(f"{base}/api/v1/auth/register", json=account).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/api/v1/workflows", json=definition, headers=headers).json()
    active = httpx.post(f"{base}/api/v1/workflows/{created['id']}/activate", headers=headers)
    return str(active.json()["webhooks"][0]["url"])


def start_serve(
    port: int, data_dir: str, database_url: str | None = None
) -> subprocess.Popen[bytes]:
    """`linkflow serve` on `port` with its data in `data_dir` (SQLite), or on
    `database_url` (migrated first); rate limits off, logs quiet."""
    env = {**os.environ, "LINKFLOW_DATA_DIR": data_dir,  # noqa: TID251 - child env
           "LINKFLOW_RATE_LIMIT_ENABLED": "false", "LINKFLOW_LOG_LEVEL": "warning"}  # fmt: skip
    if database_url:
        env["LINKFLOW_DATABASE_URL"] = database_url
        subprocess.run([sys.executable, "-m", "linkflow", "migrate"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        print(f"database: {database_url.split('@')[-1]}")
    return subprocess.Popen(
        [sys.executable, "-m", "linkflow", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("serve did not start within 60 s")


def run(
    url: str, server: subprocess.Popen[bytes], seconds: float, rounds: int, levels: list[int],
    *, payload: str = BODY, postgres_pid: int | None = None,
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=payload))
        use_wrk = shutil.which("wrk") is not None
        print("load: wrk" if use_wrk else "load: httpx (install wrk for figures that measure "
              "the server rather than the client)")  # fmt: skip

        def load(clients: int, duration: float) -> tuple[float, float, float]:
            if use_wrk:
                return wrk_load(url, duration, clients, script)
            return asyncio.run(httpx_load(url, duration, clients, payload))

        idle = rss_mib(server.pid)
        print(f"idle RSS at start: serve {idle:.0f} MiB")
        load(16, 3)  # warm up: compile, caches, connections, the writer process
        writers = writer_pids(server.pid)  # started by the first batches

        def writer_cpu_seconds() -> float:
            return sum(cpu_seconds(pid) for pid in writers)

        print(f"RSS after warm-up: serve {rss_mib(server.pid):.0f} MiB"
              + "".join(f", writer process {rss_mib(pid):.0f} MiB" for pid in writers))
        peak = 0.0
        for clients in levels:
            for _ in range(rounds):
                before = (cpu_seconds(server.pid), writer_cpu_seconds(),
                          children_cpu_seconds(postgres_pid))  # fmt: skip
                rate, p50, p99 = load(clients, seconds)
                serve_cpu, writer_cpu, postgres_cpu = (
                    after - then for after, then in zip(
                        (cpu_seconds(server.pid), writer_cpu_seconds(),
                         children_cpu_seconds(postgres_pid)), before, strict=True)
                )  # fmt: skip
                done = max(rate * seconds, 1.0)
                peak = max(peak, rss_mib(server.pid))
                cpu = f"CPU per execution: serve {serve_cpu / done * 1000:.2f} ms"
                if writers:
                    cpu += (f", writer process{'es' if len(writers) > 1 else ''} "
                            f"{writer_cpu / done * 1000:.2f} ms")  # fmt: skip
                if postgres_pid:
                    cpu += f", PostgreSQL {postgres_cpu / done * 1000:.2f} ms"
                print(f"{clients:>3} clients: {rate:,.0f} executions/s, p50 {p50:.1f} ms, "
                      f"p99 {p99:.1f} ms  ({cpu}; serve at "
                      f"{serve_cpu / seconds * 100:.0f} % of a core)")  # fmt: skip
        print(f"peak RSS: serve {peak:.0f} MiB")
        settled = settle_rss(server.pid)
        print(f"idle RSS after the load: serve {settled:.0f} MiB "
              f"({(settled / idle - 1) * 100:+.0f} % of the start)")


def settle_rss(pid: int, seconds: float = 10.0) -> float:
    """serve's RSS once it has been idle a while (the lowest seen over `seconds`)."""
    lowest = rss_mib(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        lowest = min(lowest, rss_mib(pid))
    return lowest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="per load level")
    parser.add_argument("--rounds", type=int, default=1, help="runs per load level")
    parser.add_argument("--clients", default="1,16,64", help="load levels, comma-separated")
    parser.add_argument("--nodes", type=int, default=None,
                        help="a line of N set nodes (default: set, then noop)")
    parser.add_argument("--items", type=int, default=1, help="items per call")
    parser.add_argument(
        "--database-url", default=None,
        help="serve on this database (migrated first) instead of SQLite; "
             "`postgres`: a durable PostgreSQL this script starts on loopback",
    )  # fmt: skip
    args = parser.parse_args()
    postgres = None
    if args.database_url == "postgres":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests._services import start_postgres

        postgres = start_postgres(durable=True)
        args.database_url = postgres.url()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_serve(port, data_dir, args.database_url)
        try:
            wait_ready(base)
            levels = [int(level) for level in args.clients.split(",")]
            hook = setup(base, workflow(args.nodes, args.items))
            run(hook, server, args.seconds, args.rounds, levels, payload=body(args.items),
                postgres_pid=postgres.process.pid if postgres is not None else None)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("serve did not stop within 30 s of SIGTERM; killed")
                server.kill()
                server.wait(timeout=10)
            if postgres is not None:
                postgres.stop()


if __name__ == "__main__":
    main()
