"""`/api/v1/workflows`: create and validate, list, versions, delete, clone, activation and its
webhook URLs, import/export without secrets, and who may write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api._plane import PlaneApi, assert_problem, manual_doc, plane_api, webhook_doc
from tests.api._support import api_key, join, team

__all__ = ["plane_api"]  # the fixture, imported for pytest

WORKFLOWS = "/api/v1/workflows"


def http_doc(credential_id: str) -> dict[str, Any]:
    """A manual trigger and an HTTP request node whose `auth` slot holds a credential id."""
    return {
        "name": "Calls an API",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "call", "type": "http_request",
             "parameters": {"url": "https://api.example.com/things"},
             "credentials": {"auth": credential_id}},
        ],
        "connections": [{"from": "start", "to": "call"}],
    }  # fmt: skip


async def credential(plane: PlaneApi, headers: dict[str, str], name: str, token: str) -> str:
    response = await plane.client.post(
        "/api/v1/credentials",
        json={"name": name, "type": "bearer", "data": {"token": token}},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    credential_id: str = response.json()["id"]
    return credential_id


class TestCreate:
    async def test_create_answers_201_with_version_1_and_status_draft(self, plane_api: PlaneApi):
        """A valid document becomes a draft workflow at version 1, tags and all."""
        me = await plane_api.user()
        doc = {**manual_doc("First"), "tags": ["ops"], "description": "says done"}
        response = await plane_api.client.post(WORKFLOWS, json=doc, headers=me.headers)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["version"], body["status"], body["name"]) == (1, "draft", "First")
        assert body["nodes"] == doc["nodes"]
        assert body["connections"] == doc["connections"]
        assert (body["tags"], body["description"], body["webhooks"]) == (["ops"], "says done", [])
        assert body["activated_at"] is None

    async def test_an_invalid_document_is_422_with_field_problems_naming_the_nodes(
        self, plane_api: PlaneApi
    ):
        """Engine problems come back as problem+json, each field path naming its node id."""
        me = await plane_api.user()
        doc = {
            "name": "Broken",
            "nodes": [
                {"id": "start", "type": "manual"},
                {"id": "ghost", "type": "no_such_type"},
                {"id": "shape", "type": "set", "parameters": {"fields": 3}},
            ],
            "connections": [{"from": "start", "to": "shape"}],
        }
        response = await plane_api.client.post(WORKFLOWS, json=doc, headers=me.headers)
        body = assert_problem(response, 422, "invalid_workflow")
        fields = {error["field"] for error in body["errors"]}
        assert "body.nodes.ghost.type" in fields
        assert any(f.startswith("body.nodes.shape.parameters") for f in fields), fields
        assert all(error["message"] and error["type"] for error in body["errors"])
        listed = await plane_api.client.get(WORKFLOWS, headers=me.headers)
        assert listed.json()["data"] == []

    async def test_a_document_without_nodes_is_a_422_validation_error(self, plane_api: PlaneApi):
        """Missing `nodes` and an empty node list are both refused with a field problem."""
        me = await plane_api.user()
        missing = await plane_api.client.post(WORKFLOWS, json={"name": "x"}, headers=me.headers)
        body = assert_problem(missing, 422, "validation_error")
        assert [e["field"] for e in body["errors"]] == ["body.nodes"]
        empty = await plane_api.client.post(
            WORKFLOWS, json={"name": "x", "nodes": []}, headers=me.headers
        )
        assert_problem(empty, 422, "invalid_workflow")

    async def test_a_viewer_cannot_create_a_workflow(self, plane_api: PlaneApi):
        """A viewer of the workspace may list its workflows but creating one is 403."""
        owner, viewer = await plane_api.user(), await plane_api.user()
        workspace = await team(plane_api.client, owner)
        await join(plane_api.client, owner, viewer, workspace, "viewer")
        headers = viewer.in_workspace(workspace)
        refused = await plane_api.client.post(WORKFLOWS, json=manual_doc(), headers=headers)
        assert_problem(refused, 403, "insufficient_role")
        assert (await plane_api.client.get(WORKFLOWS, headers=headers)).status_code == 200

    async def test_an_api_key_without_workflows_write_cannot_create(self, plane_api: PlaneApi):
        """A `workflows:read` key is 403 insufficient_scope; a `workflows:write` key creates."""
        me = await plane_api.user()
        reader = (await api_key(plane_api.client, me, ["workflows:read"]))["key"]
        writer = (await api_key(plane_api.client, me, ["workflows:write"]))["key"]
        refused = await plane_api.client.post(
            WORKFLOWS, json=manual_doc(), headers={"Authorization": f"Bearer {reader}"}
        )
        assert_problem(refused, 403, "insufficient_scope")
        created = await plane_api.client.post(
            WORKFLOWS, json=manual_doc(), headers={"Authorization": f"Bearer {writer}"}
        )
        assert created.status_code == 201, created.text

    async def test_create_without_a_token_is_401(self, plane_api: PlaneApi):
        """No bearer token, no workflow."""
        response = await plane_api.client.post(WORKFLOWS, json=manual_doc())
        assert_problem(response, 401, "authentication_required")


class TestList:
    async def test_list_filters_by_status_tag_and_search(self, plane_api: PlaneApi):
        """status, tag and a case-insensitive search in the name each narrow the list."""
        me = await plane_api.user()
        alpha = await plane_api.workflow(me, {**manual_doc("Alpha report"), "tags": ["finance"]})
        beta = await plane_api.workflow(me, {**manual_doc("beta sync"), "tags": ["ops"]})
        gamma = await plane_api.workflow(me, webhook_doc("Gamma 100% hook"), activate=True)

        async def names(**params: str) -> set[str]:
            response = await plane_api.client.get(WORKFLOWS, params=params, headers=me.headers)
            assert response.status_code == 200, response.text
            return {w["name"] for w in response.json()["data"]}

        assert await names() == {alpha["name"], beta["name"], gamma["name"]}
        assert await names(status="active") == {gamma["name"]}
        assert await names(status="draft") == {alpha["name"], beta["name"]}
        assert await names(tag="finance") == {alpha["name"]}
        assert await names(tag="nope") == set()
        assert await names(search="ALPHA") == {alpha["name"]}
        assert await names(search="100%") == {gamma["name"]}
        assert await names(search="%") == {gamma["name"]}
        assert await names(search="_") == set()

    async def test_the_tag_filter_applies_before_paging(self, plane_api: PlaneApi):
        """Regression: the tag was applied to a fetched page, so page 1 could come back
        empty with a next_cursor while an older workflow had the tag."""
        me = await plane_api.user()
        tagged = await plane_api.workflow(me, {**manual_doc("Old tagged"), "tags": ["rare"]})
        for name in ("Newer one", "Newer two"):
            await plane_api.workflow(me, manual_doc(name))
        response = await plane_api.client.get(
            WORKFLOWS, params={"tag": "rare", "limit": "1"}, headers=me.headers
        )
        assert response.status_code == 200, response.text
        assert [w["id"] for w in response.json()["data"]] == [tagged["id"]]
        assert response.json()["next_cursor"] is None

    async def test_an_unknown_status_filter_is_422(self, plane_api: PlaneApi):
        """`status` must be a workflow status."""
        me = await plane_api.user()
        response = await plane_api.client.get(
            WORKFLOWS, params={"status": "sleeping"}, headers=me.headers
        )
        assert_problem(response, 422, "validation_error")

    async def test_list_pages_with_a_cursor_newest_first(self, plane_api: PlaneApi):
        """limit=2 over three workflows: two, then one with no next cursor; nothing twice."""
        me = await plane_api.user()
        made = [(await plane_api.workflow(me, manual_doc(f"W{i}")))["id"] for i in range(3)]
        first = (
            await plane_api.client.get(WORKFLOWS, params={"limit": 2}, headers=me.headers)
        ).json()
        assert len(first["data"]) == 2
        assert first["next_cursor"]
        second = (
            await plane_api.client.get(
                WORKFLOWS, params={"limit": 2, "cursor": first["next_cursor"]}, headers=me.headers
            )
        ).json()
        assert len(second["data"]) == 1
        assert second["next_cursor"] is None
        assert [w["id"] for w in first["data"] + second["data"]] == made[::-1]

    async def test_a_bad_cursor_or_limit_is_4xx(self, plane_api: PlaneApi):
        """A garbage cursor and an out-of-range limit are refused, never a 500."""
        me = await plane_api.user()
        bad_cursor = await plane_api.client.get(
            WORKFLOWS, params={"cursor": "not-a-cursor"}, headers=me.headers
        )
        assert 400 <= bad_cursor.status_code < 500, bad_cursor.text
        bad_limit = await plane_api.client.get(WORKFLOWS, params={"limit": 0}, headers=me.headers)
        assert_problem(bad_limit, 422, "validation_error")


class TestReadUpdateDelete:
    async def test_get_returns_the_workflow_and_an_unknown_id_is_404(self, plane_api: PlaneApi):
        """GET by id gives what create gave; a random id is 404 workflow_not_found."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, manual_doc())
        got = await plane_api.client.get(f"{WORKFLOWS}/{created['id']}", headers=me.headers)
        assert got.json() == created
        missing = await plane_api.client.get(
            f"{WORKFLOWS}/00000000-0000-4000-8000-000000000000", headers=me.headers
        )
        assert_problem(missing, 404, "workflow_not_found")
        malformed = await plane_api.client.get(f"{WORKFLOWS}/not-a-uuid", headers=me.headers)
        assert_problem(malformed, 422, "validation_error")

    async def test_changing_nodes_makes_version_2_with_its_message(self, plane_api: PlaneApi):
        """PUT with new nodes: version 2; both versions are listed (newest first) and readable."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, manual_doc())
        url = f"{WORKFLOWS}/{created['id']}"
        new_nodes = manual_doc(done="twice")["nodes"]
        updated = await plane_api.client.put(
            url, json={"nodes": new_nodes, "message": "say twice"}, headers=me.headers
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["version"] == 2
        assert updated.json()["nodes"] == new_nodes
        versions = await plane_api.listed(me, f"{url}/versions")
        assert [(v["version"], v["message"]) for v in versions] == [
            (2, "say twice"),
            (1, "created"),
        ]
        assert all(v["created_by_id"] == me.user_id for v in versions)
        first = await plane_api.client.get(f"{url}/versions/1", headers=me.headers)
        assert first.json()["nodes"] == created["nodes"]
        second = await plane_api.client.get(f"{url}/versions/2", headers=me.headers)
        assert second.json()["nodes"] == new_nodes
        missing = await plane_api.client.get(f"{url}/versions/3", headers=me.headers)
        assert_problem(missing, 404, "version_not_found")

    async def test_versions_are_a_paged_list_newest_first(self, plane_api: PlaneApi):
        """Regression (issue 14, item 13): versions were a bare array. `{data, next_cursor}`,
        newest first, `?limit=` and `?cursor=` as in every list."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, manual_doc())
        url = f"{WORKFLOWS}/{created['id']}"
        for n in range(2, 5):
            nodes = manual_doc(done=f"v{n}")["nodes"]
            changed = await plane_api.client.put(url, json={"nodes": nodes}, headers=me.headers)
            assert changed.json()["version"] == n, changed.text
        first = await plane_api.client.get(f"{url}/versions", params={"limit": 3},
                                           headers=me.headers)  # fmt: skip
        assert first.status_code == 200, first.text
        assert [v["version"] for v in first.json()["data"]] == [4, 3, 2]
        cursor = first.json()["next_cursor"]
        rest = await plane_api.client.get(f"{url}/versions", params={"limit": 3, "cursor": cursor},
                                          headers=me.headers)  # fmt: skip
        assert ([v["version"] for v in rest.json()["data"]], rest.json()["next_cursor"]) == (
            [1], None,
        )  # fmt: skip
        refused = await plane_api.client.get(f"{url}/versions", params={"cursor": "x"},
                                             headers=me.headers)  # fmt: skip
        assert_problem(refused, 422, "invalid_cursor")

    async def test_an_execution_runs_the_version_it_was_started_on(self, plane_api: PlaneApi):
        """After an update, a new run records version 2 and computes with the new nodes."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, manual_doc())
        await plane_api.client.put(
            f"{WORKFLOWS}/{created['id']}", json={"nodes": manual_doc(done="v2")["nodes"]},
            headers=me.headers,
        )  # fmt: skip
        run = await plane_api.run(me, created["id"], input={})
        assert (run["workflow_version"], run["output"]) == (2, [{"done": "v2"}])

    async def test_renaming_keeps_the_version(self, plane_api: PlaneApi):
        """PUT of name, tags and description only (or of identical nodes) makes no version."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, manual_doc())
        url = f"{WORKFLOWS}/{created['id']}"
        renamed = await plane_api.client.put(
            url, json={"name": "Renamed", "tags": ["x"], "description": "d"}, headers=me.headers
        )
        assert renamed.status_code == 200, renamed.text
        assert (renamed.json()["name"], renamed.json()["version"]) == ("Renamed", 1)
        assert renamed.json()["tags"] == ["x"]
        same = await plane_api.client.put(url, json={"nodes": created["nodes"]}, headers=me.headers)
        assert same.json()["version"] == 1
        versions = await plane_api.listed(me, f"{url}/versions")
        assert [v["version"] for v in versions] == [1]

    async def test_an_invalid_update_is_422_and_changes_nothing(self, plane_api: PlaneApi):
        """PUT of a broken document is refused with node-named problems; the workflow stays."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, manual_doc())
        url = f"{WORKFLOWS}/{created['id']}"
        broken = [{"id": "start", "type": "manual"}, {"id": "oops", "type": "no_such_type"}]
        response = await plane_api.client.put(
            url, json={"nodes": broken, "name": "Changed"}, headers=me.headers
        )
        body = assert_problem(response, 422, "invalid_workflow")
        assert any(e["field"].startswith("body.nodes.oops") for e in body["errors"])
        assert (await plane_api.client.get(url, headers=me.headers)).json() == created

    async def test_delete_answers_204_then_the_workflow_is_404(self, plane_api: PlaneApi):
        """After DELETE: GET, PUT, execute and a second DELETE are 404; the list omits it."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, manual_doc())
        url = f"{WORKFLOWS}/{created['id']}"
        deleted = await plane_api.client.delete(url, headers=me.headers)
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert_problem(await plane_api.client.get(url, headers=me.headers), 404)
        assert_problem(await plane_api.client.put(url, json={"name": "x"}, headers=me.headers), 404)
        assert_problem(
            await plane_api.client.post(f"{url}/execute", json={}, headers=me.headers), 404
        )
        assert_problem(await plane_api.client.delete(url, headers=me.headers), 404)
        listed = await plane_api.client.get(WORKFLOWS, headers=me.headers)
        assert created["id"] not in {w["id"] for w in listed.json()["data"]}

    async def test_clone_copies_the_document_as_a_new_draft(self, plane_api: PlaneApi):
        """A clone is a new draft at version 1 named "<name> (copy)" or as asked."""
        me = await plane_api.user()
        source = await plane_api.workflow(
            me, {**webhook_doc("Source"), "tags": ["t"]}, activate=True
        )
        url = f"{WORKFLOWS}/{source['id']}/clone"
        copy = await plane_api.client.post(url, json={}, headers=me.headers)
        assert copy.status_code == 201, copy.text
        body = copy.json()
        assert body["id"] != source["id"]
        assert (body["name"], body["version"], body["status"]) == ("Source (copy)", 1, "draft")
        assert (body["nodes"], body["tags"], body["webhooks"]) == (source["nodes"], ["t"], [])
        named = await plane_api.client.post(url, json={"name": "Mine"}, headers=me.headers)
        assert named.json()["name"] == "Mine"


