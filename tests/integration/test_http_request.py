"""The http_request node against real HTTP servers on 127.0.0.1, through the real engine.

The guard refuses loopback, so these runs use `guarded_client(allow_private=True)`
(the guard itself is tested in tests/unit/security/test_ssrf.py); one test runs
with the production policy to show a refusal reaches the user as a node error.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkflow.blobs import FilesystemBlobStore
from linkflow.engine import Engine, ExecutionInfo, NodeServices, RunResult
from linkflow.nodes.builtin._http import retry_after_s
from linkflow.nodes.builtin.http_request import METHODS
from linkflow.nodes.registry import default_registry
from linkflow.nodes.sdk import BinaryRef
from linkflow.security.ssrf import guarded_client
from linkflow.services.credentials_file import FileCredentials
from tests._http_server import HANG, Recorded, Reply, TestServer, form_parts, serve
from tests.unit.engine._support import START as CLOCK_START
from tests.unit.engine._support import CountingEntropy, StepClock
from tests.unit.nodes._support import NODE, START, document, edge, node

EXECUTION_ID = "exec-1"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe binary \x00 bytes"
CREDENTIALS = {
    "basic": {"type": "basic", "data": {"username": "ada", "password": "s3cret"}},
    "bearer": {"type": "bearer", "data": {"token": "tok-123"}},
    "header": {"type": "header", "data": {"name": "X-Api-Token", "value": "hdr-456"}},
    "query": {"type": "query", "data": {"name": "api_key", "value": "qry-789"}},
    "api_key": {"type": "api_key", "data": {"value": "key-000", "name": "X-Key"}},
    "api_key_query": {"type": "api_key", "data": {"value": "key-111", "in": "query"}},
    "oauth2": {"type": "oauth2", "data": {"access_token": "oa-222", "client_id": "c"}},
}


def echo(request: Recorded) -> Reply:
    """What the server received, as JSON."""
    return Reply.json({
        "method": request.method, "query": request.query, "headers": request.headers,
        "body": request.body.decode("utf-8", "replace"),
    })  # fmt: skip


def png(_: Recorded) -> Reply:
    return Reply(200, PNG, {"Content-Disposition": 'attachment; filename="pic.png"'}, "image/png")


ROUTES = {
    "/echo": echo,
    "/png": png,
    "/list": lambda _: Reply.json([{"id": 1}, {"id": 2}, 3]),
    "/text": lambda _: Reply(200, "plain words", content_type="text/plain; charset=utf-8"),
    "/not-json": lambda _: Reply(200, "<html>", content_type="text/html"),
    "/missing": lambda _: Reply(404, "no such thing here", content_type="text/plain"),
    "/hang": lambda _: HANG,
}


@pytest.fixture
def server() -> Iterator[TestServer]:
    with serve(dict(ROUTES)) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    http = guarded_client(allow_private=True)
    yield http
    await http.aclose()


@pytest.fixture
def blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture
def engine(client: httpx.AsyncClient, blobs: FilesystemBlobStore) -> Engine:
    services = NodeServices(
        http=lambda: client, credentials=FileCredentials(CREDENTIALS), blobs=blobs
    )
    return Engine(default_registry(plugins=False), services=services)


async def run(
    engine: Engine,
    parameters: dict[str, Any],
    input_: Any = None,
    *,
    clock: StepClock | None = None,
    extra_nodes: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> RunResult:
    """Run `manual (START) → http_request (NODE) [→ extra nodes in a chain]`."""
    nodes = [node(START, "manual"), node(NODE, "http_request", parameters, **fields)]
    nodes += extra_nodes or []
    edges = [edge(a["id"], b["id"]) for a, b in itertools.pairwise(nodes)]
    workflow = engine.compile(document(nodes, edges))
    info = ExecutionInfo(
        execution_id=EXECUTION_ID, workflow_id="wf", workflow_name="test",
        workflow_version=1, attempt=1, variables={},
    )  # fmt: skip
    return await engine.run(
        workflow, input=input_, info=info, clock=clock or StepClock(), entropy=CountingEntropy()
    )


def received(result: RunResult, index: int = 0) -> dict[str, Any]:
    """The echo route's answer for input item `index`."""
    assert result.status == "completed", result.error
    return result.output_of(NODE)[index]


