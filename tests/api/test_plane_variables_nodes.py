"""`/api/v1/variables` (workspace variables, read by expressions as `vars`) and
`/api/v1/nodes` (the node catalogue)."""

from __future__ import annotations

from typing import Any

from linkflow.nodes.builtin.http_request import HttpRequest
from tests.api._plane import PlaneApi, assert_problem, manual_doc, plane_api
from tests.api._support import api_key, join, team

__all__ = ["plane_api"]  # the fixture, imported for pytest

VARIABLES = "/api/v1/variables"
NODES = "/api/v1/nodes"


class TestVariables:
    async def test_create_list_get_update_and_delete(self, plane_api: PlaneApi):
        """The whole life of a variable, each step answering the contract's status."""
        me = await plane_api.user()
        created = await plane_api.client.post(
            VARIABLES, json={"key": "api_base", "value": "https://a.example"}, headers=me.headers
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["key"], body["value"]) == ("api_base", "https://a.example")
        url = f"{VARIABLES}/{body['id']}"
        listed = (await plane_api.client.get(VARIABLES, headers=me.headers)).json()
        assert [v["id"] for v in listed["data"]] == [body["id"]]
        assert listed["next_cursor"] is None
        assert (await plane_api.client.get(url, headers=me.headers)).json() == body
        updated = await plane_api.client.put(
            url, json={"key": "api_root", "value": "https://b.example"}, headers=me.headers
        )
        assert updated.status_code == 200, updated.text
        assert (updated.json()["key"], updated.json()["value"]) == ("api_root", "https://b.example")
        deleted = await plane_api.client.delete(url, headers=me.headers)
        assert deleted.status_code == 204
        assert_problem(
            await plane_api.client.get(url, headers=me.headers), 404, "variable_not_found"
        )
        assert_problem(await plane_api.client.delete(url, headers=me.headers), 404)

    async def test_a_duplicate_key_is_409(self, plane_api: PlaneApi):
        """Creating a second `region`, or renaming another variable to it: 409 variable_exists."""
        me = await plane_api.user()
        first = await plane_api.client.post(
            VARIABLES, json={"key": "region", "value": "eu"}, headers=me.headers
        )
        again = await plane_api.client.post(
            VARIABLES, json={"key": "region", "value": "us"}, headers=me.headers
        )
        assert_problem(again, 409, "variable_exists")
        other = await plane_api.client.post(
            VARIABLES, json={"key": "zone", "value": "a"}, headers=me.headers
        )
        renamed = await plane_api.client.put(
            f"{VARIABLES}/{other.json()['id']}", json={"key": "region", "value": "a"},
            headers=me.headers,
        )  # fmt: skip
        assert_problem(renamed, 409, "variable_exists")
        same_key = await plane_api.client.put(
            f"{VARIABLES}/{first.json()['id']}", json={"key": "region", "value": "ap"},
            headers=me.headers,
        )  # fmt: skip
        assert same_key.status_code == 200, same_key.text

    async def test_the_same_key_in_two_workspaces_is_fine(self, plane_api: PlaneApi):
        """Keys are unique per workspace, not per instance."""
        me, other = await plane_api.user(), await plane_api.user()
        for account in (me, other):
            response = await plane_api.client.post(
                VARIABLES, json={"key": "shared", "value": "x"}, headers=account.headers
            )
            assert response.status_code == 201, response.text

    async def test_a_key_that_is_not_an_identifier_is_422(self, plane_api: PlaneApi):
        """`1abc`, `with-dash`, `a b` and an empty key are refused with a `body.key` problem."""
        me = await plane_api.user()
        for key in ("1abc", "with-dash", "a b", "", "x" * 129):
            response = await plane_api.client.post(
                VARIABLES, json={"key": key, "value": "v"}, headers=me.headers
            )
            body = assert_problem(response, 422)
            assert [e["field"] for e in body["errors"]] == ["body.key"], key
        missing = await plane_api.client.post(VARIABLES, json={"key": "ok"}, headers=me.headers)
        assert_problem(missing, 422, "validation_error")

    async def test_a_viewer_reads_but_cannot_write(self, plane_api: PlaneApi):
        """A viewer lists and reads variables; create, update and delete are 403."""
        owner, viewer = await plane_api.user(), await plane_api.user()
        workspace = await team(plane_api.client, owner)
        await join(plane_api.client, owner, viewer, workspace, "viewer")
        created = await plane_api.client.post(
            VARIABLES, json={"key": "k", "value": "v"}, headers=owner.in_workspace(workspace)
        )
        url = f"{VARIABLES}/{created.json()['id']}"
        headers = viewer.in_workspace(workspace)
        assert (await plane_api.client.get(VARIABLES, headers=headers)).status_code == 200
        assert (await plane_api.client.get(url, headers=headers)).status_code == 200
        for method, path, body in (
            ("POST", VARIABLES, {"key": "new", "value": "v"}),
            ("PUT", url, {"key": "k", "value": "changed"}),
            ("DELETE", url, None),
        ):
            response = await plane_api.client.request(method, path, json=body, headers=headers)
            assert_problem(response, 403, "insufficient_role")
        still = await plane_api.client.get(url, headers=owner.in_workspace(workspace))
        assert still.json()["value"] == "v"

    async def test_variables_need_a_token(self, plane_api: PlaneApi):
        """No bearer token: 401."""
        assert_problem(await plane_api.client.get(VARIABLES), 401)

    async def test_an_expression_sees_the_variable_and_its_changes(self, plane_api: PlaneApi):
        """`{{ vars.greeting }}` is the variable's value, and the next run sees an update."""
        me = await plane_api.user()
        created = await plane_api.client.post(
            VARIABLES, json={"key": "greeting", "value": "hello"}, headers=me.headers
        )
        flow = await plane_api.workflow(me, manual_doc(said="{{ vars.greeting }}"))
        first = await plane_api.run(me, flow["id"], input={})
        assert (first["status"], first["output"]) == ("completed", [{"said": "hello"}])
        await plane_api.client.put(
            f"{VARIABLES}/{created.json()['id']}", json={"key": "greeting", "value": "bye"},
            headers=me.headers,
        )  # fmt: skip
        second = await plane_api.run(me, flow["id"], input={})
        assert second["output"] == [{"said": "bye"}]

    async def test_an_expression_sees_only_its_own_workspaces_variables(self, plane_api: PlaneApi):
        """Another workspace's variable of the same key is not what `vars.secret_word` reads."""
        me, other = await plane_api.user(), await plane_api.user()
        for account, value in ((me, "mine"), (other, "theirs")):
            await plane_api.client.post(
                VARIABLES, json={"key": "secret_word", "value": value}, headers=account.headers
            )
        flow = await plane_api.workflow(me, manual_doc(word="{{ vars.secret_word }}"))
        done = await plane_api.run(me, flow["id"], input={})
        assert done["output"] == [{"word": "mine"}]


