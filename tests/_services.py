"""Start and stop the real servers integration tests run against: PostgreSQL, Redis and
MariaDB.

Each server runs from a private temporary directory, on a free loopback
port, tuned for speed over durability (no fsync, no persistence), and as a
child of the test process that receives SIGKILL-proof cleanup: the child is
asked to die with its parent (Linux parent-death signal), so even a test run
killed with ``kill -9`` leaves no server behind.

PostgreSQL's ``initdb`` and server refuse to run as root; when tests run as
root they run as the ``postgres`` system user (created if missing), and the
temporary directory is handed to that user. MariaDB runs the same way, as the
``mysql`` user.

Readiness is polled against a deadline; nothing sleeps a fixed time. A
missing binary is an error naming what to install (``make services``), never
a skip.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "MARIADB_PASSWORD",
    "MARIADB_USER",
    "MariaDBServer",
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "free_port",
    "start_mariadb",
    "start_postgres",
    "start_redis",
    "wait_until",
]

# initdb plus a cold start take 1-3 s on a laptop; CI machines can be 10x slower.
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 15.0
POLL_INTERVAL_S: Final = 0.02
PG_USER: Final = "postgres"

_PR_SET_PDEATHSIG: Final = 1


class ServiceError(RuntimeError):
    """A test server could not be found, started or stopped."""


def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float, what: str, log: Path | None = None
) -> None:
    """Poll `predicate` until it holds; after `timeout_s`, fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout_s:.0f} s waiting for {what}{_tail(log)}")
        time.sleep(POLL_INTERVAL_S)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return "\n--- " + str(log) + " ---\n" + "\n".join(text)


# Looked up once, in the parent: the child between fork and exec must do as little
# as possible (no dlopen), since other threads' locks are frozen there.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """Run in the child between fork and exec: SIGKILL it when the test process dies."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop_process(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


# --- PostgreSQL -------------------------------------------------------------


def find_pg_bin_dir() -> Path:
    """The directory holding initdb and postgres: PATH first, then Debian's layout."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in [*candidates, *debian]:
        if (directory / "initdb").exists() and (directory / "postgres").exists():
            return directory
    raise ServiceError(
        "PostgreSQL not found (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
        "run `make services` or install the `postgresql` package"
    )


@dataclass(frozen=True)
class _RunAs:
    user: str | None = None
    group: str | None = None
    uid: int = -1
    gid: int = -1


def _run_as(system_user: str = PG_USER) -> _RunAs:
    """Whom to run a server as: ourselves, or `system_user` when we are root."""
    if os.geteuid() != 0:
        return _RunAs()
    try:
        entry = pwd.getpwnam(system_user)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", system_user],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(system_user)
    group = grp.getgrgid(entry.pw_gid).gr_name
    return _RunAs(user=system_user, group=group, uid=entry.pw_uid, gid=entry.pw_gid)


@dataclass
class PostgresServer:
    """A running PostgreSQL server owned by the test session; superuser `postgres`, trust auth."""

    base_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    def url(self, database: str = "postgres") -> str:
        """A plain ``postgresql://`` URL for `database` on this server."""
        return f"postgresql://{PG_USER}@{self.host}:{self.port}/{database}"

    @property
    def log(self) -> Path:
        return self.base_dir / "postgres.log"

    def stop(self) -> None:
        """Shut down immediately (the data is disposable) and delete the directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            # SIGQUIT: immediate shutdown, which also ends every backend.
            _stop_process(self.process, signal.SIGQUIT)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _pg_ready(bin_dir: Path, port: int, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise ServiceError(f"postgres exited with status {process.returncode} while starting")
    result = subprocess.run(
        [bin_dir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER],
        check=False,
        timeout=STOP_TIMEOUT_S,
    )
    return result.returncode == 0


def start_postgres(*, durable: bool = False) -> PostgresServer:
    """initdb a fresh cluster in a temporary directory and start it on a free port.

    Tests run without fsync (their data is disposable); `durable` keeps PostgreSQL's
    defaults (fsync, synchronous_commit on), for benchmarks that state durability."""
    bin_dir = find_pg_bin_dir()
    run_as = _run_as()
    base_dir = Path(tempfile.mkdtemp(prefix="linkflow-pg-"))
    try:
        if run_as.user is not None:
            os.chown(base_dir, run_as.uid, run_as.gid)
        data_dir, socket_dir, log = base_dir / "data", base_dir / "sock", base_dir / "postgres.log"
        initdb = subprocess.run(
            [
                bin_dir / "initdb", "-D", data_dir, "-U", PG_USER, "-A", "trust",
                "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions",
            ],
            user=run_as.user,
            group=run_as.group,
            capture_output=True,
            check=False,
            timeout=START_TIMEOUT_S,
        )
        if initdb.returncode != 0:
            output = (initdb.stdout + initdb.stderr).decode(errors="replace").strip()
            raise ServiceError(f"initdb failed (status {initdb.returncode}):\n{output}")
        socket_dir.mkdir()
        if run_as.user is not None:
            os.chown(socket_dir, run_as.uid, run_as.gid)
        # Run the postmaster itself rather than `pg_ctl start`: pg_ctl daemonizes, and a
        # daemon would outlive a test run killed before its cleanup.
        port = free_port()
        with log.open("ab") as log_file:
            process = subprocess.Popen(
                [
                    bin_dir / "postgres", "-D", data_dir, "-p", str(port),
                    "-h", "127.0.0.1", "-k", socket_dir, "-c", "max_connections=200",
                    *([] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                          "-c", "full_page_writes=off"]),
                ],
                user=run_as.user,
                group=run_as.group,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # see _prctl
            )
        server = PostgresServer(base_dir=base_dir, port=port, process=process)
        try:
            wait_until(
                lambda: _pg_ready(bin_dir, port, process),
                timeout_s=START_TIMEOUT_S,
                what=f"PostgreSQL on port {port}",
                log=log,
            )
        except BaseException:
            server.stop()
            raise
        return server
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise


# --- Redis ------------------------------------------------------------------


@dataclass
class RedisServer:
    """A running redis-server owned by the test session; no persistence."""

    base_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    _stopped: bool = field(default=False, repr=False)

    def url(self, db: int = 0) -> str:
        """A ``redis://`` URL for logical database `db`."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Terminate the server and delete its directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            _stop_process(self.process, signal.SIGTERM)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _redis_pong(port: int, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise ServiceError(f"redis-server exited with status {process.returncode} while starting")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(*, port: int | None = None) -> RedisServer:
    """Start redis-server on a free loopback port (or `port`: a restart where clients expect
    it), without snapshots or an append-only file."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError(
            "redis-server not found on PATH: run `make services` or install `redis-server`"
        )
    base_dir = Path(tempfile.mkdtemp(prefix="linkflow-redis-"))
    log = base_dir / "redis.log"
    port = port or free_port()
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [
                binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(base_dir), "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # see _prctl
        )
    server = RedisServer(base_dir=base_dir, port=port, process=process)
    try:
        wait_until(
            lambda: _redis_pong(port, process),
            timeout_s=START_TIMEOUT_S,
            what=f"Redis on port {port}",
            log=log,
        )
    except BaseException:
        server.stop()
        raise
    return server


# --- MariaDB ------------------------------------------------------------------

MARIADB_USER: Final = "linkflow"
MARIADB_PASSWORD: Final = "mariadb-test-pa55"
"""The account tests log in with over TCP (password authentication, all privileges);
root is reachable only through the server's Unix socket, as Debian sets it up."""