def binary_of(result: RunResult, node_id: str = NODE, index: int = 0) -> BinaryRef:
    item = result.state.runs[node_id][-1].outputs["main"][index]
    assert item.binary is not None
    return BinaryRef.from_json(item.binary["data"])


def events(result: RunResult, type_: str) -> list[dict[str, Any]]:
    return [dict(event.data) for event in result.events if event.type == type_]


class TestRequests:
    @pytest.mark.parametrize("method", METHODS)
    async def test_every_method_is_sent(
        self, engine: Engine, server: TestServer, method: str
    ) -> None:
        """The server sees the method; HEAD has no body, so its item's body is empty."""
        result = await run(engine, {"method": method, "url": server.url("/echo")})
        assert result.status == "completed", result.error
        assert server.requests[0].method == method
        if method != "HEAD":
            assert received(result)["method"] == method

    async def test_query_parameters_join_the_urls_own(
        self, engine: Engine, server: TestServer
    ) -> None:
        """Lists repeat, booleans are written true/false, null is left out."""
        query = {"a": 1, "tags": ["x", "y"], "flag": True, "skip": None}
        result = await run(engine, {"url": server.url("/echo?z=0"), "query": query})
        assert received(result)["query"] == {
            "z": ["0"], "a": ["1"], "tags": ["x", "y"], "flag": ["true"]
        }  # fmt: skip

    async def test_headers_and_expressions_are_per_item(
        self, engine: Engine, server: TestServer
    ) -> None:
        """One request per input item, parameters evaluated for that item."""
        result = await run(
            engine,
            {"url": server.url("/echo"), "headers": {"X-Name": "{{ json.name }}", "X-Num": 5}},
            [{"name": "ada"}, {"name": "bob"}],
        )
        assert [received(result, i)["headers"]["x-name"] for i in (0, 1)] == ["ada", "bob"]
        assert received(result)["headers"]["x-num"] == "5"
        assert result.item_lineage(NODE) == [[(START, 0, 0)], [(START, 0, 1)]]


class TestBodies:
    async def test_json_body(self, engine: Engine, server: TestServer) -> None:
        """An object (or any JSON value) is sent as application/json."""
        body = {"name": "{{ json.n }}", "tags": [1, 2]}
        result = await run(
            engine, {"method": "POST", "url": server.url("/echo"), "body": body}, {"n": "ada"}
        )
        seen = received(result)
        assert seen["headers"]["content-type"] == "application/json"
        assert json.loads(seen["body"]) == {"name": "ada", "tags": [1, 2]}

    async def test_form_body(self, engine: Engine, server: TestServer) -> None:
        """URL-encoded fields; a list repeats its field."""
        result = await run(engine, {
            "method": "POST", "url": server.url("/echo"), "body_type": "form",
            "body": {"a": "x y", "n": 2, "many": ["1", "2"]},
        })  # fmt: skip
        seen = received(result)
        assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert seen["body"] == "a=x+y&n=2&many=1&many=2"

    async def test_raw_body_with_content_type(self, engine: Engine, server: TestServer) -> None:
        """Text is sent as it is, with `content_type` (text/plain by default)."""
        result = await run(engine, {
            "method": "PUT", "url": server.url("/echo"), "body_type": "raw",
            "body": "<a>1</a>", "content_type": "application/xml",
        })  # fmt: skip
        seen = received(result)
        assert (seen["headers"]["content-type"], seen["body"]) == ("application/xml", "<a>1</a>")
        plain = await run(engine, {
            "method": "PUT", "url": server.url("/echo"), "body_type": "raw", "body": "hi",
        })  # fmt: skip
        assert received(plain)["headers"]["content-type"] == "text/plain; charset=utf-8"

    async def test_multipart_body_with_fields_only(
        self, engine: Engine, server: TestServer
    ) -> None:
        """Fields alone still make a multipart body."""
        result = await run(engine, {
            "method": "POST", "url": server.url("/echo"), "body_type": "multipart",
            "body": {"a": "1", "b": True},
        })  # fmt: skip
        assert result.status == "completed", result.error
        parts = form_parts(server.requests[0])
        assert {name: part[2] for name, part in parts.items()} == {"a": b"1", "b": b"true"}

    async def test_multipart_body_with_an_items_binary(
        self, engine: Engine, server: TestServer, blobs: FilesystemBlobStore
    ) -> None:
        """A file downloaded by one node is uploaded by the next as a form part."""
        upload = node("upload", "http_request", {
            "method": "POST", "url": server.url("/echo"), "body_type": "multipart",
            "body": {"note": "pic"}, "files": {"file": "data"},
        })  # fmt: skip
        result = await run(engine, {"url": server.url("/png")}, extra_nodes=[upload])
        assert result.status == "completed", result.error
        parts = form_parts(server.hits("/echo")[0])
        assert parts["note"][2] == b"pic"
        assert parts["file"] == ("pic.png", "image/png", PNG)

    async def test_binary_body_uploads_the_items_file(
        self, engine: Engine, server: TestServer
    ) -> None:
        """`body_type: binary` sends the blob's bytes with its type."""
        upload = node("upload", "http_request", {
            "method": "PUT", "url": server.url("/echo"), "body_type": "binary",
        })  # fmt: skip
        result = await run(engine, {"url": server.url("/png")}, extra_nodes=[upload])
        assert result.status == "completed", result.error
        put = server.hits("/echo")[0]
        assert (put.body, put.headers["content-type"]) == (PNG, "image/png")

    async def test_a_missing_binary_fails_the_item(
        self, engine: Engine, server: TestServer
    ) -> None:
        """The message names the binary property."""
        result = await run(
            engine, {"method": "PUT", "url": server.url("/echo"), "body_type": "binary"}
        )
        assert result.status == "failed"
        assert result.error is not None
        assert "no binary 'data'" in result.error["message"]


