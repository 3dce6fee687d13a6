"""Cluster benchmark: the Redis plane's processes on one machine, everything on loopback.

Starts a durable PostgreSQL (fsync and synchronous_commit on) and a redis-server,
migrates, then runs `linkflow api`, `--workers` `linkflow worker` processes and one
`linkflow scheduler`, and
1. drives the webhook → set → respond workflow of `bench/webhook.py` with wrk (or a
   Python client without it) at the given client counts: executions/s, p50/p99, and
   the CPU of every process per execution;
2. starts `--waiting` executions that each wait for a resume webhook (manual → wait →
   set) and prints the RSS of the LinkFlow processes before and after: what waiting
   executions cost (targets of the issue "Many processes": 1,000 executions/s,
   10,000 waiting under 1 GB across the processes).

Prints figures only; nothing here asserts.

    python bench/cluster.py [--seconds S] [--clients 1,16,64] [--workers 2] [--waiting 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.webhook import (
    BODY,
    WORKFLOW,
    WRK_SCRIPT,
    cpu_seconds,
    free_port,
    httpx_load,
    rss_mib,
    wrk_load,
)
from tests._services import start_postgres, start_redis

IDLE_S = 5.0
"""How long the processes' CPU is measured with no load."""
WAITS = {
    "name": "waits",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "pause", "type": "wait", "parameters": {"resume": "webhook"}},
        {"id": "after", "type": "set", "parameters": {"fields": {"done": True}}},
    ],
    "connections": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "after"}],
}