class TestActivation:
    async def test_activating_a_workflow_without_a_trigger_is_refused(self, plane_api: PlaneApi):
        """A document with no trigger node is a valid draft but cannot be activated (422)."""
        me = await plane_api.user()
        doc = {
            "name": "No trigger",
            "nodes": [{"id": "only", "type": "set", "parameters": {"fields": {"a": 1}}}],
        }
        created = await plane_api.workflow(me, doc)
        url = f"{WORKFLOWS}/{created['id']}"
        refused = await plane_api.client.post(f"{url}/activate", headers=me.headers)
        assert_problem(refused, 422, "no_trigger")
        assert (await plane_api.client.get(url, headers=me.headers)).json()["status"] == "draft"

    async def test_activate_lists_the_webhook_urls_and_they_answer(self, plane_api: PlaneApi):
        """Activation lists `webhooks: [{node_id, method, url}]`, and the URL starts a run."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, webhook_doc(path="orders/new", method="PUT"))
        url = f"{WORKFLOWS}/{created['id']}"
        activated = await plane_api.client.post(f"{url}/activate", headers=me.headers)
        assert activated.status_code == 200, activated.text
        body = activated.json()
        assert body["status"] == "active"
        assert body["activated_at"] is not None
        (hook,) = body["webhooks"]
        assert hook["node_id"] == "hook"
        assert hook["method"] == "PUT"
        assert hook["url"].startswith("http://testserver/webhooks/")
        assert hook["url"].endswith("/orders/new")
        assert (await plane_api.client.get(url, headers=me.headers)).json()["webhooks"] == [hook]
        called = await plane_api.client.put(hook["url"], json={"n": 1})
        assert called.status_code == 202, called.text
        assert called.json()["execution_id"]

    async def test_deactivate_removes_the_webhooks_and_reactivation_restores_the_url(
        self, plane_api: PlaneApi
    ):
        """Deactivated: no URLs and the old URL is 404; activated again: the same URL works."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, webhook_doc(), activate=True)
        (hook,) = created["webhooks"]
        assert (await plane_api.client.post(hook["url"], json={})).status_code == 202
        url = f"{WORKFLOWS}/{created['id']}"
        deactivated = await plane_api.client.post(f"{url}/deactivate", headers=me.headers)
        assert deactivated.status_code == 200, deactivated.text
        assert (deactivated.json()["status"], deactivated.json()["webhooks"]) == ("inactive", [])
        gone = await plane_api.client.post(hook["url"], json={})
        assert_problem(gone, 404, "webhook_not_found")
        again = await plane_api.client.post(f"{url}/activate", headers=me.headers)
        assert again.json()["webhooks"] == [hook]
        assert (await plane_api.client.post(hook["url"], json={})).status_code == 202

    async def test_changing_an_active_workflow_re_registers_its_webhook(self, plane_api: PlaneApi):
        """PUT of a new method on an active workflow: the URL now takes GET, POST is 405."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, webhook_doc(), activate=True)
        (hook,) = created["webhooks"]
        assert (await plane_api.client.post(hook["url"], json={})).status_code == 202
        updated = await plane_api.client.put(
            f"{WORKFLOWS}/{created['id']}", json={"nodes": webhook_doc(method="GET")["nodes"]},
            headers=me.headers,
        )  # fmt: skip
        assert updated.json()["webhooks"][0]["method"] == "GET"
        assert (await plane_api.client.get(hook["url"])).status_code == 202
        assert_problem(await plane_api.client.post(hook["url"], json={}), 405)

    async def test_deleting_an_active_workflow_removes_its_webhook(self, plane_api: PlaneApi):
        """A deleted workflow's webhook URL is 404."""
        me = await plane_api.user()
        created = await plane_api.workflow(me, webhook_doc(), activate=True)
        (hook,) = created["webhooks"]
        await plane_api.client.delete(f"{WORKFLOWS}/{created['id']}", headers=me.headers)
        assert_problem(await plane_api.client.post(hook["url"], json={}), 404)