class TestAuth:
    @pytest.mark.parametrize(
        ("credential", "where", "name", "value"),
        [
            ("basic", "headers", "authorization", "Basic YWRhOnMzY3JldA=="),
            ("bearer", "headers", "authorization", "Bearer tok-123"),
            ("header", "headers", "x-api-token", "hdr-456"),
            ("query", "query", "api_key", ["qry-789"]),
            ("api_key", "headers", "x-key", "key-000"),
            ("api_key_query", "query", "X-API-Key", ["key-111"]),
            ("oauth2", "headers", "authorization", "Bearer oa-222"),
        ],
    )
    async def test_each_credential_type_authenticates(
        self, engine: Engine, server: TestServer, credential: str, where: str, name: str,
        value: Any,
    ) -> None:  # fmt: skip
        """The credential named in the `auth` slot is applied as its type says."""
        result = await run(
            engine, {"url": server.url("/echo"), "auth": "auth"}, credentials={"auth": credential}
        )
        assert received(result)[where][name] == value

    async def test_credentials_never_appear_in_errors(
        self, engine: Engine, server: TestServer
    ) -> None:
        """A failing request with query auth shows the URL without its query."""
        result = await run(
            engine, {"url": server.url("/missing"), "auth": "auth"}, credentials={"auth": "query"}
        )
        assert result.error is not None
        assert "qry-789" not in result.error["message"]
        assert server.url("/missing") in result.error["message"]

    async def test_an_unknown_credential_fails_clearly(
        self, engine: Engine, server: TestServer
    ) -> None:
        result = await run(
            engine, {"url": server.url("/echo"), "auth": "auth"}, credentials={"auth": "nope"}
        )
        assert result.error is not None
        assert "credential 'nope'" in result.error["message"]