@dataclass
class MariaDBServer:
    """A running MariaDB server owned by the test session, on 127.0.0.1."""

    base_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def log(self) -> Path:
        return self.base_dir / "mariadb.log"

    def stop(self) -> None:
        """Shut down (the data is disposable) and delete the directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            _stop_process(self.process, signal.SIGKILL)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _find_mariadbd() -> tuple[str, str]:
    server = shutil.which("mariadbd") or ("/usr/sbin/mariadbd"
                                          if Path("/usr/sbin/mariadbd").exists() else None)
    install = shutil.which("mariadb-install-db")
    if server is None or install is None:
        raise ServiceError(
            "MariaDB not found (mariadbd, mariadb-install-db): run `make services` or install "
            "the `mariadb-server` package"
        )
    return server, install


def _mariadb_greets(port: int, process: subprocess.Popen[bytes]) -> bool:
    """Whether the server sends its handshake (protocol version 10) on a TCP connection."""
    if process.poll() is not None:
        raise ServiceError(f"mariadbd exited with status {process.returncode} while starting")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            return sock.recv(5)[4:5] == b"\x0a"
    except OSError:
        return False


def start_mariadb() -> MariaDBServer:
    """A fresh MariaDB data directory in a temporary directory, started on a free port, with
    the `MARIADB_USER` account; the server keeps nothing durable (no binlog, lazy flushes)."""
    server_binary, install = _find_mariadbd()
    run_as = _run_as("mysql")
    base_dir = Path(tempfile.mkdtemp(prefix="linkflow-mariadb-"))
    try:
        if run_as.user is not None:
            os.chown(base_dir, run_as.uid, run_as.gid)
        data_dir, log = base_dir / "data", base_dir / "mariadb.log"
        setup = subprocess.run(
            [install, "--no-defaults", f"--datadir={data_dir}", "--skip-test-db",
             "--auth-root-authentication-method=socket", "--skip-name-resolve",
             *([f"--user={run_as.user}"] if run_as.user else [])],
            user=run_as.user, group=run_as.group, capture_output=True, check=False,
            timeout=START_TIMEOUT_S,
        )  # fmt: skip
        if setup.returncode != 0:
            output = (setup.stdout + setup.stderr).decode(errors="replace").strip()
            raise ServiceError(f"mariadb-install-db failed (status {setup.returncode}):\n{output}")
        init = base_dir / "init.sql"
        init.write_text(
            f"CREATE USER IF NOT EXISTS '{MARIADB_USER}'@'%' IDENTIFIED BY '{MARIADB_PASSWORD}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{MARIADB_USER}'@'%' WITH GRANT OPTION;\n"
        )
        if run_as.user is not None:
            os.chown(init, run_as.uid, run_as.gid)
        port = free_port()
        with log.open("ab") as log_file:
            process = subprocess.Popen(
                [server_binary, "--no-defaults", f"--datadir={data_dir}", f"--port={port}",
                 "--bind-address=127.0.0.1", f"--socket={base_dir / 'mariadb.sock'}",
                 f"--pid-file={base_dir / 'mariadb.pid'}", "--skip-name-resolve",
                 "--skip-log-bin", f"--init-file={init}", "--innodb-buffer-pool-size=32M",
                 "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                 "--max-connections=100", "--character-set-server=utf8mb4"],
                user=run_as.user, group=run_as.group, stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # see _prctl
            )  # fmt: skip
        server = MariaDBServer(base_dir=base_dir, port=port, process=process)
        try:
            wait_until(lambda: _mariadb_greets(port, process), timeout_s=START_TIMEOUT_S,
                       what=f"MariaDB on port {port}", log=log)  # fmt: skip
        except BaseException:
            server.stop()
            raise
        return server
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
