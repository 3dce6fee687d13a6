"""OpenTelemetry tracing: one trace from the HTTP request through the queue to each node.

Where spans start and end, and why there:
- `ServerSpan` (kind server): the edge middleware starts it when a request arrives and
  ends it after the access log line, named `<METHOD> <route template>` (the template,
  not the path: ids in paths would make every name unique). A caller's W3C
  `traceparent` makes it a child of the caller's span. A webhook call gets this span
  and nothing else at the edge: it is the hot path.
- `span("execution.create")` (internal) around storing an execution, and within it
  `span("enqueue workflow_execution", kind="producer")` around handing its job to the
  queue. `carry` puts the current span's `traceparent` into the job's payload: the
  trace crosses processes (api to worker over Redis) inside the job itself, whose
  encoding stays what it was.
- `job_span` (kind consumer): a worker's run of one delivery of a job, a child of the
  span that enqueued it (the job's `traceparent`), or a new trace when the job carries
  none (a scheduler's tick, recovery). It ends when the delivery is settled.
- `node_spans` (internal): one span per node run, from its `node.started` event to its
  `node.completed`, `node.failed` or the execution's `execution.waiting`, timed by those
  events, children of the job span. They are built from the events the engine reports
  to its observer (the path live events take), so the engine stays free of any
  tracing: it neither imports this module nor OpenTelemetry.

Tracing is configuration of the process, like logging (`observability.logging`): the
process's command calls `start_tracing` once, and the spans above are made wherever
the request or the job is, without a tracer handed through every constructor. Without
`LINKFLOW_OTLP_ENDPOINT` nothing is set up: each function above is a check of one
module variable and returns a shared no-op, so no span object is made and no context
is written into jobs. With it, spans are batched (`BatchSpanProcessor`, its own
thread) and exported by OTLP over HTTP; `stop_tracing` flushes them when the process
stops. The SDK's own `OTEL_BSP_*` variables tune the batching.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import unquote

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from datetime import datetime

    from opentelemetry.sdk.trace import TracerProvider
    from starlette.types import Scope

    from linkflow.config import Settings
    from linkflow.engine.events import Event
    from linkflow.queue.job import Job

__all__ = [
    "TRACEPARENT",
    "ServerSpan",
    "carry",
    "job_span",
    "node_spans",
    "server_span",
    "span",
    "start_tracing",
    "stop_tracing",
    "tracing_on",
]

TRACEPARENT: Final = "traceparent"
"""The W3C header, and the key of a job payload that carries the trace."""
TRACES_PATH: Final = "/v1/traces"
"""OTLP/HTTP's path for spans, added to `LINKFLOW_OTLP_ENDPOINT` (a collector's base URL,
as `OTEL_EXPORTER_OTLP_ENDPOINT` is) unless it is already there."""
EXPORT_TIMEOUT_S: Final = 10.0
"""One export's request; a collector that takes longer loses that batch, not the process."""

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_OFF: Final[AbstractContextManager[None]] = nullcontext()
"""What the span functions return when tracing is off: one object, shared, reusable."""
_KINDS: Final = {"internal": SpanKind.INTERNAL, "producer": SpanKind.PRODUCER}


@dataclass(frozen=True, slots=True)
class _Tracing:
    provider: TracerProvider
    tracer: Tracer


_on: _Tracing | None = None
"""This process's tracer (`start_tracing`); None: tracing is off."""


def start_tracing(settings: Settings, *, process: str) -> bool:
    """Set up this process's tracing from `settings`, once; `process` (api, worker,
    scheduler, serve) names the service unless `LINKFLOW_SERVICE_NAME` does. False, and
    nothing made, without `LINKFLOW_OTLP_ENDPOINT`."""
    global _on
    if settings.otlp_endpoint is None or _on is not None:
        return _on is not None
    # Imported here: a process without tracing never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from linkflow.observability.logging import log_trace_ids

    endpoint = settings.otlp_endpoint.rstrip("/")
    if not endpoint.endswith(TRACES_PATH):
        endpoint += TRACES_PATH
    headers = _headers(settings.otlp_headers.get_secret_value() if settings.otlp_headers else "")
    name = settings.service_name or f"linkflow-{process}"
    # Not the global provider: `stop_tracing` and tests may start and stop it, and
    # nothing else in the process is instrumented.
    provider = TracerProvider(resource=Resource.create({"service.name": name}),
                              shutdown_on_exit=True)  # fmt: skip
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=EXPORT_TIMEOUT_S)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _on = _Tracing(provider, provider.get_tracer("linkflow"))
    log_trace_ids()
    return True


