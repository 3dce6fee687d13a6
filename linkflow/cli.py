"""The `linkflow` command line.

Each command loads `Settings` once, configures logging, and hands off to the
part of LinkFlow it runs. Configuration and connection problems end the
command with one readable line on stderr and exit code 2, never a traceback.

Everything beyond Typer and orjson is imported by the command that needs it:
`--help` answers at once, and `linkflow run` loads the engine, not the web app
or the store (bench/cli.py measures both).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from linkflow.cli_admin import admin
from linkflow.cli_operations import operations

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    import httpx

    from linkflow.config import Settings
    from linkflow.engine import CompiledWorkflow, Engine, RunResult
    from linkflow.progress import ProgressView
    from linkflow.queue.job import Priority
    from linkflow.services.credentials_file import FileCredentials
    from linkflow.services.local_workflows import LocalWorkflowRunner

app = typer.Typer(
    name="linkflow",
    help="LinkFlow: durable workflow automation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rendering it with rich doubled the time `--help` takes.
    rich_markup_mode=None,
)

EXIT_CONFIG = 2
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
"""`Settings.host` and `Settings.port`'s defaults, repeated so that `--help` need not load
the settings (tests/e2e/test_cli_start.py keeps them equal)."""

HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        help=f"Address to listen on. Default: LINKFLOW_HOST, else {DEFAULT_HOST}.",
        show_default=False,
    ),
]
PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=1,
        max=65535,
        help=f"Port to listen on. Default: LINKFLOW_PORT, else {DEFAULT_PORT}.",
        show_default=False,
    ),
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve Prometheus metrics at http://LINKFLOW_HOST:PORT/metrics. Default: off.",
    ),
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"linkflow {version('linkflow')}")
        raise typer.Exit


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """LinkFlow: durable workflow automation."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"linkflow: {message}", err=True)
    return typer.Exit(EXIT_CONFIG)


def _settings(*, settle_keys: bool = True) -> Settings:
    from linkflow.config import ConfigError, load_settings
    from linkflow.observability.logging import configure_logging

    try:
        settings = load_settings(settle_keys=settle_keys)
    except ConfigError as error:
        raise _fail(str(error)) from None
    configure_logging(level=settings.log_level, json=settings.json_logs)
    return settings


def _listen_settings(host: str | None, port: int | None) -> Settings:
    """Settings with --host/--port applied, once the port is known to be free."""
    settings = _settings()
    updates = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    settings = settings.model_copy(update=updates) if updates else settings
    _check_port(settings.host, settings.port)
    return settings


def _check_port(host: str, port: int) -> None:
    """Fail with the flag and the setting that choose another port or address, before
    the database is migrated and long before uvicorn would log its bind error (which
    `serve` would reach only after resuming executions). Bound as uvicorn binds, with
    SO_REUSEADDR, so a port left in TIME_WAIT is not called busy."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise _fail(
                    f"port {port} on {host} is already in use (is LinkFlow already "
                    "running?): pick another with --port or LINKFLOW_PORT"
                ) from None
            if error.errno == errno.EACCES:
                raise _fail(
                    f"no permission to listen on port {port}: ports below 1024 need root; "
                    "pick another with --port or LINKFLOW_PORT"
                ) from None
            raise _fail(
                f"cannot listen on {host}:{port}: {error.strerror}; choose the address "
                "with --host or LINKFLOW_HOST and the port with --port or LINKFLOW_PORT"
            ) from None


@app.command()
def migrate(
    check: Annotated[
        bool, typer.Option("--check", help="Fail when the models and the migrations differ.")
    ] = False,
) -> None:
    """Apply database migrations; with --check, change nothing and verify that the
    database is at the newest revision and matches the models."""
    import asyncio

    from linkflow.store import StoreConfigError, StoreUnavailable  # only this command needs them
    from linkflow.store import migrate as store_migrate

    settings = _settings()
    url = settings.effective_database_url
    try:
        if not check:
            asyncio.run(store_migrate.upgrade(url, seal=_seal(settings)))
            typer.echo("database is up to date")
            return
        differences = asyncio.run(store_migrate.check(url))
    except (StoreConfigError, StoreUnavailable) as error:
        raise _fail(f"LINKFLOW_DATABASE_URL: {error}") from None
    if differences:
        typer.echo("the models and the migrations differ:", err=True)
        for line in differences:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1)
    typer.echo("models and migrations agree")


def _seal(settings: Settings) -> Callable[[bytes], bytes]:
    """The secret box's `seal`, for migrations that encrypt what they move (0005)."""
    from linkflow.security.secretbox import SecretBox

    return SecretBox.from_key(settings.encryption_key_bytes()).seal