class TestNodeCatalogue:
    async def test_every_node_type_is_listed_with_its_schema_outputs_and_slots(
        self, plane_api: PlaneApi
    ):
        """Every registered type with its schema, outputs and slots (http_request: `auth`)."""
        me = await plane_api.user()
        response = await plane_api.client.get(NODES, headers=me.headers)
        assert response.status_code == 200, response.text
        catalogue: dict[str, dict[str, Any]] = {n["type"]: n for n in response.json()}
        registered = {node.type for node in plane_api.runtime.engine.registry}
        assert set(catalogue) == registered
        assert len(catalogue) == len(response.json())
        for node in catalogue.values():
            assert node["parameters_schema"]["type"] == "object", node["type"]
            assert isinstance(node["outputs"], list), node["type"]
            # switch's outputs are its rules' names, so it declares none of its own
            assert node["outputs"] or node["type"] == "switch", node["type"]
            assert isinstance(node["credential_slots"], dict), node["type"]
            assert node["display_name"], node["type"]
            assert node["group"], node["type"]
        http = catalogue["http_request"]
        assert set(http["credential_slots"]["auth"]) == set(HttpRequest.credential_slots["auth"])
        assert "bearer" in http["credential_slots"]["auth"]
        assert "url" in http["parameters_schema"]["properties"]
        assert catalogue["webhook"]["inputs"] == 0
        assert catalogue["if"]["outputs"] == ["true", "false"]
        assert {"webhook", "manual", "set", "wait", "respond_to_webhook"} <= set(catalogue)

    async def test_the_catalogue_needs_a_token(self, plane_api: PlaneApi):
        """Without a token: 401; with an API key of any scope: 200."""
        assert_problem(await plane_api.client.get(NODES), 401, "authentication_required")
        bad = await plane_api.client.get(NODES, headers={"Authorization": "Bearer nonsense"})
        assert_problem(bad, 401)
        me = await plane_api.user()
        key = (await api_key(plane_api.client, me, ["executions:read"]))["key"]
        keyed = await plane_api.client.get(NODES, headers={"Authorization": f"Bearer {key}"})
        assert keyed.status_code == 200, keyed.text
