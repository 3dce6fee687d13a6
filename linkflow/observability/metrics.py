"""Prometheus metrics of the HTTP edge, in a registry owned by the app (no global state):
requests and their durations, open live-event connections (WebSocket and SSE).

Requests are labelled by route template (``/api/v1/users/{user_id}``), never by
raw path, so one metric series exists per endpoint whatever the ids; requests
that matched no route share the label ``<unmatched>``.
"""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "UNMATCHED_ROUTE", "HttpMetrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
UNMATCHED_ROUTE: Final = "<unmatched>"
_MAX_CACHED_LABELS: Final = 1024
"""Label sets whose children `observe` keeps (methods are the client's choice)."""
# From 1 ms (a cached read) to 30 s (an execution waited for, the longest request).
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class HttpMetrics:
    """The HTTP metrics of one app; `render` is the body of ``GET /metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: Final = registry or CollectorRegistry()
        self.requests: Final = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration: Final = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        live: Final = Gauge(
            "linkflow_live_connections", "Open live-event connections: WebSocket (/ws) and "
            "server-sent events (/executions/{id}/events).", ["kind"], registry=self.registry,
        )  # fmt: skip
        self.websockets: Final = live.labels("ws")
        """`with metrics.websockets.track_inprogress():` around an open connection."""
        self.sse: Final = live.labels("sse")
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """The labelled counter and histogram per (method, route, status): `labels()`
        builds and looks up its key under a lock on every call."""

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)),
                        self.duration.labels(method, route))  # fmt: skip
            if len(self._children) < _MAX_CACHED_LABELS:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