class TestFailures:
    async def test_a_timeout_is_retryable(self, engine: Engine, server: TestServer) -> None:
        """A server that never answers: the request times out and the engine retries it."""
        result = await run(
            engine, {"url": server.url("/hang"), "timeout_s": 0.2}, retry={"max_attempts": 2}
        )
        assert result.status == "failed"
        assert result.error is not None
        assert "timed out after 0.2 s" in result.error["message"]
        assert len(events(result, "node.retrying")) == 1
        assert len(server.hits("/hang")) == 2

    async def test_429_waits_as_long_as_retry_after_says_then_succeeds(
        self, engine: Engine, server: TestServer
    ) -> None:
        """The node does not sleep: the engine's clock is asked to wait 1 s, once."""
        answers = [Reply(429, "slow down", {"Retry-After": "1"}), Reply.json({"ok": True})]
        server.routes["/busy"] = lambda _: answers.pop(0)
        clock = StepClock()
        result = await run(
            engine, {"url": server.url("/busy")}, clock=clock, retry={"max_attempts": 2}
        )
        assert result.output_of(NODE) == [{"ok": True}]
        assert clock.slept == [1.0]
        assert events(result, "node.retrying")[0]["delay_s"] == 1.0

    async def test_retry_after_as_an_http_date(self, engine: Engine, server: TestServer) -> None:
        """A date is turned into seconds from the recorded time of the run."""
        when = format_datetime(CLOCK_START + timedelta(seconds=30), usegmt=True)
        answers = [Reply(503, "", {"Retry-After": when}), Reply.json({"ok": True})]
        server.routes["/busy"] = lambda _: answers.pop(0)
        clock = StepClock()
        result = await run(
            engine, {"url": server.url("/busy")}, clock=clock, retry={"max_attempts": 2}
        )
        assert result.status == "completed", result.error
        assert 29 < clock.slept[0] <= 30

    async def test_503_is_retried_with_the_engines_backoff(
        self, engine: Engine, server: TestServer
    ) -> None:
        """Without Retry-After the node's backoff applies."""
        answers = [Reply(503, "down"), Reply(503, "down"), Reply.json({"ok": True})]
        server.routes["/flaky"] = lambda _: answers.pop(0)
        clock = StepClock()
        result = await run(
            engine, {"url": server.url("/flaky")}, clock=clock,
            retry={"max_attempts": 3, "backoff_s": 2},
        )  # fmt: skip
        assert result.output_of(NODE) == [{"ok": True}]
        assert clock.slept == [2.0, 4.0]

    async def test_404_is_not_retried_and_says_what_happened(
        self, engine: Engine, server: TestServer
    ) -> None:
        """Status, reason, URL and the start of the body; one request despite the retries."""
        result = await run(engine, {"url": server.url("/missing")}, retry={"max_attempts": 3})
        assert result.status == "failed"
        assert result.error is not None
        assert result.error["message"] == (
            f"HTTP 404 Not Found from {server.url('/missing')}: no such thing here"
        )
        assert len(server.hits("/missing")) == 1

    async def test_never_error_outputs_the_error_response(
        self, engine: Engine, server: TestServer
    ) -> None:
        result = await run(
            engine, {"url": server.url("/missing"), "never_error": True, "full_response": True}
        )
        assert result.output_of(NODE)[0]["status"] == 404

    async def test_failed_items_go_to_the_error_output(
        self, engine: Engine, server: TestServer
    ) -> None:
        """With on_error: output, the other items carry on."""
        result = await run(
            engine, {"url": server.url("{{ json.path }}")},
            [{"path": "/echo"}, {"path": "/missing"}], on_error="output",
        )  # fmt: skip
        assert len(result.output_of(NODE)) == 1
        failed = result.output_of(NODE, "error")
        assert failed[0]["path"] == "/missing"
        assert "HTTP 404" in failed[0]["error"]["message"]

    async def test_a_refused_address_fails_without_retry(
        self, server: TestServer, blobs: FilesystemBlobStore
    ) -> None:
        """With the production policy, loopback is refused with the setting to change."""
        http = guarded_client(allow_private=False)
        try:
            engine = Engine(
                default_registry(plugins=False), services=NodeServices(http=lambda: http)
            )
            result = await run(engine, {"url": server.url("/echo")}, retry={"max_attempts": 3})
        finally:
            await http.aclose()
        assert result.error is not None
        assert "LINKFLOW_HTTP_ALLOW_PRIVATE=true" in result.error["message"]
        assert events(result, "node.retrying") == []
        assert server.requests == []

    def test_a_url_without_http_is_refused_when_the_workflow_is_compiled(
        self, engine: Engine
    ) -> None:
        with pytest.raises(Exception, match="must start with http"):
            engine.compile(document(
                [node(START, "manual"), node(NODE, "http_request", {"url": "file:///etc/passwd"})],
                [edge(START, NODE)],
            ))  # fmt: skip