class TestImportExport:
    async def test_export_names_credentials_and_carries_no_secret(self, plane_api: PlaneApi):
        """The export holds the credential's name in place of its id, and never its secret."""
        me = await plane_api.user()
        secret = "tok-never-exported-7f3a"
        credential_id = await credential(plane_api, me.headers, "Service token", secret)
        created = await plane_api.workflow(me, {**http_doc(credential_id), "tags": ["io"]})
        response = await plane_api.client.get(
            f"{WORKFLOWS}/{created['id']}/export", headers=me.headers
        )
        assert response.status_code == 200, response.text
        exported = response.json()
        assert secret not in response.text
        assert credential_id not in response.text
        assert created["id"] not in response.text
        call = next(n for n in exported["nodes"] if n["id"] == "call")
        assert call["credentials"] == {"auth": "Service token"}
        assert (exported["name"], exported["tags"]) == ("Calls an API", ["io"])
        assert exported["connections"] == created["connections"]

    async def test_import_maps_credential_names_to_this_workspaces_ids(self, plane_api: PlaneApi):
        """Imported elsewhere, a credential name becomes that workspace's credential id."""
        me = await plane_api.user()
        there = await team(plane_api.client, me, "Elsewhere")
        here_id = await credential(plane_api, me.headers, "Service token", "tok-here")
        there_id = await credential(plane_api, me.in_workspace(there), "Service token", "tok-there")
        created = await plane_api.workflow(me, http_doc(here_id))
        exported = (
            await plane_api.client.get(f"{WORKFLOWS}/{created['id']}/export", headers=me.headers)
        ).json()
        imported = await plane_api.client.post(
            f"{WORKFLOWS}/import", json=exported, headers=me.in_workspace(there)
        )
        assert imported.status_code == 201, imported.text
        body = imported.json()
        assert (body["version"], body["status"]) == (1, "draft")
        call = next(n for n in body["nodes"] if n["id"] == "call")
        assert call["credentials"] == {"auth": there_id}
        back_home = await plane_api.client.post(
            f"{WORKFLOWS}/import", json=exported, headers=me.headers
        )
        home_call = next(n for n in back_home.json()["nodes"] if n["id"] == "call")
        assert home_call["credentials"] == {"auth": here_id}

    async def test_importing_an_invalid_document_is_422(self, plane_api: PlaneApi):
        """Import validates like create."""
        me = await plane_api.user()
        doc = {"name": "Bad", "nodes": [{"id": "x", "type": "no_such_type"}]}
        response = await plane_api.client.post(f"{WORKFLOWS}/import", json=doc, headers=me.headers)
        body = assert_problem(response, 422, "invalid_workflow")
        assert body["errors"][0]["field"] == "body.nodes.x.type"


