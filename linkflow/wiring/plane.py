"""The execution plane, built from protocols: the parts every process of it shares
(`Shared`: database writer, queue, bus, leases, the execution service), and on them a
worker, a scheduler and the API's view of executions (`Plane`).

`build_runtime` puts the three in one process, as `linkflow serve` runs them. The
queue and the bus are the embedded ones, or Redis Streams and Redis Pub/Sub when
`LINKFLOW_REDIS_URL` is set (`build_queue`, `build_bus`): then `linkflow api`,
`linkflow worker` and `linkflow scheduler` processes on many machines share them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import httpx

from linkflow.api.container import public_url
from linkflow.api.plane import Plane
from linkflow.bus import Bus, LocalBus
from linkflow.config import Settings
from linkflow.engine import Engine, NodeServices
from linkflow.nodes.registry import NodeRegistry, default_registry
from linkflow.nodes.sdk import CodeRunner
from linkflow.observability.worker_metrics import MeteredQueue, WorkerMetrics
from linkflow.queue import PRIORITY_ORDER, JobType, LocalQueue, Priority, Queue
from linkflow.sandbox import build_runner
from linkflow.scheduler.local import LocalScheduler
from linkflow.scheduler.polling import Poller
from linkflow.security.secretbox import SecretBox
from linkflow.security.ssrf import AddressPolicy, HostGuard
from linkflow.services._oauth2_clients import OAuth2Clients
from linkflow.services.children import ChildExecutions
from linkflow.services.credential_resolver import ExecutionCredentials
from linkflow.services.credentials import Credentials
from linkflow.services.execution_views import ExecutionViews
from linkflow.services.executions import ExecutionService
from linkflow.services.live import LiveEvents
from linkflow.services.oauth2_connect import OAuth2Connect
from linkflow.services.outgoing_events import OutgoingEvents
from linkflow.services.plans import PlanLimits
from linkflow.services.resume import ResumeLinks
from linkflow.services.schedules import Schedules
from linkflow.services.usage_alerts import UsageAlerts
from linkflow.services.variables import Variables
from linkflow.services.webhook_subscriptions import WebhookSubscriptions
from linkflow.services.webhooks import WebhookService
from linkflow.services.workflows import WorkflowService
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import Database
from linkflow.wiring.container import build_mailer
from linkflow.wiring.engine import build_blob_store, shared_http_client
from linkflow.wiring.keys import previous_secrets, secret_box
from linkflow.worker.consumer import CancelRegistry, Worker
from linkflow.worker.handlers import JobHandlers
from linkflow.worker.leases import LeaseKeeper, held_by_dead_process
from linkflow.worker.notifications import Notifications
from linkflow.worker.patient_queue import PatientQueue
from linkflow.worker.webhook_deliveries import WebhookDeliveries

__all__ = [
    "Runtime",
    "Shared",
    "build_bus",
    "build_engine",
    "build_plane",
    "build_queue",
    "build_runtime",
    "build_scheduler",
    "build_shared",
    "build_worker",
]


@dataclass
class Shared:
    """What the worker, the scheduler and the API of one process share."""

    settings: Settings
    database: Database
    writer: GroupCommitWriter
    queue: Queue
    bus: Bus
    leases: LeaseKeeper
    cancels: CancelRegistry
    children: ChildExecutions
    executions: ExecutionService
    resume_links: ResumeLinks
    http: httpx.AsyncClient
    box: SecretBox
    credentials: ExecutionCredentials
    variables: Variables
    registry: NodeRegistry
    """The process's node and credential types (plugins' included: loaded once, here)."""
    outgoing: OutgoingEvents | None = None
    """Made by the first of `build_worker` and `build_plane` (`outgoing_events`)."""

    def dead_owner(self, owner: str) -> bool:
        """Whether a lease belongs to a dead process of this machine (not to this one)."""
        return held_by_dead_process(owner, me=self.leases.process)

    async def __aenter__(self) -> Shared:
        """Start the writer (an API-only process: what `Runtime.start` does for serve's)."""
        self.writer.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Flush the writer, then close the connections (queue, bus, HTTP)."""
        await self.writer.close()
        await self.queue.close()
        for resource in (self.queue, self.bus):
            close = getattr(resource, "aclose", None)
            if close is not None:
                await close()
        await self.http.aclose()


def build_queue(settings: Settings, *, lanes: Sequence[Priority] = PRIORITY_ORDER) -> Queue:
    """Redis Streams when `redis_url` is set (its consumers reading `lanes`), else the
    in-process queue."""
    if settings.redis_url is None:
        return LocalQueue()
    from linkflow.queue.redis_streams import RedisStreamsQueue  # Redis processes only

    return RedisStreamsQueue.from_url(settings.redis_url, prefix=settings.redis_prefix,
                                      lanes=lanes)  # fmt: skip


def build_bus(settings: Settings) -> Bus:
    """Redis Pub/Sub when `redis_url` is set, else the in-process bus."""
    if settings.redis_url is None:
        return LocalBus()
    from linkflow.bus.redis import RedisBus  # Redis processes only

    return RedisBus.from_url(settings.redis_url, prefix=settings.redis_prefix)


def build_shared(
    settings: Settings, database: Database, *, writer: GroupCommitWriter | None = None,
    writer_process: bool = False, queue: Queue | None = None, bus: Bus | None = None,
    runs_worker: bool = True,
) -> Shared:  # fmt: skip
    """The shared parts on `database`; `writer_process`: the writer writes in child
    processes (see `store.writer_process`). `queue` and `bus` default to those the settings
    pick. `runs_worker`: a worker of this process takes what it creates (its lease is
    minted in the creating batch and the worker starts from memory); an API-only
    process leaves every execution to whichever worker dequeues it."""
    assert settings.secret_key is not None
    writer = writer or GroupCommitWriter(database, process=writer_process,
                                         connections=settings.writer_connections)
    queue = queue or build_queue(settings)
    leases = LeaseKeeper(writer, ttl_s=settings.lease_ttl_s)
    http = shared_http_client(settings)
    box = secret_box(settings)
    registry = default_registry()
    allowances = PlanLimits(database, settings.effective_default_plan).allowance
    executions = ExecutionService(database, writer, queue,
                                  leases=leases.mint if runs_worker else None,
                                  lease_ttl_s=settings.lease_ttl_s, keep_fresh=runs_worker,
                                  unlease=partial(leases.release, finished=False),
                                  allowances=allowances)  # fmt: skip
    resume_links = ResumeLinks(database, queue, settings.secret_key.get_secret_value().encode(),
                               public_url(settings),
                               [key.encode() for key in previous_secrets(settings)])  # fmt: skip
    return Shared(
        settings=settings, database=database, writer=writer, queue=queue,
        bus=bus or build_bus(settings), leases=leases, cancels=CancelRegistry(),
        children=ChildExecutions(database, queue, allowances=allowances),
        executions=executions,
        resume_links=resume_links, http=http, box=box,
        credentials=ExecutionCredentials(
            database, box, http, types=registry.credential_types,
            clients=OAuth2Clients(registry.credential_types, settings.oauth2_clients),
        ),
        variables=Variables(database), registry=registry,
    )  # fmt: skip


def build_engine(shared: Shared, code: CodeRunner | None) -> Engine:
    """The server's engine: pooled HTTP, the configured blob store, stored credentials
    (whose values are scrubbed from node errors), sub-workflows as child executions."""
    settings = shared.settings
    return Engine(shared.registry, services=NodeServices(
        http=lambda: shared.http, blobs=build_blob_store(settings), code=code,
        addresses=HostGuard(AddressPolicy(allow_private=settings.http_allow_private)),
        credentials=shared.credentials, scrubber=shared.credentials, workflows=shared.children,
        blob_threshold_bytes=settings.blob_threshold_bytes,
    ))  # fmt: skip


def outgoing_events(shared: Shared) -> OutgoingEvents:
    """The process's fan-out of execution events (one, for the worker and the API)."""
    if shared.outgoing is None:
        shared.outgoing = OutgoingEvents(shared.database, shared.writer, shared.queue)
    return shared.outgoing


def build_jobs(shared: Shared, queue: Queue) -> JobHandlers:
    """The worker's handlers of `webhook_delivery` and `notification` jobs, settling on
    `queue` (the worker's)."""
    settings = shared.settings
    backoff = settings.delivery_backoff_s
    return JobHandlers(queue, {
        JobType.WEBHOOK_DELIVERY: WebhookDeliveries(
            shared.database, shared.box, shared.http,
            timeout_s=settings.webhook_delivery_timeout_s, backoff_base_s=backoff,
        ),
        JobType.NOTIFICATION: Notifications(shared.database, build_mailer(settings),
                                            public_url=public_url(settings)),
    }, backoff_base_s=backoff)  # fmt: skip


def build_worker(
    shared: Shared, engine: Engine, *, concurrency: int = 64, queue: Queue | None = None,
    metrics: WorkerMetrics | None = None,
) -> Worker:  # fmt: skip
    """A worker on the shared queue (or `queue`, one wrapping it), running at most
    `concurrency` executions at once; it waits out the queue's outages (`PatientQueue`).
    With `metrics`, it counts its jobs (`MeteredQueue`), leases, runs and the writer's
    batches there."""
    watch = None
    if metrics is not None:
        queue = MeteredQueue(queue or shared.queue, metrics)
        leases = shared.leases
        metrics.leases(lambda: (leases.renewals, leases.losses))
        shared.writer.on_batch = metrics.writer.batch
        watch = metrics.executions.watch
    patient = PatientQueue(queue or shared.queue)
    return Worker(
        database=shared.database, writer=shared.writer, queue=patient, engine=engine,
        bus=shared.bus, cancels=shared.cancels, concurrency=concurrency,
        variables=shared.variables, credentials=shared.credentials,
        fresh=shared.executions.fresh, leases=shared.leases, children=shared.children,
        resume_url=shared.resume_links.url,
        jobs=build_jobs(shared, patient), outgoing=outgoing_events(shared), watch=watch,
    )  # fmt: skip


def build_scheduler(shared: Shared) -> LocalScheduler:
    """Schedules, due waits and recovery of expired leases (every half lease)."""
    scheduler = LocalScheduler(
        shared.database, shared.executions, shared.queue,
        recover_every_s=shared.settings.lease_ttl_s / 2, children=shared.children,
        catch_up_s=shared.settings.schedule_catch_up_s,
    )  # fmt: skip
    scheduler.dead_owner = shared.dead_owner
    scheduler.poller = Poller(
        shared.database, shared.executions, shared.queue, shared.registry, shared.credentials,
        HostGuard(AddressPolicy(allow_private=shared.settings.http_allow_private)),
    )  # fmt: skip
    plans = PlanLimits(shared.database, shared.settings.effective_default_plan)
    scheduler.usage_alerts = UsageAlerts(shared.database, plans, shared.queue).check
    return scheduler


def build_plane(shared: Shared, engine: Engine) -> Plane:
    """The API's view of the execution plane: workflows, executions, webhooks."""
    settings, database, box = shared.settings, shared.database, shared.box
    credentials = Credentials(database, box, shared.http,
                              AddressPolicy(allow_private=settings.http_allow_private),
                              refresher=shared.credentials.refresher,
                              types=engine.registry.credential_types)  # fmt: skip
    webhooks = WebhookService(database, shared.writer, shared.executions, shared.bus, box,
                              answer_timeout_s=settings.webhook_answer_timeout_s,
                              blobs=engine.services.blobs)  # fmt: skip
    return Plane(
        engine=engine, bus=shared.bus,
        workflows=WorkflowService(database, engine, box, on_triggers_changed=webhooks.forget,
                                  limits=PlanLimits(database, settings.effective_default_plan)),
        executions=ExecutionViews(database, shared.writer, shared.executions, shared.cancels,
                                  shared.bus, blobs=engine.services.blobs),
        webhooks=webhooks, variables=shared.variables, public_url=public_url(settings),
        live=LiveEvents(database),
        subscriptions=WebhookSubscriptions(
            database, box, shared.queue, AddressPolicy(allow_private=settings.http_allow_private),
            on_change=outgoing_events(shared).forget,
        ),
        schedules=Schedules(database), resume_links=shared.resume_links, queue=shared.queue,
        credentials=credentials, oauth2=OAuth2Connect(
            database, credentials, shared.credentials.clients, shared.http,
            public_url=public_url(settings), done_url=settings.oauth2_connect_redirect_url,
            state_ttl=timedelta(seconds=settings.oauth2_state_ttl_s),
        ),
    )  # fmt: skip


@dataclass
class Runtime:
    """The execution plane of one process: what `serve` runs beside the API."""

    shared: Shared
    engine: Engine
    worker: Worker
    scheduler: LocalScheduler
    plane: Plane
    code: CodeRunner | None = None
    metrics: WorkerMetrics | None = None
    """Where the worker counts (serve: its API's registry); the queue's depth is read too."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def database(self) -> Database:
        return self.shared.database

    @property
    def executions(self) -> ExecutionService:
        return self.shared.executions

    async def start(self) -> int:
        """Start the writer, re-enqueue what the database says is unfinished, start the
        worker and the scheduler; returns how many executions were recovered."""
        shared = self.shared
        shared.writer.start()
        recovered = await shared.executions.recover(shared.dead_owner)
        recovered += await shared.children.recover()
        await outgoing_events(shared).recover()
        self.tasks = [
            asyncio.create_task(self.worker.run(), name="worker"),
            asyncio.create_task(self.scheduler.run(), name="scheduler"),
            asyncio.create_task(shared.leases.run(), name="lease-heartbeat"),
        ]
        if self.metrics is not None:
            self.tasks.append(asyncio.create_task(self.metrics.watch_depth(shared.queue),
                                                  name="queue-depth"))  # fmt: skip
        return recovered

    async def stop(self) -> None:
        """Graceful: stop taking jobs, let running executions reach their end, flush."""
        shared = self.shared
        await shared.queue.close()
        if self.tasks:
            worker, *others = self.tasks
            for task in others:
                task.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await asyncio.gather(*others, return_exceptions=True)
        await shared.aclose()  # the writer flushed, then the queue's, bus's and HTTP's connections
        if self.code is not None and hasattr(self.code, "close"):
            await self.code.close()


def build_runtime(
    settings: Settings, database: Database, *, concurrency: int = 64,
    writer_process: bool = False, metrics: WorkerMetrics | None = None,
) -> Runtime:  # fmt: skip
    """Worker, scheduler and the API's plane in one process, on the embedded queue and
    bus, on `database`; the worker counts in `metrics` when given."""
    shared = build_shared(settings, database, writer_process=writer_process)
    code = build_runner(settings)
    engine = build_engine(shared, code)
    worker = build_worker(shared, engine, concurrency=concurrency, metrics=metrics)
    return Runtime(shared, engine, worker, build_scheduler(shared), build_plane(shared, engine),
                   code, metrics)  # fmt: skip
