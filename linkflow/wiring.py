"""Builds a process's long-lived parts from Settings: the one place that picks
implementations (SQLite or PostgreSQL, embedded or Redis, which blob store).

Nothing here runs at import time; the CLI calls these builders once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from linkflow.api.plane import Plane
from linkflow.blobs import FilesystemBlobStore, S3BlobStore, parse_blob_url
from linkflow.bus import LocalBus
from linkflow.config import Settings
from linkflow.engine import CredentialResolver, Engine, NodeServices
from linkflow.nodes.sdk import BlobStore, CodeRunner
from linkflow.queue import LocalQueue
from linkflow.scheduler.local import LocalScheduler
from linkflow.security.secretbox import SecretBox
from linkflow.security.ssrf import AddressPolicy, guarded_client
from linkflow.services.children import ChildExecutions
from linkflow.services.credential_resolver import ExecutionCredentials
from linkflow.services.credentials import Credentials
from linkflow.services.execution_views import ExecutionViews
from linkflow.services.executions import ExecutionService
from linkflow.services.local_workflows import LocalWorkflowRunner
from linkflow.services.resume import ResumeLinks
from linkflow.services.schedules import Schedules
from linkflow.services.variables import Variables
from linkflow.services.webhooks import WebhookService
from linkflow.services.workflows import WorkflowService
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import Database
from linkflow.worker.consumer import CancelRegistry, Worker
from linkflow.worker.leases import LeaseKeeper, held_by_dead_process

__all__ = [
    "Runtime",
    "build_blob_store",
    "build_local_engine",
    "build_runtime",
    "shared_http_client",
]


def shared_http_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one HTTP client for nodes: pooled and SSRF-guarded."""
    return guarded_client(allow_private=settings.http_allow_private)


def build_blob_store(settings: Settings) -> BlobStore:
    """The blob store `LINKFLOW_BLOB_URL` names: S3 or a directory (default: `blobs`
    in the data dir). Processes on several machines need S3 to read each other's blobs."""
    if settings.blob_url is None:
        return FilesystemBlobStore(settings.data_dir / "blobs")
    location = parse_blob_url(settings.blob_url)
    if location.scheme == "s3":
        secret = settings.blob_s3_secret_access_key
        return S3BlobStore(
            location.bucket, prefix=location.prefix, endpoint_url=settings.blob_s3_endpoint,
            region=settings.blob_s3_region, access_key_id=settings.blob_s3_access_key_id,
            secret_access_key=None if secret is None else secret.get_secret_value(),
        )  # fmt: skip
    assert location.path is not None
    path = location.path if location.path.is_absolute() else settings.data_dir / location.path
    return FilesystemBlobStore(path)


def build_local_engine(
    settings: Settings,
    *,
    base_dir: Path,
    http: httpx.AsyncClient,
    credentials: CredentialResolver | None = None,
    code: CodeRunner | None = None,
) -> tuple[Engine, LocalWorkflowRunner]:
    """The engine of `linkflow run`: sub-workflows from files next to the one being run,
    blobs in the data dir, credentials from a file when one is given."""
    runner = LocalWorkflowRunner(base_dir)
    services = NodeServices(
        http=lambda: http,
        credentials=credentials,
        blobs=build_blob_store(settings),
        code=code,
        workflows=runner,
        blob_threshold_bytes=settings.blob_threshold_bytes,
    )
    engine = Engine(services=services)
    runner.bind(engine)
    return engine, runner