class TestResponses:
    async def test_a_json_object_is_the_item(self, engine: Engine, server: TestServer) -> None:
        result = await run(engine, {"url": server.url("/echo")})
        assert set(received(result)) == {"method", "query", "headers", "body"}

    async def test_a_json_array_is_one_item_per_element(
        self, engine: Engine, server: TestServer
    ) -> None:
        """Elements that are not objects become {"value": element}."""
        result = await run(engine, {"url": server.url("/list")})
        assert result.output_of(NODE) == [{"id": 1}, {"id": 2}, {"value": 3}]

    async def test_text_is_under_body(self, engine: Engine, server: TestServer) -> None:
        result = await run(engine, {"url": server.url("/text")})
        assert result.output_of(NODE) == [{"body": "plain words"}]

    async def test_full_response_has_status_headers_and_body(
        self, engine: Engine, server: TestServer
    ) -> None:
        result = await run(engine, {"url": server.url("/list"), "full_response": True})
        [item] = result.output_of(NODE)
        assert item["status"] == 200
        assert item["headers"]["content-type"] == "application/json"
        assert item["body"] == [{"id": 1}, {"id": 2}, 3]

    async def test_forced_formats(self, engine: Engine, server: TestServer) -> None:
        """`text` keeps JSON as text; `json` fails on what does not parse."""
        as_text = await run(engine, {"url": server.url("/list"), "response_format": "text"})
        assert as_text.output_of(NODE) == [{"body": '[{"id": 1}, {"id": 2}, 3]'}]
        bad = await run(engine, {"url": server.url("/not-json"), "response_format": "json"})
        assert bad.error is not None
        assert "the response is not JSON: '<html>'" in bad.error["message"]

    async def test_a_binary_response_lands_in_the_blob_store(
        self, engine: Engine, server: TestServer, blobs: FilesystemBlobStore
    ) -> None:
        """Auto-detected (not UTF-8): the item carries the ref, the store holds the bytes."""
        result = await run(engine, {"url": server.url("/png")})
        assert result.output_of(NODE) == [{}]
        ref = binary_of(result)
        assert (ref.mime_type, ref.file_name, ref.size) == ("image/png", "pic.png", len(PNG))
        assert await blobs.get(ref) == PNG

    async def test_binary_can_be_forced(
        self, engine: Engine, server: TestServer, blobs: FilesystemBlobStore
    ) -> None:
        result = await run(engine, {"url": server.url("/text"), "response_format": "binary"})
        assert await blobs.get(binary_of(result)) == b"plain words"


def _pages(request: Recorded) -> Reply:
    page = int(request.query.get("page", ["1"])[0])
    headers = {"Link": f'</pages?page={page + 1}>; rel="next"'} if page < 5 else {}
    return Reply(200, json.dumps([{"page": page}]), headers, "application/json")


def _cursor(request: Recorded) -> Reply:
    cursor = request.query.get("cursor", ["0"])[0]
    following = {"0": "c1", "1": "c2"}.get(cursor[-1])
    return Reply.json({"data": cursor, "meta": {"next": following}})