def _prepare_database(settings: Settings) -> None:
    """Embedded SQLite is migrated on start; any other database must already be at head."""
    import asyncio

    from linkflow.store import StoreConfigError, StoreUnavailable
    from linkflow.store import migrate as store_migrate

    url = settings.effective_database_url
    try:
        if not settings.is_production and url.startswith("sqlite"):
            asyncio.run(store_migrate.upgrade(url, seal=_seal(settings)))
            return
        current = asyncio.run(store_migrate.current(url))
    except (StoreConfigError, StoreUnavailable) as error:
        raise _fail(f"LINKFLOW_DATABASE_URL: {error}") from None
    head = store_migrate.head()
    if current != head:
        raise _fail(
            f"the database is at migration {current or '(none)'}, not {head}: "
            "run `linkflow migrate` first"
        )


def _hold_database(settings: Settings) -> contextlib.AbstractContextManager[object]:
    """A shared lock on the embedded SQLite database while this process runs on it, so
    `linkflow restore` refuses to replace it meanwhile (`store.sqlite_lock`); nothing to
    hold on PostgreSQL."""
    from linkflow.store import StoreConfigError
    from linkflow.store.sqlite_backup import database_file
    from linkflow.store.sqlite_lock import DatabaseInUse, DatabaseLock

    try:
        path = database_file(settings.effective_database_url)
        return contextlib.nullcontext() if path is None else DatabaseLock(path, exclusive=False)
    except StoreConfigError as error:
        raise _fail(f"LINKFLOW_DATABASE_URL: {error}") from None
    except DatabaseInUse as error:
        raise _fail(str(error)) from None


def api_app() -> object:
    """The app of one `linkflow api --workers N` worker process (uvicorn's factory)."""
    from linkflow.config import ConfigError
    from linkflow.wiring import build_api

    settings = _settings()
    try:
        return build_api(settings)
    except ConfigError as error:
        raise _fail(str(error)) from None


@app.command()
def api(
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Processes to serve with.")
    ] = 1,
) -> None:
    """Serve the HTTP API with uvicorn.

    With LINKFLOW_REDIS_URL it serves everything and hands executions to
    `linkflow worker` processes; without, the control plane only (accounts,
    workspaces, keys). With no configuration it runs embedded: SQLite under the
    data dir, migrated on start. Elsewhere the database must be migrated first
    (`linkflow migrate`). With --workers, every process reads the same settings.
    """
    settings = _listen_settings(host, port)
    with _hold_database(settings):
        _serve_api(settings, workers)