def schedule_doc(cron: str, greeting: str = "hi") -> dict[str, Any]:
    return {
        "name": "Nightly",
        "nodes": [
            {"id": "tick", "type": "schedule", "parameters": {"cron": cron}},
            {"id": "say", "type": "set", "parameters": {"fields": {"greeting": greeting}}},
        ],
        "connections": [{"from": "tick", "to": "say"}],
    }


class TestSchedulesAcrossEdits:
    async def test_a_paused_schedule_stays_paused_and_follows_its_nodes_new_cron(
        self, plane_api: PlaneApi
    ):
        """Editing another node keeps the schedule as it is (paused, same id); changing the
        trigger's own cron in the document changes the schedule's, still paused."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, schedule_doc("0 9 * * *"), activate=True)
        listed = await plane_api.client.get(
            "/api/v1/schedules", params={"workflow_id": flow["id"]}, headers=me.headers
        )
        (schedule,) = listed.json()["data"]
        paused = await plane_api.client.post(
            f"/api/v1/schedules/{schedule['id']}/pause", headers=me.headers
        )
        assert paused.status_code == 200, paused.text

        async def edit(doc: dict[str, Any]) -> dict[str, Any]:
            response = await plane_api.client.put(
                f"/api/v1/workflows/{flow['id']}", json=doc, headers=me.headers
            )
            assert response.status_code == 200, response.text
            after = await plane_api.client.get(
                "/api/v1/schedules", params={"workflow_id": flow["id"]}, headers=me.headers
            )
            (only,) = after.json()["data"]
            return dict(only)

        kept = await edit(schedule_doc("0 9 * * *", greeting="hello"))
        assert (kept["id"], kept["status"], kept["cron"]) == (schedule["id"], "paused", "0 9 * * *")
        moved = await edit(schedule_doc("30 7 * * *", greeting="hello"))
        assert (moved["id"], moved["status"], moved["cron"]) == (schedule["id"], "paused",
                                                                 "30 7 * * *")  # fmt: skip
        assert moved["next_run_at"] is None

    async def test_an_activated_schedule_shows_when_it_fires_first(self, plane_api: PlaneApi):
        """Regression (issue 14, item 13): an active schedule showed `next_run_at: null` until
        it first fired. Activation stores its first fire time; an edit of its cron moves it."""
        me = await plane_api.user()
        before = datetime.now(UTC)
        flow = await plane_api.workflow(me, schedule_doc("0 9 * * *"), activate=True)

        async def only_schedule() -> dict[str, Any]:
            listed = await plane_api.client.get(
                "/api/v1/schedules", params={"workflow_id": flow["id"]}, headers=me.headers
            )
            (schedule,) = listed.json()["data"]
            return dict(schedule)

        first = await only_schedule()
        fires = datetime.fromisoformat(first["next_run_at"])
        assert (fires.hour, fires.minute, fires.second) == (9, 0, 0)
        assert before < fires <= before + timedelta(days=1)
        changed = await plane_api.client.put(
            f"/api/v1/workflows/{flow['id']}", json=schedule_doc("30 7 * * *"), headers=me.headers
        )
        assert changed.status_code == 200, changed.text
        moved = datetime.fromisoformat((await only_schedule())["next_run_at"])
        assert (moved.hour, moved.minute) == (7, 30)