def tree_cpu_seconds(root: int) -> float:
    """CPU of `root` and its children (PostgreSQL's postmaster and its backends)."""
    total = cpu_seconds(root)
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"PPid:\t{root}\n" in status.read_text():
                total += cpu_seconds(int(status.parent.name))
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "linkflow", *command], env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def wait_for(check: object, what: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if check():  # type: ignore[operator]
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


async def start_waiting(base: str, headers: dict[str, str], flow_id: str, count: int) -> float:
    """Start `count` executions of the waiting flow, 32 at a time; returns the seconds."""
    slots = asyncio.Semaphore(32)
    started = time.perf_counter()

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:

        async def one() -> None:
            async with slots:
                answer = await http.post(f"/api/v1/workflows/{flow_id}/execute", json={})
                answer.raise_for_status()

        await asyncio.gather(*[one() for _ in range(count)])
    return time.perf_counter() - started


def waiting_count(database_url: str) -> int:
    """Executions waiting now, counted by the database (the API pages, it does not count)."""
    import asyncpg

    async def count() -> int:
        connection = await asyncpg.connect(database_url)
        try:
            return int(
                await connection.fetchval(
                    "SELECT count(*) FROM executions WHERE lower(status::text) = 'waiting'"
                )
            )
        finally:
            await connection.close()

    return asyncio.run(count())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="per load level")
    parser.add_argument("--clients", default="1,16,64", help="load levels, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="linkflow worker processes")
    parser.add_argument("--waiting", type=int, default=10_000, help="executions left waiting")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy's collapsed stacks of worker-1 and the API during the "
                             "last load level, into this directory")  # fmt: skip
    args = parser.parse_args()
    postgres, redis_server = start_postgres(durable=True), start_redis()
    scratch = Path(tempfile.mkdtemp(prefix="linkflow-cluster-bench-"))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,  # noqa: TID251 - the children's environment
            "LINKFLOW_DATA_DIR": str(scratch), "LINKFLOW_ENV": "production",
            "LINKFLOW_DATABASE_URL": postgres.url(), "LINKFLOW_REDIS_URL": redis_server.url(),
            "LINKFLOW_SECRET_KEY": "b" * 40,
            "LINKFLOW_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            "LINKFLOW_RATE_LIMIT_ENABLED": "false", "LINKFLOW_LOG_LEVEL": "warning",
            "LINKFLOW_PUBLIC_URL": base,
        }  # fmt: skip
        subprocess.run([sys.executable, "-m", "linkflow", "migrate"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        processes["api"] = start(["api", "--port", str(port)], env, scratch / "api.log")
        for n in range(args.workers):
            processes[f"worker-{n + 1}"] = start(["worker", "--concurrency", "64"], env,
                                                 scratch / f"worker-{n + 1}.log")  # fmt: skip
        processes["scheduler"] = start(["scheduler"], env, scratch / "scheduler.log")
        wait_for(lambda: httpx.get(f"{base}/health", timeout=1).status_code == 200, "the API")
        account = {"email": "load@example.com", "password": "a long and unusual passphrase 2026"}
        token = httpx.post(f"{base}/api/v1/auth/register", json=account).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{base}/api/v1/workflows", json=WORKFLOW, headers=headers).json()
        active = httpx.post(f"{base}/api/v1/workflows/{created['id']}/activate", headers=headers)
        url = str(active.json()["webhooks"][0]["url"])
        wait_for(lambda: httpx.post(url, content=BODY, timeout=5,
                                    headers={"content-type": "application/json"}
                                    ).status_code == 200, "a worker to answer")  # fmt: skip
        use_wrk = shutil.which("wrk") is not None
        loader = "wrk" if use_wrk else "httpx (install wrk)"
        print(f"PostgreSQL (fsync, synchronous_commit on) + Redis, api + {args.workers} "
              f"workers + scheduler; load: {loader}")  # fmt: skip
        script = scratch / "post.lua"
        script.write_text(WRK_SCRIPT)

        def load(clients: int, seconds: float) -> tuple[float, float, float]:
            if use_wrk:
                return wrk_load(url, seconds, clients, script)
            return asyncio.run(httpx_load(url, seconds, clients))

        load(16, 3)  # warm up
        before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
        time.sleep(IDLE_S)  # a measurement window, not a synchronisation
        idle = {name: (cpu_seconds(p.pid) - before[name]) * 100 / IDLE_S
                for name, p in processes.items()}  # fmt: skip
        print("idle CPU: " + ", ".join(f"{name} {pct:.1f} %" for name, pct in idle.items()))
        levels = [int(level) for level in args.clients.split(",")]
        for clients in levels:
            spies = []
            if args.profile is not None and clients == levels[-1]:
                args.profile.mkdir(parents=True, exist_ok=True)
                spies = [subprocess.Popen(
                    ["py-spy", "record", "--format", "raw", "--duration", f"{args.seconds:g}",
                     "--pid", str(processes[name].pid), "-o", str(args.profile / f"{name}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ) for name in ("worker-1", "api")]  # fmt: skip
            before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            servers = {"postgres": tree_cpu_seconds(postgres.process.pid),
                       "redis": cpu_seconds(redis_server.process.pid)}  # fmt: skip
            rate, p50, p99 = load(clients, args.seconds)
            for spy in spies:
                spy.wait()
            done = rate * args.seconds
            cpu = {name: (cpu_seconds(p.pid) - before[name]) * 1000 / done
                   for name, p in processes.items()}  # fmt: skip
            cpu["postgres"] = (
                (tree_cpu_seconds(postgres.process.pid) - servers["postgres"]) * 1000 / done
            )
            cpu["redis"] = (cpu_seconds(redis_server.process.pid) - servers["redis"]) * 1000 / done
            shown = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items() if ms >= 0.005)
            print(f"{clients:>3} clients: {rate:,.0f} executions/s, p50 {p50:.1f} ms, "
                  f"p99 {p99:.1f} ms  (CPU ms per execution: {shown})")  # fmt: skip

        if args.waiting:
            rss = {name: rss_mib(p.pid) for name, p in processes.items()}
            flow = httpx.post(f"{base}/api/v1/workflows", json=WAITS, headers=headers).json()
            seconds = asyncio.run(start_waiting(base, headers, flow["id"], args.waiting))
            wait_for(lambda: waiting_count(postgres.url()) >= args.waiting,
                     "every execution to wait", deadline_s=600)  # fmt: skip
            after = {name: rss_mib(p.pid) for name, p in processes.items()}
            print(
                f"{args.waiting:,} executions started in {seconds:.1f} s "
                f"({args.waiting / seconds:,.0f}/s), each waiting for its resume webhook"
            )
            print(
                "RSS MiB before → after: "
                + ", ".join(f"{name} {rss[name]:.0f} → {after[name]:.0f}" for name in processes)
            )
            print(f"total LinkFlow RSS: {sum(rss.values()):.0f} → {sum(after.values()):.0f} MiB")
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