def _serve_api(settings: Settings, workers: int) -> None:
    """`linkflow api`, once the database's lock is held."""
    import uvicorn

    from linkflow.config import ConfigError

    _prepare_database(settings)
    if settings.redis_url is None:
        from linkflow.api.routes.no_plane import MESSAGE

        typer.echo(f"note: {MESSAGE}", err=True)
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,  # the app applies LINKFLOW_TRUSTED_PROXIES itself
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if workers > 1:
        # Worker processes load their settings afresh: hand them --host/--port
        # (public URLs are derived from them) the way they read everything else.
        os.environ["LINKFLOW_HOST"] = settings.host  # noqa: TID251 - settings for child processes
        os.environ["LINKFLOW_PORT"] = str(settings.port)  # noqa: TID251 - as above
        uvicorn.run("linkflow.cli:api_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
        return
    from linkflow.wiring import build_api

    try:
        application = build_api(settings)
    except ConfigError as error:
        raise _fail(str(error)) from None
    uvicorn.run(application, **options)  # type: ignore[arg-type]


def _read_input(value: str | None) -> object:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise _fail(f"--input: cannot read {path}: {error.strerror}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise _fail(f"--input is not valid JSON: {error}") from None


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="A workflow document (JSON).")],
    input: Annotated[
        str | None,
        typer.Option("--input", "-i", help="The execution's input: JSON, or @file with JSON."),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress", help="Show each node live on stderr.")
    ] = False,
    credentials: Annotated[
        Path | None,
        typer.Option(
            "--credentials",
            help='A JSON file of credentials: {"<name>": {"type": "bearer", "data": {...}}}.',
        ),
    ] = None,
) -> None:
    """Run a workflow file in-process and print its result items as JSON.

    Exit code 0: completed; 1: the execution failed, or waits for a webhook
    (the reason goes to stderr); 2: the document is invalid (every problem is
    listed). Sub-workflows are files relative to FILE; a wait with a time
    (including a webhook wait's timeout) is slept through.
    """
    import asyncio

    from linkflow.services.credentials_file import CredentialsFileError, FileCredentials

    settings = _settings(settle_keys=False)
    try:
        document = orjson.loads(file.read_bytes())
    except OSError as error:
        raise _fail(f"cannot read {file}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise _fail(f"{file} is not valid JSON: {error}") from None
    payload = _read_input(input)
    resolver = None
    if credentials is not None:
        try:
            resolver = FileCredentials.from_file(credentials)
        except CredentialsFileError as error:
            raise _fail(str(error)) from None
    base_dir = file.resolve().parent
    result = asyncio.run(_run_file(settings, file, base_dir, document, payload, progress, resolver))
    sys.stdout.write(orjson.dumps(result.output, option=orjson.OPT_INDENT_2).decode() + "\n")
    _report(result)


def _report(result: RunResult) -> None:
    if result.status == "waiting":
        typer.echo("linkflow: the execution waits for its resume webhook, which `linkflow run` "
                   "cannot receive; run it on a server (`linkflow serve`)", err=True)  # fmt: skip
        raise typer.Exit(1)
    if result.status != "completed":
        failure = result.error or {}
        where = f" at node {failure['node_id']!r}" if failure.get("node_id") else ""
        typer.echo(f"linkflow: execution {result.status}{where}: {failure.get('message', '')}",
                   err=True)  # fmt: skip
        if result.error_workflow is not None:
            child = result.error_workflow
            shown = orjson.dumps(list(child.output) or child.error).decode()
            typer.echo(f"linkflow: error workflow {child.status}: {shown}", err=True)
        raise typer.Exit(1)


async def _run_file(
    settings: Settings,
    file: Path,
    base_dir: Path,
    document: object,
    payload: object,
    progress: bool,
    credentials: FileCredentials | None,
) -> RunResult:
    from linkflow.engine import InvalidWorkflow
    from linkflow.sandbox import build_runner
    from linkflow.wiring.engine import build_local_engine, shared_http_client

    clients: list[httpx.AsyncClient] = []

    def http() -> httpx.AsyncClient:
        """The run's one client, made when a node first asks for it."""
        if not clients:
            clients.append(shared_http_client(settings))
        return clients[0]

    code = build_runner(settings)  # workers start on the first code node only
    try:
        engine, runner = build_local_engine(
            settings, base_dir=base_dir, http=http, credentials=credentials, code=code
        )
        try:
            workflow = engine.compile(document)
        except InvalidWorkflow as invalid:
            typer.echo(f"linkflow: {file} is not a valid workflow:", err=True)
            for problem in invalid.problems:
                typer.echo(f"  - {problem}", err=True)
            raise typer.Exit(EXIT_CONFIG) from None
        return await _run_locally(engine, runner, workflow, payload, progress)
    finally:
        for client in clients:
            await client.aclose()
        await code.close()


async def _run_locally(
    engine: Engine,
    runner: LocalWorkflowRunner,
    workflow: CompiledWorkflow,
    payload: object,
    progress: bool,
) -> RunResult:
    """Run to the end, sleeping through timed waits; then wait for background children."""
    from linkflow.engine import ExecutionInfo, InMemoryHistory, SystemClock

    history = InMemoryHistory()
    info = ExecutionInfo(
        execution_id=str(uuid.uuid4()), workflow_id=None, workflow_name=workflow.document.name,
        workflow_version=None, attempt=1, variables={},
    )  # fmt: skip
    clock = SystemClock()
    view: ProgressView | None = None
    if progress:
        from linkflow.progress import ProgressView

        view = ProgressView(list(workflow.graph.order))
    with view if view is not None else contextlib.nullcontext():
        result = await engine.run(workflow, input=payload, history=history, info=info,
                                  observer=view)  # fmt: skip
        while result.waiting is not None and result.waiting.get("until"):
            until = datetime.fromisoformat(result.waiting["until"])
            await clock.sleep(max((until - clock.now()).total_seconds(), 0))
            result = await engine.run(workflow, history=history, info=info, observer=view)
    await runner.drain()
    return result


@app.command("rotate-keys")
def rotate_keys(
    old_key: Annotated[
        list[str] | None,
        typer.Option(
            "--old-key",
            help="An old encryption key (base64) not listed in "
            "LINKFLOW_ENCRYPTION_KEYS_PREVIOUS; repeatable.",
        ),
    ] = None,
) -> None:
    """Re-encrypt every stored secret (credentials, webhook secrets, MFA secrets, OAuth
    tokens) sealed with an old key (LINKFLOW_ENCRYPTION_KEYS_PREVIOUS) under the current
    LINKFLOW_ENCRYPTION_KEY. Safe to run again; rows already moved are skipped."""
    import asyncio

    from linkflow.config import decode_encryption_key
    from linkflow.security.secretbox import SecretBox
    from linkflow.services.key_rotation import rotate
    from linkflow.store import Database

    settings = _settings()
    old = settings.previous_encryption_key_bytes()
    for text in old_key or ():
        key = decode_encryption_key(text)
        if key is None:
            raise _fail("--old-key is not 32 base64-encoded bytes")
        old.append(key)
    if not old:
        raise _fail("no old key to re-encrypt from: list it in LINKFLOW_ENCRYPTION_KEYS_PREVIOUS "
                    "(comma-separated) or pass --old-key")  # fmt: skip
    _prepare_database(settings)
    current = settings.encryption_key_bytes()
    # The new box opens the old keys too: a value a process sealed with an old key
    # while this ran (a process not yet restarted) is caught by the next run.
    old_box = SecretBox.from_keys(old[0], old[1:])
    new_box = SecretBox.from_keys(current, old)

    async def run() -> int:
        database = Database(settings.effective_database_url)
        try:
            return await rotate(database, old_box, new_box)
        finally:
            await database.dispose()

    count = asyncio.run(run())
    typer.echo(f"re-encrypted {count} secret(s) under the current key {new_box.current_key_id}")


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1024, help="Executions run at once.")
    ] = 64,
) -> None:
    """API + worker + scheduler in one process: a newcomer's first command.

    Embedded defaults: SQLite under the data dir (migrated on start), an
    in-process queue rebuilt from the database on start, in-process pub/sub.
    """
    import asyncio

    import uvloop

    from linkflow.config import ConfigError
    from linkflow.processes.serve import serve as run_serve

    settings = _listen_settings(host, port)
    with _hold_database(settings):
        _prepare_database(settings)
        try:
            # uvloop: the event loop's own work (sockets, timers, callbacks) in C.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(run_serve(settings, concurrency=concurrency))
        except ConfigError as error:
            raise _fail(str(error)) from None
        except KeyboardInterrupt:
            pass


