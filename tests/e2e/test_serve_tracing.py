"""Tracing end to end: `linkflow serve` exporting to an OTLP/HTTP receiver on loopback.

A webhook call that sends a W3C `traceparent` becomes one trace under the caller's
span: the HTTP request, the execution's creation, the enqueue, the worker's run of the
job and one span per node run; the log lines written meanwhile carry its trace id.
Without `LINKFLOW_OTLP_ENDPOINT` nothing is exported, even with the SDK's own
`OTEL_EXPORTER_OTLP_ENDPOINT` pointing at the receiver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._otlp import ExportedSpan, Receiver, receiver
from tests.e2e._serve import EXAMPLES, Client, Serve, poll, register, workflow

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
NODE_RUNS = {"hook": "webhook", "check": "if", "adult": "set", "join": "merge"}
"""The nodes an adult's call runs (`minor` is skipped: no span)."""
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
"""The SDK's batching delay (ms): spans reach the receiver within a poll, not 5 s."""


@pytest.fixture
def otlp() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def start(tmp_path: Path, **settings: str) -> tuple[Serve, Client]:
    server = Serve(tmp_path, LINKFLOW_LOG_FORMAT="json", LINKFLOW_LOG_LEVEL="debug",
                   **FAST_EXPORT, **settings)  # fmt: skip
    server.start()
    client = Client(server)
    register(client)
    return server, client


def greet(client: Client) -> tuple[str, str]:
    """Activate the greeting workflow: its webhook URL and the workflow id."""
    doc = json.loads((EXAMPLES / "greet-adults.json").read_text())
    created = workflow(client, doc, activate=True)
    return created["webhooks"][0]["url"], created["id"]


def only_execution(client: Client, workflow_id: str) -> str:
    (execution,) = client.listed("/api/v1/executions", workflow_id=workflow_id)
    return str(execution["id"])


def log_lines(server: Serve) -> list[dict[str, Any]]:
    lines = []
    for line in server.log.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def one(spans: list[ExportedSpan], **wanted: str) -> ExportedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in wanted.items())]
    assert len(found) == 1, (wanted, [(s.name, s.kind) for s in spans])
    return found[0]


def test_a_webhook_call_is_one_trace_from_the_request_to_each_node(
    tmp_path: Path, otlp: Receiver
) -> None:
    server, client = start(tmp_path, LINKFLOW_OTLP_ENDPOINT=otlp.endpoint)
    try:
        url, workflow_id = greet(client)
        answer = httpx.post(url, json={"name": "Ada", "age": 36},
                            headers={"traceparent": TRACEPARENT}, timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"msg": "Welcome Ada"}
        execution_id = only_execution(client, workflow_id)

        def complete() -> list[ExportedSpan] | None:
            spans = otlp.trace(CALLER_TRACE)
            names = [span.name for span in spans]
            # The job's span ends after its nodes' spans: it may come in a later export.
            done = (
                sum(n.startswith("node ") for n in names) == 4 and "run workflow_execution" in names
            )
            return spans if done else None

        spans = poll(complete, "the trace's spans to be exported")
    finally:
        server.stop()

    assert {s.service for s in spans} == {"linkflow-serve"}
    http = one(spans, kind="server")
    assert http.name == "POST /webhooks/{endpoint_id}"
    assert http.parent_id == CALLER_SPAN  # the caller's span is its parent
    assert http.attributes["http.response.status_code"] == 200
    assert http.attributes["http.route"] == "/webhooks/{endpoint_id}"
    created = one(spans, name="execution.create")
    assert created.parent_id == http.span_id
    assert created.attributes["linkflow.execution_id"] == execution_id
    assert created.attributes["linkflow.trigger"] == "webhook"
    enqueued = one(spans, kind="producer")
    assert enqueued.parent_id == created.span_id
    assert enqueued.attributes["linkflow.queue"] == "high"  # a webhook's priority
    ran = one(spans, kind="consumer")
    assert ran.name == "run workflow_execution"
    assert ran.parent_id == enqueued.span_id  # through the job's traceparent
    assert ran.attributes["linkflow.execution_id"] == execution_id
    assert ran.attributes["linkflow.execution.status"] == "completed"
    nodes = {s.attributes["linkflow.node.id"]: s for s in spans if s.name.startswith("node ")}
    assert {node: s.attributes["linkflow.node.type"] for node, s in nodes.items()} == NODE_RUNS
    assert {s.parent_id for s in nodes.values()} == {ran.span_id}
    assert {s.attributes["linkflow.node.status"] for s in nodes.values()} == {"completed"}
    assert nodes["check"].attributes["linkflow.node.items_in"] == 1
    assert nodes["adult"].attributes["linkflow.node.items_out"] == 1
    in_order = sorted(nodes.values(), key=lambda s: s.start_ns)
    assert [s.attributes["linkflow.node.id"] for s in in_order] == list(NODE_RUNS)
    assert all(s.end_ns >= s.start_ns for s in spans)

    lines = log_lines(server)
    worker = [line for line in lines if line.get("execution_id") == execution_id]
    assert any(line["event"] == "execution job done" for line in worker), worker
    assert {line.get("trace_id") for line in worker} == {CALLER_TRACE}
    (access,) = [line for line in lines if line["event"] == "request"
                 and line["path"].startswith("/webhooks/")]  # fmt: skip
    assert access["trace_id"] == CALLER_TRACE
    assert access["span_id"] == http.span_id