def stop_tracing() -> None:
    """Export the spans still buffered and stop (blocks up to the exporter's timeout:
    call it off the event loop). Nothing to do when tracing is off."""
    global _on
    if _on is not None:
        tracing, _on = _on, None
        tracing.provider.shutdown()


def tracing_on() -> bool:
    return _on is not None


def _headers(text: str) -> dict[str, str]:
    """`name=value,name2=value2` (OTEL_EXPORTER_OTLP_HEADERS' format: values URL-encoded)."""
    pairs = (part.partition("=") for part in text.split(",") if part.strip())
    return {name.strip(): unquote(value.strip()) for name, _, value in pairs}


def _parent(traceparent: object) -> Context:
    """The remote span a `traceparent` names, as a parent; a new trace when it names none."""
    if isinstance(traceparent, str):
        return _PROPAGATOR.extract({TRACEPARENT: traceparent}, context=Context())
    return Context()


def _attributes(values: Mapping[str, object]) -> dict[str, str | int | float | bool]:
    return {f"linkflow.{key}": value if isinstance(value, str | int | float | bool) else str(value)
            for key, value in values.items() if value is not None}  # fmt: skip


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


# -- the HTTP edge ---------------------------------------------------------------------


class ServerSpan:
    """The span of one HTTP request, current while the app handles it."""

    __slots__ = ("_token", "method", "span")

    def __init__(self, tracer: Tracer, scope: Scope) -> None:
        traceparent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
                break
        parent = _parent(traceparent)
        self.method: str = scope["method"]
        client = scope.get("client")
        self.span: Span = tracer.start_span(
            self.method, context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": self.method, "url.path": scope["path"],
                        "url.scheme": scope.get("scheme", "http"),
                        **({"client.address": client[0]} if client else {})},
        )  # fmt: skip
        self._token = otel_context.attach(trace.set_span_in_context(self.span, parent))

    def end(self, route: str | None, status: int) -> None:
        """Name the span by its route template, record the status, end it."""
        span = self.span
        if route is not None:
            span.update_name(f"{self.method} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        otel_context.detach(self._token)


def server_span(scope: Scope) -> ServerSpan | None:
    """The span of the request `scope` starts; None (nothing made) when tracing is off."""
    return ServerSpan(_on.tracer, scope) if _on is not None else None


# -- executions and jobs ---------------------------------------------------------------


def span(
    name: str, *, kind: Literal["internal", "producer"] = "internal", **attributes: object
) -> AbstractContextManager[object]:
    """A span around the block, current inside it; `attributes` are named `linkflow.<key>`
    (None values left out). A shared no-op when tracing is off."""
    if _on is None:
        return _OFF
    return _on.tracer.start_as_current_span(name, kind=_KINDS[kind],
                                            attributes=_attributes(attributes))  # fmt: skip


def carry(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` with the current span's `traceparent`, for a job to carry; `payload`
    itself when tracing is off or no span is current."""
    if _on is None:
        return payload
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return payload
    flags = int(current.trace_flags)
    traceparent = f"00-{current.trace_id:032x}-{current.span_id:016x}-{flags:02x}"
    return {**payload, TRACEPARENT: traceparent}


def job_span(job: Job, attempt: int, **attributes: object) -> AbstractContextManager[object]:
    """The consumer span of one delivery of `job`, the child of the span that enqueued it;
    a shared no-op when tracing is off."""
    if _on is None:
        return _OFF
    return _on.tracer.start_as_current_span(
        f"run {job.type.value}", context=_parent(job.payload.get(TRACEPARENT)),
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "linkflow", "messaging.operation.type": "process",
                    "messaging.destination.name": job.queue.value,
                    "messaging.message.id": job.id, "linkflow.job.attempt": attempt,
                    **_attributes(attributes)},
    )  # fmt: skip


# -- node runs -------------------------------------------------------------------------

Observer = Callable[["Event"], None]


def node_spans(
    observer: Observer, node_type: Callable[[str], str]
) -> AbstractContextManager[Observer]:
    """`observer`, also making a span per node run from the events it hears (see the
    module's doc); spans still open when the block ends (a lost lease, a shutdown, an
    error) end as `interrupted`. `observer` itself, and no span, when tracing is off."""
    if _on is None:
        return nullcontext(observer)
    return _NodeSpans(_on.tracer, observer, node_type)


class _NodeSpans:
    """The node runs' spans of one run of an execution, children of its job's span."""

    def __init__(self, tracer: Tracer, observer: Observer, node_type: Callable[[str], str]) -> None:
        self.tracer = tracer
        self.observer = observer
        self.node_type = node_type
        self.parent = otel_context.get_current()
        self.job = trace.get_current_span(self.parent)
        self.running: dict[tuple[str, int], Span] = {}

    def __enter__(self) -> Observer:
        return self.observe

    def __exit__(self, *_exc: object) -> None:
        for key in list(self.running):
            self._finish(key, "interrupted")

    def observe(self, event: Event) -> None:
        self.observer(event)
        kind, data = event.type, event.data
        if event.node_id is None:
            if kind == "execution.waiting" and isinstance(data.get("node_id"), str):
                self._finish((data["node_id"], data.get("run", 0)), "waiting", event.timestamp)
            elif kind in _ENDS:
                self.job.set_attribute("linkflow.execution.status", _ENDS[kind])
            return
        key = (event.node_id, data.get("run", 0))
        if kind == "node.started":
            self._started(key, event)
            return
        node = self.running.get(key)
        if node is None:
            return
        if kind == "node.retrying":
            error = data.get("error") or {}
            node.add_event("retry", timestamp=_ns(event.timestamp), attributes={
                "linkflow.node.attempt": data.get("attempt", 1),
                "linkflow.node.error": str(error.get("message", "")),
                "linkflow.node.retry_in_s": float(data.get("delay_s") or 0),
            })  # fmt: skip
        elif kind == "node.completed":
            outputs = data.get("outputs")
            if isinstance(outputs, dict):  # not when they went to the blob store
                node.set_attribute("linkflow.node.items_out",
                                   sum(len(items) for items in outputs.values()))  # fmt: skip
            if isinstance(data.get("error"), dict):  # on_error continue/output: items failed
                node.set_attribute("linkflow.node.error", str(data["error"].get("message")))
            self._finish(key, "completed", event.timestamp)
        elif kind == "node.failed":
            message = str((data.get("error") or {}).get("message", ""))
            node.set_status(Status(StatusCode.ERROR, message))
            self._finish(key, "failed", event.timestamp)

    def _started(self, key: tuple[str, int], event: Event) -> None:
        node = self.running.get(key)
        if node is not None:  # the next attempt of a retried run
            node.set_attribute("linkflow.node.attempts", event.data.get("attempt", 1))
            return
        node_id = key[0]
        self.running[key] = self.tracer.start_span(
            f"node {node_id}", context=self.parent, start_time=_ns(event.timestamp),
            attributes={"linkflow.node.id": node_id, "linkflow.node.type": self.node_type(node_id),
                        "linkflow.node.run": key[1],
                        "linkflow.node.items_in": _items_in(event.data.get("inputs"))},
        )  # fmt: skip

    def _finish(self, key: tuple[str, int], status: str, at: datetime | None = None) -> None:
        node = self.running.pop(key, None)
        if node is not None:
            node.set_attribute("linkflow.node.status", status)
            node.end(end_time=_ns(at) if at is not None else None)


_ENDS: Final = {
    "execution.completed": "completed", "execution.failed": "failed",
    "execution.cancelled": "cancelled", "execution.timed_out": "timeout",
}  # fmt: skip


def _items_in(inputs: object) -> int:
    """Items a node run received: its `node.started` inputs are segments, each
    `[node_id, run, output, count]`, per input."""
    if not isinstance(inputs, list):
        return 0
    return sum(
        segment[3]
        for input_ in inputs
        if isinstance(input_, list)
        for segment in input_
        if isinstance(segment, list) and len(segment) == 4
    )
