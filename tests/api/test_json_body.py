"""JSON bodies of every API route: values that cannot be stored exactly are a 422 naming where.

Regression tests of issue 13: a lone surrogate (``"\\ud800"``) in credential
data, node parameters, workflow settings or schedule input answered 500, and
``Infinity``, ``NaN`` or ``1e400`` in an input were silently stored as null.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.routing import APIRoute

from linkflow.api import create_app
from linkflow.api.json_body import JSONRoute
from linkflow.api.routes.no_plane import PLANE_PREFIXES
from tests.api._plane import PlaneApi, assert_problem, manual_doc, plane_api
from tests.api._support import Account

__all__ = ["plane_api"]  # the fixture, imported for pytest

JSON = {"Content-Type": "application/json"}
HOURLY = {
    "name": "Hourly",
    "nodes": [
        {"id": "tick", "type": "schedule", "parameters": {"interval_s": 3600}},
        {"id": "mark", "type": "set", "parameters": {"fields": {"done": True}}},
    ],
    "connections": [{"from": "tick", "to": "mark"}],
}
NON_FINITE = ("Infinity", "-Infinity", "NaN", "1e400", "-1e400")


def with_surrogate(template: str) -> str:
    """`template` with ``SURROGATE`` replaced by the JSON escape of a lone surrogate."""
    return template.replace("SURROGATE", "\\ud800")


async def post(plane: PlaneApi, account: Account, path: str, body: str, method: str = "POST"):
    return await plane.client.request(
        method, path, content=body.encode(), headers={**account.headers, **JSON}
    )


class TestLoneSurrogates:
    async def test_in_credential_data_is_422_invalid_unicode_naming_the_field(
        self, plane_api: PlaneApi
    ):
        """A surrogate in a credential's data: 422 `invalid_unicode` at `body.data.token`."""
        me = await plane_api.user()
        body = with_surrogate('{"name": "x", "type": "bearer", "data": {"token": "SURROGATE"}}')
        refused = await post(plane_api, me, "/api/v1/credentials", body)
        problem = assert_problem(refused, 422, "invalid_unicode")
        assert [e["field"] for e in problem["errors"]] == ["body.data.token"]
        listed = await plane_api.client.get("/api/v1/credentials", headers=me.headers)
        assert listed.json()["data"] == []

    async def test_in_node_parameters_and_settings_is_422_naming_the_field(
        self, plane_api: PlaneApi
    ):
        """In a set node's field, a workflow setting, or a key: 422 naming each path."""
        me = await plane_api.user()
        params = with_surrogate(
            '{"name": "w", "nodes": [{"id": "start", "type": "manual"}, {"id": "s", '
            '"type": "set", "parameters": {"fields": {"x": "aSURROGATE"}}}], "connections": []}'
        )
        settings = with_surrogate(
            '{"name": "w", "nodes": [{"id": "start", "type": "manual"}], '
            '"settings": {"note": "SURROGATE"}}'
        )
        key = with_surrogate(
            '{"name": "w", "nodes": [{"id": "start", "type": "manual"}], '
            '"settings": {"SURROGATE": 1}}'
        )
        expected = {
            params: "body.nodes.1.parameters.fields.x",
            settings: "body.settings.note",
            key: "body.settings.\\ud800",
        }
        for body, field in expected.items():
            for path in ("/api/v1/workflows", "/api/v1/workflows/import"):
                problem = assert_problem(await post(plane_api, me, path, body), 422,
                                         "invalid_unicode")  # fmt: skip
                assert [e["field"] for e in problem["errors"]] == [field]
        flow = await plane_api.workflow(me, manual_doc())
        updated = await post(plane_api, me, f"/api/v1/workflows/{flow['id']}", params, "PUT")
        assert_problem(updated, 422, "invalid_unicode")

    async def test_in_schedule_and_execution_input_is_422(self, plane_api: PlaneApi):
        """Schedule input (create and update) and execute input refuse a surrogate."""
        me = await plane_api.user()
        timed = await plane_api.workflow(me, HOURLY)
        body = with_surrogate(
            f'{{"workflow_id": "{timed["id"]}", "node_id": "tick", "interval_s": 60, '
            '"input": {"who": "SURROGATE"}}'
        )
        problem = assert_problem(await post(plane_api, me, "/api/v1/schedules", body), 422,
                                 "invalid_unicode")  # fmt: skip
        assert [e["field"] for e in problem["errors"]] == ["body.input.who"]
        flow = await plane_api.workflow(me, manual_doc())
        execute = f"/api/v1/workflows/{flow['id']}/execute"
        refused = await post(plane_api, me, execute, with_surrogate('{"input": ["SURROGATE"]}'))
        assert_problem(refused, 422, "invalid_unicode")

    async def test_raw_surrogate_bytes_are_refused_too(self, plane_api: PlaneApi):
        """The surrogate's UTF-8-like bytes, unescaped, are not UTF-8: 422 `invalid_unicode`."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        body = '{"input": {"x": "\ud800"}}'.encode("utf-8", "surrogatepass")
        refused = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", content=body,
            headers={**me.headers, **JSON},
        )  # fmt: skip
        assert_problem(refused, 422, "invalid_unicode")

    async def test_a_surrogate_pair_and_an_escaped_backslash_go_through(self, plane_api: PlaneApi):
        """A valid pair (an emoji) and a literal backslash-u text are stored exactly."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        body = '{"input": {"emoji": "\\ud83d\\ude00", "text": "\\\\ud800"}}'
        accepted = await post(plane_api, me, f"/api/v1/workflows/{flow['id']}/execute", body)
        assert accepted.status_code == 202, accepted.text
        done = await plane_api.execution(me, accepted.json()["id"])
        assert done["input"] == {"emoji": "\U0001f600", "text": "\\ud800"}