def test_without_an_otlp_endpoint_nothing_is_traced(tmp_path: Path, otlp: Receiver) -> None:
    """The SDK's own variable pointing at the receiver changes nothing: tracing is
    LinkFlow's setting, and off by default."""
    server, client = start(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint)
    try:
        url, workflow_id = greet(client)
        answer = httpx.post(url, json={"name": "Ada", "age": 36},
                            headers={"traceparent": TRACEPARENT}, timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        execution_id = only_execution(client, workflow_id)
    finally:
        server.stop()  # a tracer would flush its spans now
    assert otlp.exports == []
    lines = log_lines(server)
    worker = [line for line in lines if line.get("execution_id") == execution_id]
    assert any(line["event"] == "execution job done" for line in worker), worker
    assert not [line for line in lines if "trace_id" in line or "span_id" in line]


def test_an_outgoing_webhook_delivery_continues_the_trace_of_its_execution(
    tmp_path: Path, otlp: Receiver
) -> None:
    """The execution's end enqueues its subscription's delivery inside the job's span: the
    delivery job's run (and its POST) are in the caller's trace, under the execution's."""
    from tests._http_server import Reply, serve

    with serve({"/hook": lambda _request: Reply(200)}) as hook_receiver:
        server, client = start(tmp_path, LINKFLOW_OTLP_ENDPOINT=otlp.endpoint,
                               LINKFLOW_HTTP_ALLOW_PRIVATE="true")  # fmt: skip
        try:
            client.ok("POST", "/api/v1/webhook-subscriptions", 201, json={
                "url": hook_receiver.url("/hook"), "events": ["execution.completed"],
            })  # fmt: skip
            url, _ = greet(client)
            answer = httpx.post(url, json={"name": "Ada", "age": 36}, timeout=30,
                                headers={"traceparent": TRACEPARENT})  # fmt: skip
            assert answer.status_code == 200, answer.text
            poll(lambda: hook_receiver.hits("/hook"), "the delivery to reach the receiver")

            def delivered() -> list[ExportedSpan] | None:
                spans = otlp.trace(CALLER_TRACE)
                names = [span.name for span in spans]
                return spans if "run webhook_delivery" in names else None

            spans = poll(delivered, "the delivery's span to be exported")
        finally:
            server.stop()
    runs = {span.name: span for span in spans if span.name.startswith("run ")}
    assert set(runs) == {"run workflow_execution", "run webhook_delivery"}
    # The delivery's job was enqueued while the execution's job ran: its parent chain
    # leads to the execution's run.
    by_id = {span.span_id: span for span in spans}
    parent, chain = runs["run webhook_delivery"].parent_id, []
    while parent in by_id:
        chain.append(by_id[parent].name)
        parent = by_id[parent].parent_id
    assert "run workflow_execution" in chain, chain
