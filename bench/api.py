"""API benchmark: requests/s and p50/p99 latency of GET /api/v1/users/me.

Starts `linkflow api` on 127.0.0.1 (a free port, a fresh embedded SQLite
database unless --database-url is given), registers a user, creates an API
key, then measures the endpoint with the JWT and with the key at 1 and 32
concurrent clients. The client is a minimal keep-alive HTTP/1.1 client on
asyncio streams over uvloop, so that it takes as little of the machine's CPU
as possible away from the server (and adds little latency of its own).
The server runs one worker process per CPU unless --workers says otherwise.
Target (issue 6): p99 under 20 ms at 32 clients on a 2-core machine.

    python bench/api.py [--seconds 5] [--workers N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

LINKFLOW = Path(sys.executable).parent / "linkflow"
HOST = "127.0.0.1"
WARMUP_REQUESTS = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int, workers: int, database_url: str | None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKFLOW_")}  # noqa: TID251
    env.update(
        {
            "LINKFLOW_DATA_DIR": str(data_dir),
            "LINKFLOW_SECRET_KEY": "bench-secret-" + "b" * 40,
            "LINKFLOW_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
            "LINKFLOW_LOG_LEVEL": "warning",
            # The benchmark measures the request path, not the limiter's refusals.
            "LINKFLOW_RATE_LIMIT_PER_IP": "100000000/minute",
            "LINKFLOW_RATE_LIMIT_PER_PRINCIPAL": "100000000/minute",
        }
    )
    if database_url:
        env["LINKFLOW_DATABASE_URL"] = database_url
    command = [str(LINKFLOW), "api", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    log = (data_dir / "api.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"linkflow api exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit("linkflow api did not become ready within 60 s")


def credentials(url: str) -> tuple[str, str]:
    """A fresh user's access token and an API key of theirs."""
    with httpx.Client(base_url=url, timeout=30) as client:
        email = f"bench-{time.time_ns()}@example.com"
        registered = client.post(
            "/api/v1/auth/register", json={"email": email, "password": "quiet-meadow-lantern-72"}
        )
        registered.raise_for_status()
        token = registered.json()["access_token"]
        key = client.post(
            "/api/v1/api-keys",
            json={"name": "bench", "scopes": ["workflows:read"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        key.raise_for_status()
        return token, key.json()["key"]


class Connection:
    """One keep-alive HTTP/1.1 connection that sends the same GET again and again."""

    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def get(self) -> int:
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def measure(port: int, credential: str, clients: int, seconds: float) -> dict[str, float]:
    request = (
        f"GET /api/v1/users/me HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {credential}\r\n\r\n"
    ).encode()
    connections = [Connection(port, request) for _ in range(clients)]
    await asyncio.gather(*(connection.open() for connection in connections))
    for _ in range(WARMUP_REQUESTS // clients + 1):
        await asyncio.gather(*(connection.get() for connection in connections))
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop(connection: Connection) -> None:
        nonlocal errors
        while (start := time.perf_counter()) < deadline:
            status = await connection.get()
            latencies.append(time.perf_counter() - start)
            errors += status != 200

    began = time.perf_counter()
    await asyncio.gather(*(loop(connection) for connection in connections))
    elapsed = time.perf_counter() - began
    await asyncio.gather(*(connection.close() for connection in connections))
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="linkflow api --workers (default: one per CPU)",
    )
    parser.add_argument("--database-url", default=None, help="default: embedded SQLite")
    args = parser.parse_args()
    port = free_port()
    url = f"http://{HOST}:{port}"
    with tempfile.TemporaryDirectory(prefix="linkflow-bench-") as directory:
        process = start_server(Path(directory), port, args.workers, args.database_url)
        try:
            wait_ready(url, process)
            token, key = credentials(url)
            print(
                f"GET /api/v1/users/me on {url} (workers={args.workers}, "
                f"database={args.database_url or 'embedded SQLite'}, {os.cpu_count()} CPUs)"
            )
            print(
                f"{'auth':8} {'clients':>7} {'requests':>9} {'req/s':>8} {'p50 ms':>8} "
                f"{'p99 ms':>8} {'errors':>6}"
            )
            worst_p99 = 0.0
            for name, credential in (("JWT", token), ("API key", key)):
                for clients in (1, 32):
                    r = uvloop.run(measure(port, credential, clients, args.seconds))
                    if clients == 32:
                        worst_p99 = max(worst_p99, r["p99_ms"])
                    print(
                        f"{name:8} {clients:>7} {r['requests']:>9.0f} {r['rps']:>8.0f} "
                        f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>6.0f}"
                    )
            verdict = "met" if worst_p99 < 20 else "NOT met"
            print(f"target p99 < 20 ms at 32 clients: {verdict} (worst {worst_p99:.2f} ms)")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