class TestNonFiniteNumbers:
    @pytest.mark.parametrize("number", NON_FINITE)
    async def test_in_execution_input_is_422_number_not_finite(
        self, plane_api: PlaneApi, number: str
    ):
        """`Infinity`, `NaN`, `1e400`... in an input: 422 naming the field, nothing queued."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        body = '{"input": {"n": [1, ' + number + "]}}"
        refused = await post(plane_api, me, f"/api/v1/workflows/{flow['id']}/execute", body)
        problem = assert_problem(refused, 422, "number_not_finite")
        assert [e["field"] for e in problem["errors"]] == ["body.input.n.1"]
        listed = await plane_api.client.get("/api/v1/executions", headers=me.headers)
        assert listed.json()["data"] == []

    async def test_in_documents_credentials_and_variables_is_422(self, plane_api: PlaneApi):
        """Every route reads bodies the same way: a document, credential data, a variable."""
        me = await plane_api.user()
        requests: list[tuple[str, str]] = [
            ("/api/v1/workflows", '{"name": "w", "nodes": [{"id": "start", "type": "manual"}, '
             '{"id": "s", "type": "set", "parameters": {"fields": {"x": 1e400}}}]}'),
            ("/api/v1/credentials", '{"name": "c", "type": "bearer", "data": {"token": NaN}}'),
            ("/api/v1/variables", '{"key": "k", "value": Infinity}'),
        ]  # fmt: skip
        for path, body in requests:
            assert_problem(await post(plane_api, me, path, body), 422, "number_not_finite")

    async def test_large_finite_numbers_are_kept(self, plane_api: PlaneApi):
        """The largest doubles and tiny ones (which underflow to 0) are still accepted."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        body = '{"input": {"big": 1.7976931348623157e308, "tiny": 1e-400}}'
        accepted = await post(plane_api, me, f"/api/v1/workflows/{flow['id']}/execute", body)
        assert accepted.status_code == 202, accepted.text
        done = await plane_api.execution(me, accepted.json()["id"])
        assert done["input"] == {"big": 1.7976931348623157e308, "tiny": 0.0}


class TestContentType:
    """Regression (issue 14, item 6): a body sent without `Content-Type: application/json`
    was answered 422 "Input should be a valid dictionary"."""

    @pytest.mark.parametrize(
        "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/xml", None]
    )
    async def test_a_body_that_is_not_declared_json_is_415_saying_what_to_send(
        self, plane_api: PlaneApi, content_type: str | None
    ):
        """Every JSON route (here POST /workflows and /variables): 415 with the hint, for a
        type that is not JSON or none at all (FastAPI does not read that as JSON)."""
        me = await plane_api.user()
        headers = {**me.headers, **({"Content-Type": content_type} if content_type else {})}
        body = orjson.dumps(manual_doc())
        refused = await plane_api.client.post("/api/v1/workflows", content=body, headers=headers)
        problem = assert_problem(refused, 415, "unsupported_media_type")
        assert "Content-Type: application/json" in problem["detail"], problem
        variable = await plane_api.client.post(
            "/api/v1/variables", content=b'{"key": "k", "value": 1}', headers=headers
        )
        assert_problem(variable, 415, "unsupported_media_type")
        listed = await plane_api.client.get("/api/v1/workflows", headers=me.headers)
        assert listed.json()["data"] == []

    @pytest.mark.parametrize(
        "content_type",
        ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"],
    )
    async def test_json_under_any_json_type_is_read(self, plane_api: PlaneApi, content_type: str):
        """`application/json` with parameters, and `application/*+json`, are JSON."""
        me = await plane_api.user()
        headers = {**me.headers, "Content-Type": content_type}
        body = orjson.dumps(manual_doc())
        created = await plane_api.client.post("/api/v1/workflows", content=body, headers=headers)
        assert created.status_code == 201, created.text

    async def test_an_empty_body_with_any_type_stays_accepted(self, plane_api: PlaneApi):
        """`curl -X POST -H 'Content-Type: text/plain' .../execute` sends nothing: no 415."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        headers = {**me.headers, "Content-Type": "text/plain"}
        url = f"/api/v1/workflows/{flow['id']}/execute"
        accepted = await plane_api.client.post(url, headers=headers)
        assert accepted.status_code == 202, accepted.text


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """The API routes of `routes`, those of included routers too (FastAPI keeps an included
    router as one node holding the original router)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


# Routes that read their body as bytes, because a signature covers those exact bytes;
# they parse it with orjson, which refuses what `JSONRoute` refuses.
SIGNED_BODIES = {"/api/v1/billing/webhook"}


async def test_every_api_route_reads_its_body_through_json_route(plane_api: PlaneApi) -> None:
    """A router added without `JSONRoute` would read bodies unchecked; none is (but the
    body-less 503 catch-alls of an API-only process, and signed bodies)."""
    for plane in (plane_api.runtime.plane, None):
        app = create_app(plane_api.container, plane=plane)
        routes = list(api_routes(app.routes))
        assert len(routes) > 20
        unchecked = [
            route.path for route in routes
            if not isinstance(route, JSONRoute) and not route.path.startswith(PLANE_PREFIXES)
            and route.path not in SIGNED_BODIES
        ]  # fmt: skip
        assert unchecked == []
