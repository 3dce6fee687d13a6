"""An OTLP/HTTP trace receiver on loopback, for tests of what LinkFlow exports.

`receiver()` serves `POST /v1/traces` on 127.0.0.1 (a `tests._http_server` server) and
answers each export as a collector does: an empty `ExportTraceServiceResponse`. The
spans are read back from the recorded requests, parsed with `opentelemetry-proto` (the
exporter's own message definitions), so what a test sees is what a collector would.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tests._http_server import Recorded, Reply, TestServer, serve

__all__ = ["ExportedSpan", "Receiver", "receiver"]

PATH = "/v1/traces"
KINDS = {ProtoSpan.SPAN_KIND_INTERNAL: "internal", ProtoSpan.SPAN_KIND_SERVER: "server",
         ProtoSpan.SPAN_KIND_CLIENT: "client", ProtoSpan.SPAN_KIND_PRODUCER: "producer",
         ProtoSpan.SPAN_KIND_CONSUMER: "consumer"}  # fmt: skip


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    """Empty for a root span."""
    attributes: dict[str, Any]
    error: bool
    start_ns: int
    end_ns: int
    events: list[str]


class Receiver:
    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.endpoint = server.url("")

    @property
    def exports(self) -> list[Recorded]:
        return self.server.hits(PATH)

    def spans(self) -> list[ExportedSpan]:
        found = []
        for export in self.exports:
            body = export.body
            if export.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                service = _attributes(resource.resource.attributes).get("service.name", "")
                for scope in resource.scope_spans:
                    found.extend(_span(service, span) for span in scope.spans)
        return found

    def trace(self, trace_id: str) -> list[ExportedSpan]:
        return [span for span in self.spans() if span.trace_id == trace_id]


def _span(service: str, span: ProtoSpan) -> ExportedSpan:
    return ExportedSpan(
        service=service, name=span.name, kind=KINDS.get(span.kind, "unspecified"),
        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(), attributes=_attributes(span.attributes),
        error=span.status.code == span.status.STATUS_CODE_ERROR,
        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
        events=[event.name for event in span.events],
    )  # fmt: skip


def _attributes(pairs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


def _accept(_request: Recorded) -> Reply:
    body = ExportTraceServiceResponse().SerializeToString()
    return Reply(200, body, content_type="application/x-protobuf")


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A receiver for the duration of the block; `endpoint` is its base URL."""
    with serve({PATH: _accept}) as server:
        yield Receiver(server)
