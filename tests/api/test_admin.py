"""`/api/v1/admin` on `linkflow serve`'s app (SQLite and PostgreSQL): every endpoint refused
to anyone but an instance admin; statistics, users (search, suspend, reactivate: a
suspended user's sessions and keys stop at once), workspaces (plan, usage, overrides),
executions across workspaces, and the queue's dead letters retried and discarded once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from linkflow.queue import Job, JobType
from tests.api._plane import PlaneApi, assert_problem, manual_doc, plane_api
from tests.api._support import Account, api_key, eventually, make_admin

__all__ = ["plane_api"]

ADMIN = "/api/v1/admin"
SOME_ID = str(uuid.uuid4())
ENDPOINTS = [
    ("GET", "/stats"),
    ("GET", "/users"),
    ("GET", f"/users/{SOME_ID}"),
    ("POST", f"/users/{SOME_ID}/suspend"),
    ("POST", f"/users/{SOME_ID}/reactivate"),
    ("GET", "/workspaces"),
    ("GET", f"/workspaces/{SOME_ID}"),
    ("PUT", f"/workspaces/{SOME_ID}/limits"),
    ("PUT", f"/workspaces/{SOME_ID}/plan"),
    ("GET", "/executions"),
    ("GET", "/queue"),
    ("POST", "/queue/dead-letters/1-0/retry"),
    ("DELETE", "/queue/dead-letters/1-0"),
]
BODIES: dict[str, Any] = {"/limits": {"limits": {}}, "/plan": {"plan": "pro"}}


async def _admin(api: PlaneApi) -> Account:
    account = await api.user()
    await make_admin(api.container, account.user_id)
    return account


async def _non_admin(api: PlaneApi) -> Account:
    """A user who is no admin (the first user of a database is one)."""
    from sqlalchemy import update

    from linkflow.store import User

    account = await api.user()
    async with api.container.database.transaction() as session:
        await session.execute(
            update(User).where(User.id == uuid.UUID(account.user_id)).values(is_admin=False)
        )
    return account


def _body(path: str) -> Any:
    return next((body for suffix, body in BODIES.items() if path.endswith(suffix)), None)


class TestOnlyAdmins:
    @pytest.mark.parametrize(("method", "path"), ENDPOINTS)
    async def test_every_admin_endpoint_refuses_users_keys_and_strangers(
        self, plane_api: PlaneApi, method: str, path: str
    ):
        """403 `admin_required` for a user who is no admin, and for an admin's API key
        (admin rights never ride on a key); 401 without credentials."""
        user = await _non_admin(plane_api)
        admin = await _admin(plane_api)
        key = (await api_key(plane_api.client, admin, ["admin"]))["key"]
        for headers in (user.headers, {"Authorization": f"Bearer {key}"}):
            response = await plane_api.client.request(
                method, ADMIN + path, json=_body(path), headers=headers
            )
            assert_problem(response, 403, "admin_required")
        anonymous = await plane_api.client.request(method, ADMIN + path, json=_body(path))
        assert_problem(anonymous, 401)


class TestStatsAndExecutions:
    async def test_stats_count_users_workspaces_executions_and_the_queue(self, plane_api: PlaneApi):
        admin = await _admin(plane_api)
        before = (await plane_api.client.get(f"{ADMIN}/stats", headers=admin.headers)).json()
        worker = await plane_api.user()
        workflow = await plane_api.workflow(worker, manual_doc())
        await plane_api.run(worker, workflow["id"])
        response = await plane_api.client.get(
            f"{ADMIN}/stats", params={"days": 3}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
        stats = response.json()
        assert stats["users"]["total"] == before["users"]["total"] + 1
        assert stats["workspaces"]["total"] == before["workspaces"]["total"] + 1
        assert len(stats["executions_by_day"]) == 3
        today = stats["executions_by_day"][-1]
        assert today["completed"] == before["executions_by_day"][-1]["completed"] + 1
        assert set(stats["queue"]) == {"high", "normal", "low", "delayed", "in_flight", "dead"}
        assert_problem(
            await plane_api.client.get(f"{ADMIN}/stats", params={"days": 0}, headers=admin.headers),
            422,
        )

    async def test_executions_of_every_workspace_are_listed_and_filtered(self, plane_api: PlaneApi):
        admin = await _admin(plane_api)
        ran = []
        for _ in range(2):
            account = await plane_api.user()
            workflow = await plane_api.workflow(account, manual_doc())
            ran.append((account.workspace_id, (await plane_api.run(account, workflow["id"]))))
        listed = await plane_api.listed(admin, f"{ADMIN}/executions", limit=1)
        ids = {execution["id"] for execution in listed}
        assert {execution["id"] for _, execution in ran} <= ids
        workspace_id, execution = ran[0]
        only = await plane_api.listed(
            admin, f"{ADMIN}/executions", workspace_id=workspace_id, status="completed"
        )
        assert [e["id"] for e in only] == [execution["id"]]
        assert_problem(
            await plane_api.client.get(
                f"{ADMIN}/executions", params={"status": "bogus"}, headers=admin.headers
            ),
            422,
        )


class TestUsers:
    async def test_search_finds_users_by_part_of_their_e_mail(self, plane_api: PlaneApi):
        admin = await _admin(plane_api)
        target = await plane_api.user()
        part = target.email.split("@")[0][-8:]
        found = await plane_api.listed(admin, f"{ADMIN}/users", q=part)
        assert [user["email"] for user in found] == [target.email]
        assert await plane_api.listed(admin, f"{ADMIN}/users", q="%") == []

    async def test_a_suspended_user_loses_tokens_keys_login_and_refresh_at_once(
        self, plane_api: PlaneApi
    ):
        admin = await _admin(plane_api)
        target = await plane_api.user()
        key = (await api_key(plane_api.client, target, ["workflows:read"]))["key"]
        key_headers = {"Authorization": f"Bearer {key}"}
        me, workflows = "/api/v1/users/me", "/api/v1/workflows"
        assert (await plane_api.client.get(me, headers=target.headers)).status_code == 200
        assert (await plane_api.client.get(workflows, headers=key_headers)).status_code == 200

        suspended = await plane_api.client.post(
            f"{ADMIN}/users/{target.user_id}/suspend", headers=admin.headers
        )
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["suspended_at"] is not None
        assert_problem(await plane_api.client.get(me, headers=target.headers), 401, "invalid_token")
        assert_problem(
            await plane_api.client.get(workflows, headers=key_headers), 401, "invalid_token"
        )
        login = await plane_api.client.post(
            "/api/v1/auth/login", json={"email": target.email, "password": target.password}
        )
        assert_problem(login, 403, "account_suspended")
        refresh = await plane_api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": target.refresh_token}
        )
        assert_problem(refresh, 401)
        listed = await plane_api.listed(admin, f"{ADMIN}/users", suspended="true")
        assert target.user_id in {user["id"] for user in listed}

        back = await plane_api.client.post(
            f"{ADMIN}/users/{target.user_id}/reactivate", headers=admin.headers
        )
        assert back.status_code == 200
        assert back.json()["suspended_at"] is None
        assert (await plane_api.client.get(me, headers=target.headers)).status_code == 200
        assert (await plane_api.client.get(workflows, headers=key_headers)).status_code == 200
        audit = await plane_api.listed(
            admin, "/api/v1/audit-logs", instance="true", resource_id=target.user_id
        )
        assert [entry["action"] for entry in audit][:2] == ["user.reactivated", "user.suspended"]

    async def test_an_admin_cannot_suspend_themselves_or_an_unknown_user(self, plane_api: PlaneApi):
        admin = await _admin(plane_api)
        assert_problem(
            await plane_api.client.post(
                f"{ADMIN}/users/{admin.user_id}/suspend", headers=admin.headers
            ),
            409,
            "cannot_suspend_self",
        )
        assert_problem(
            await plane_api.client.post(f"{ADMIN}/users/{SOME_ID}/suspend", headers=admin.headers),
            404,
            "user_not_found",
        )


class TestWorkspaces:
    async def test_a_workspace_shows_plan_usage_and_takes_overrides_and_a_plan(
        self, plane_api: PlaneApi
    ):
        admin = await _admin(plane_api)
        owner = await plane_api.user()
        path = f"{ADMIN}/workspaces/{owner.workspace_id}"
        detail = (await plane_api.client.get(path, headers=admin.headers)).json()
        assert (detail["plan"], detail["limits"]["team_members"]) == ("enterprise", None)
        assert detail["usage"]["team_members"] == {"used": 1, "limit": None}

        assigned = await plane_api.client.put(
            f"{path}/plan", json={"plan": "pro"}, headers=admin.headers
        )
        assert assigned.status_code == 200, assigned.text
        assert (assigned.json()["plan"], assigned.json()["provider"]) == ("pro", None)
        overridden = await plane_api.client.put(
            f"{path}/limits",
            json={"limits": {"active_workflows": 2, "team_members": None}},
            headers=admin.headers,
        )
        assert overridden.status_code == 200, overridden.text
        limits = overridden.json()["limits"]
        assert (
            limits["active_workflows"],
            limits["team_members"],
            limits["executions_per_month"],
        ) == (2, None, 10_000)
        own = await plane_api.client.get("/api/v1/billing/subscription", headers=owner.headers)
        assert own.json()["plan"]["code"] == "pro"
        assert own.json()["limits"]["active_workflows"] == 2

        bad = await plane_api.client.put(
            f"{path}/limits",
            json={"limits": {"bogus": 1, "team_members": -1}},
            headers=admin.headers,
        )
        body = assert_problem(bad, 422, "invalid_limit_override")
        assert {e["field"] for e in body["errors"]} == {
            "body.limits.bogus",
            "body.limits.team_members",
        }
        assert_problem(
            await plane_api.client.put(
                f"{path}/plan", json={"plan": "gold"}, headers=admin.headers
            ),
            404,
            "plan_not_found",
        )
        assert_problem(
            await plane_api.client.get(f"{ADMIN}/workspaces/{SOME_ID}", headers=admin.headers),
            404,
            "workspace_not_found",
        )
        found = await plane_api.listed(admin, f"{ADMIN}/workspaces", q=detail["slug"])
        assert [w["id"] for w in found] == [owner.workspace_id]


class TestQueue:
    async def _dead_letter(self, plane_api: PlaneApi, admin: Account) -> dict[str, Any]:
        """A notification job whose payload no handler can read: the worker buries it."""
        job = Job(type=JobType.NOTIFICATION, payload={"unreadable": True})
        await plane_api.runtime.shared.queue.enqueue(job)

        async def buried() -> dict[str, Any] | None:
            queue = (await plane_api.client.get(f"{ADMIN}/queue", headers=admin.headers)).json()
            return next(
                (d for d in queue["dead_letters"] if d["job"] and d["job"]["id"] == job.id), None
            )

        return await eventually(buried, what="the job among the dead letters")

    async def test_a_dead_letter_is_retried_once_and_another_discarded(self, plane_api: PlaneApi):
        admin = await _admin(plane_api)
        dead = await self._dead_letter(plane_api, admin)
        assert "cannot be decoded" in dead["reason"]
        retry = f"{ADMIN}/queue/dead-letters/{dead['id']}/retry"
        answers = await asyncio.gather(
            *(plane_api.client.post(retry, headers=admin.headers) for _ in range(5))
        )
        assert sorted(a.status_code for a in answers) == [200, 404, 404, 404, 404]
        # The retried job is run again, and buried again under a new id.
        again = await self._dead_letter_of(plane_api, admin, dead["job"]["id"], not_id=dead["id"])
        discarded = await plane_api.client.delete(
            f"{ADMIN}/queue/dead-letters/{again['id']}", headers=admin.headers
        )
        assert discarded.status_code == 200, discarded.text
        queue = (await plane_api.client.get(f"{ADMIN}/queue", headers=admin.headers)).json()
        assert again["id"] not in {d["id"] for d in queue["dead_letters"]}
        assert_problem(
            await plane_api.client.delete(
                f"{ADMIN}/queue/dead-letters/{again['id']}", headers=admin.headers
            ),
            404,
            "dead_letter_not_found",
        )

    async def _dead_letter_of(
        self, plane_api: PlaneApi, admin: Account, job_id: str, *, not_id: str
    ) -> dict[str, Any]:
        async def buried() -> dict[str, Any] | None:
            queue = (await plane_api.client.get(f"{ADMIN}/queue", headers=admin.headers)).json()
            return next(
                (
                    d
                    for d in queue["dead_letters"]
                    if d["job"] and d["job"]["id"] == job_id and d["id"] != not_id
                ),
                None,
            )

        return await eventually(buried, what="the retried job buried again")


class TestDeadWorkflowJobs:
    async def test_a_finished_executions_job_is_not_retried_but_an_unfinished_ones_is(
        self, plane_api: PlaneApi
    ):
        """On a queue of its own (no worker takes from it): the dead job of a completed
        execution stays a dead letter (409 `execution_finished`); a job of a queued one
        goes back to the queue."""
        from linkflow.queue import LocalQueue
        from linkflow.services.admin_queue import AdminQueue
        from linkflow.services.context import Actor, RequestInfo
        from linkflow.services.errors import Conflict

        admin = await _admin(plane_api)
        account = await plane_api.user()
        workflow = await plane_api.workflow(account, manual_doc())
        finished = await plane_api.run(account, workflow["id"])
        queue = LocalQueue()
        admin_queue = AdminQueue(plane_api.container.database, queue)
        principal = await plane_api.container.authenticator.authenticate(admin.access_token)
        actor = Actor(user_id=principal.user_id, api_key_id=None, request=RequestInfo())
        for execution_id in (finished["id"], str(uuid.uuid4())):
            await queue.enqueue(
                Job(type=JobType.WORKFLOW_EXECUTION, payload={"execution_id": execution_id})
            )
            await queue.dead_letter(await queue.dequeue(), "gave up")
        unknown, done = await queue.dead_letters()
        with pytest.raises(Conflict) as refused:
            await admin_queue.retry(principal, actor, done.id)
        assert refused.value.code == "execution_finished"
        assert refused.value.extra == {"execution_id": finished["id"]}
        assert [d.id for d in await queue.dead_letters()] == [unknown.id, done.id]
        retried = await admin_queue.retry(principal, actor, unknown.id)
        assert retried.job == unknown.job
        assert (await queue.depth())["normal"] == 1
        await queue.close()