class TestPagination:
    async def test_next_link_from_the_link_header(self, engine: Engine, server: TestServer) -> None:
        """Pages are requested until there is no next link; items are concatenated."""
        server.routes["/pages"] = _pages
        result = await run(
            engine, {"url": server.url("/pages"), "pagination": {"mode": "next_link"}}
        )
        assert result.output_of(NODE) == [{"page": n} for n in range(1, 6)]

    async def test_max_pages_stops_early(self, engine: Engine, server: TestServer) -> None:
        server.routes["/pages"] = _pages
        result = await run(engine, {
            "url": server.url("/pages"), "pagination": {"mode": "next_link", "max_pages": 2},
        })  # fmt: skip
        assert result.output_of(NODE) == [{"page": 1}, {"page": 2}]
        assert len(server.hits("/pages")) == 2

    def test_max_pages_is_capped_at_1000(self, engine: Engine) -> None:
        with pytest.raises(Exception, match="1000"):
            engine.compile(document([node(START, "manual"), node(NODE, "http_request", {
                "url": "https://example.com", "pagination": {"mode": "next_link",
                                                             "max_pages": 5000},
            })], [edge(START, NODE)]))  # fmt: skip

    async def test_cursor_pagination(self, engine: Engine, server: TestServer) -> None:
        """The cursor at `cursor_path` is sent as `param` until there is none."""
        server.routes["/cursor"] = _cursor
        result = await run(engine, {
            "url": server.url("/cursor"), "query": {"limit": 2},
            "pagination": {"mode": "cursor", "cursor_path": "meta.next", "param": "cursor"},
        })  # fmt: skip
        assert [item["data"] for item in result.output_of(NODE)] == ["0", "c1", "c2"]
        assert [hit.query.get("limit") for hit in server.hits("/cursor")] == [["2"]] * 3

    async def test_credentials_do_not_follow_a_next_link_to_another_site(
        self, engine: Engine, server: TestServer
    ) -> None:
        """A next link elsewhere fails the item instead of sending the token there."""

        def elsewhere(_: Recorded) -> Reply:
            link = server.url("/echo", host="localhost")
            return Reply.json([{"page": 1}], Link=f'<{link}>; rel="next"')

        server.routes["/away"] = elsewhere
        result = await run(
            engine,
            {"url": server.url("/away"), "auth": "auth", "pagination": {"mode": "next_link"}},
            credentials={"auth": "bearer"},
        )
        assert result.error is not None
        assert "credentials are only sent to the site they were used for" in result.error["message"]
        assert server.hits("/echo") == []

    async def test_next_url_expression_on_the_response(
        self, engine: Engine, server: TestServer
    ) -> None:
        """`next_url` is evaluated with `response` bound to each page."""

        def linked(request: Recorded) -> Reply:
            page = int(request.query.get("page", ["1"])[0])
            following = f"/linked?page={page + 1}" if page < 3 else None
            return Reply.json({"page": page, "links": {"next": following}})

        server.routes["/linked"] = linked
        result = await run(engine, {
            "url": server.url("/linked"),
            "pagination": {"mode": "next_link", "next_url": "{{ response.body.links.next }}"},
        })  # fmt: skip
        assert [item["page"] for item in result.output_of(NODE)] == [1, 2, 3]


class TestIdempotency:
    async def test_the_key_is_stable_across_an_engine_retry(
        self, engine: Engine, server: TestServer
    ) -> None:
        """`<execution>:<node>:<run>:<item>`, the same on the retry of the same run."""
        answers = [Reply(503, "down"), Reply.json({"ok": True})]
        server.routes["/once"] = lambda _: answers.pop(0)
        result = await run(
            engine, {"url": server.url("/once"), "idempotency_header": "Idempotency-Key"},
            retry={"max_attempts": 2},
        )  # fmt: skip
        assert result.status == "completed", result.error
        keys = [hit.headers["idempotency-key"] for hit in server.hits("/once")]
        assert keys == [f"{EXECUTION_ID}:{NODE}:0:0"] * 2

    async def test_items_and_pages_get_their_own_keys(
        self, engine: Engine, server: TestServer
    ) -> None:
        """Two items never share a key; later pages add their number."""
        server.routes["/pages"] = _pages
        await run(
            engine,
            {"url": server.url("/pages"), "idempotency_header": "Idempotency-Key",
             "pagination": {"mode": "next_link", "max_pages": 2}},
            [{}, {}],
        )  # fmt: skip
        keys = [hit.headers["idempotency-key"] for hit in server.hits("/pages")]
        base = f"{EXECUTION_ID}:{NODE}:0"
        assert keys == [f"{base}:0", f"{base}:0:2", f"{base}:1", f"{base}:1:2"]


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("header", "seconds"),
        [("1", 1.0), ("0", 0.0), ("2.5", 2.5), ("-3", 0.0), ("soon", None), ("", None),
         (None, None), ("Wed, 15 Jan 2026 10:31:00 GMT", 60.0),
         ("Wed, 15 Jan 2026 10:29:00 GMT", 0.0)],
    )  # fmt: skip
    def test_parsing(self, header: str | None, seconds: float | None) -> None:
        """Delay-seconds or an HTTP-date (relative to the run's time); junk is ignored."""
        assert retry_after_s(header, CLOCK_START) == seconds