@dataclass
class Runtime:
    """The execution plane of one process: what `serve` runs beside the API."""

    settings: Settings
    database: Database
    writer: GroupCommitWriter
    queue: LocalQueue
    bus: LocalBus
    cancels: CancelRegistry
    leases: LeaseKeeper
    http: httpx.AsyncClient
    engine: Engine
    executions: ExecutionService
    worker: Worker
    scheduler: LocalScheduler
    plane: Plane
    children: ChildExecutions
    code: CodeRunner | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> int:
        """Start the writer, re-enqueue what the database says is unfinished, start the
        worker and the scheduler; returns how many executions were recovered."""
        self.writer.start()
        recovered = await self.executions.recover(self.dead_owner)
        recovered += await self.children.recover()
        self.tasks = [
            asyncio.create_task(self.worker.run(), name="worker"),
            asyncio.create_task(self.scheduler.run(), name="scheduler"),
            asyncio.create_task(self.leases.run(), name="lease-heartbeat"),
        ]
        return recovered

    def dead_owner(self, owner: str) -> bool:
        """Whether a lease belongs to a dead process of this machine (not to this one)."""
        return held_by_dead_process(owner, me=self.leases.process)

    async def stop(self) -> None:
        """Graceful: stop taking jobs, let running executions reach their end, flush."""
        await self.queue.close()
        if self.tasks:
            worker, *others = self.tasks
            for task in others:
                task.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await asyncio.gather(*others, return_exceptions=True)
        await self.writer.close()
        await self.http.aclose()
        if self.code is not None and hasattr(self.code, "close"):
            await self.code.close()


def build_runtime(
    settings: Settings, database: Database, *, concurrency: int = 64,
    writer_process: bool = False,
) -> Runtime:  # fmt: skip
    """The embedded execution plane (in-process queue and bus) on `database`;
    `writer_process`: SQLite writes in a child process (see `store.sqlite_writer`)."""
    from linkflow.api.container import public_url
    from linkflow.sandbox import build_runner

    writer = GroupCommitWriter(database, process=writer_process)
    leases = LeaseKeeper(writer, ttl_s=settings.lease_ttl_s)
    queue = LocalQueue()
    children = ChildExecutions(database, queue)
    bus = LocalBus()
    cancels = CancelRegistry()
    http = shared_http_client(settings)
    code = build_runner(settings)
    box = SecretBox.from_key(settings.encryption_key_bytes())
    resolver = ExecutionCredentials(database, box, http)
    services = NodeServices(
        http=lambda: http, blobs=build_blob_store(settings), code=code,
        credentials=resolver, workflows=children,
        blob_threshold_bytes=settings.blob_threshold_bytes,
    )  # fmt: skip
    engine = Engine(services=services)
    variables = Variables(database)
    executions = ExecutionService(database, writer, queue, leases=leases.mint,
                                  lease_ttl_s=settings.lease_ttl_s)  # fmt: skip
    assert settings.secret_key is not None
    worker = Worker(database=database, writer=writer, queue=queue, engine=engine, bus=bus,
                    cancels=cancels, concurrency=concurrency, variables=variables,
                    credentials=resolver, fresh=executions.fresh, leases=leases,
                    children=children)  # fmt: skip
    resume_links = ResumeLinks(database, queue,
                               settings.secret_key.get_secret_value().encode(),
                               public_url(settings))  # fmt: skip
    worker.resume_url = resume_links.url
    webhooks = WebhookService(database, writer, executions, bus, box,
                              answer_timeout_s=settings.webhook_answer_timeout_s)  # fmt: skip
    plane = Plane(
        engine=engine, bus=bus,
        workflows=WorkflowService(database, engine, box, on_triggers_changed=webhooks.forget),
        executions=ExecutionViews(database, writer, executions, cancels, bus),
        webhooks=webhooks,
        variables=variables, public_url=public_url(settings), schedules=Schedules(database),
        resume_links=resume_links,
        credentials=Credentials(database, box, http,
                                AddressPolicy(allow_private=settings.http_allow_private),
                                refresher=resolver.refresher),
    )  # fmt: skip
    scheduler = LocalScheduler(database, executions, queue,
                               recover_every_s=settings.lease_ttl_s / 2,
                               children=children)  # fmt: skip
    runtime = Runtime(settings, database, writer, queue, bus, cancels, leases, http, engine,
                      executions, worker, scheduler, plane, children, code)  # fmt: skip
    scheduler.dead_owner = runtime.dead_owner
    return runtime