def _cluster_settings(command: str) -> Settings:
    """Settings of a Redis-plane process: Redis and a migrated PostgreSQL, or one line."""
    from linkflow.config import ConfigError
    from linkflow.wiring.cluster import check_cluster_settings

    settings = _settings()
    try:
        check_cluster_settings(settings, command)
    except ConfigError as error:
        raise _fail(str(error)) from None
    _prepare_database(settings)
    return settings


def _run_process(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a long-lived process's coroutine on uvloop; a bad setting is one line."""
    import asyncio

    import uvloop

    from linkflow.config import ConfigError

    try:
        # uvloop: the event loop's own work (sockets, timers, callbacks) in C.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    except ConfigError as error:
        raise _fail(str(error)) from None
    except KeyboardInterrupt:
        pass


def _priorities(value: str) -> tuple[Priority, ...]:
    """`high,low` as priorities; `ValueError` naming what is not one."""
    from linkflow.queue.job import Priority

    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    known = [priority.value for priority in Priority]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        what = f"unknown {', '.join(map(repr, unknown))}" if unknown else "none given"
        raise ValueError(f"{what}: choose among {', '.join(known)} (comma-separated)")
    return tuple(Priority(name) for name in dict.fromkeys(names))


def _check_queues(value: str) -> str:
    try:
        _priorities(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return value


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1024, help="Executions run at once.")
    ] = 16,
    metrics_port: MetricsPortOption = None,
    queues: Annotated[
        str,
        typer.Option(
            "--queues", callback=_check_queues, metavar="PRIORITIES",
            help="The priorities this worker takes, comma-separated (high, normal, low); "
            "high before normal before low, none starved.",
        ),
    ] = "high,normal,low",
) -> None:  # fmt: skip
    """Run executions from the shared queue (needs LINKFLOW_REDIS_URL and PostgreSQL).

    Start as many as the load needs, beside `linkflow api` and `linkflow scheduler`.
    SIGTERM is graceful: no new job, running executions get
    LINKFLOW_WORKER_SHUTDOWN_GRACE_S to finish, then go back to the queue.
    """
    from linkflow.processes.worker import work

    settings = _cluster_settings("worker")
    lanes = _priorities(queues)
    _run_process(lambda: work(settings, concurrency=concurrency, metrics_port=metrics_port,
                              queues=lanes))  # fmt: skip


@app.command()
def scheduler(metrics_port: MetricsPortOption = None) -> None:
    """Fire schedules, wake due waits, recover abandoned executions (needs Redis).

    Run two for availability: one leads (a lock in Redis), the other takes over
    within LINKFLOW_SCHEDULER_LOCK_TTL_S when the leader dies.
    """
    from linkflow.processes.scheduler import schedule

    settings = _cluster_settings("scheduler")
    _run_process(lambda: schedule(settings, metrics_port=metrics_port))


app.add_typer(operations)  # backup, restore, doctor: commands of their own
app.add_typer(admin)  # admin create-user, admin set-plan


def main() -> None:
    """Console-script entry point."""
    app(prog_name="linkflow")


if __name__ == "__main__":  # pragma: no cover
    main()
