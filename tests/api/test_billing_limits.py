"""Plan limits on the control plane, through the API on SQLite and PostgreSQL: active
workflows at activation, team members at invitation, each refused exactly at its boundary
with problem+json `plan_limit`, also when twenty requests race for the last slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api._plane import PlaneApi, assert_problem, running_plane, webhook_doc
from tests.api._support import Account, api_settings, make_admin, new_email, team

WORKFLOWS = "/api/v1/workflows"
RACERS = 20


@pytest.fixture(scope="module")
async def free_api(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PlaneApi]:
    """`linkflow serve`'s app where a workspace without a subscription is on `free`."""
    data_dir: Path = tmp_path_factory.mktemp("free")
    async with running_plane(api_settings(data_dir, db_url, default_plan="free")) as api:
        yield api


async def _drafts(api: PlaneApi, account: Account, count: int) -> list[str]:
    ids = []
    for n in range(count):
        doc = webhook_doc(f"hook {n}", path=f"p{n}", method="POST")
        ids.append((await api.workflow(account, doc))["id"])
    return ids


async def _activate(api: PlaneApi, account: Account, workflow_id: str) -> Any:
    return await api.client.post(f"{WORKFLOWS}/{workflow_id}/activate", headers=account.headers)


class TestPlans:
    async def test_the_four_plans_are_listed_with_limits_and_features(self, free_api: PlaneApi):
        account = await free_api.user()
        response = await free_api.client.get("/api/v1/billing/plans", headers=account.headers)
        assert response.status_code == 200, response.text
        plans = {plan["code"]: plan for plan in response.json()["data"]}
        assert list(plans) == ["free", "pro", "business", "enterprise"]
        assert plans["free"]["limits"] == {
            "executions_per_month": 1000,
            "active_workflows": 5,
            "team_members": 1,
            "max_concurrent_executions": 2,
            "retention_days": 7,
        }
        assert set(plans["enterprise"]["limits"].values()) == {None}
        assert plans["enterprise"]["price_cents"] is None
        assert "webhooks" in plans["free"]["features"]

    async def test_plans_need_a_caller(self, free_api: PlaneApi):
        assert_problem(await free_api.client.get("/api/v1/billing/plans"), 401)


class TestActiveWorkflows:
    async def test_the_fifth_activation_passes_and_the_sixth_is_plan_limit(
        self, free_api: PlaneApi
    ):
        account = await free_api.user()
        ids = await _drafts(free_api, account, 6)
        for workflow_id in ids[:5]:
            assert (await _activate(free_api, account, workflow_id)).status_code == 200
        body = assert_problem(await _activate(free_api, account, ids[5]), 403, "plan_limit")
        assert (body["limit"], body["value"], body["usage"]) == ("active_workflows", 5, 5)
        again = await _activate(free_api, account, ids[0])
        assert again.status_code == 200, "activating an active workflow takes no new slot"
        assert (
            await free_api.client.post(f"{WORKFLOWS}/{ids[0]}/deactivate", headers=account.headers)
        ).status_code == 200
        assert (await _activate(free_api, account, ids[5])).status_code == 200

    async def test_twenty_activations_racing_for_the_last_slot_let_exactly_one_pass(
        self, free_api: PlaneApi
    ):
        account = await free_api.user()
        ids = await _drafts(free_api, account, 4 + RACERS)
        for workflow_id in ids[:4]:
            assert (await _activate(free_api, account, workflow_id)).status_code == 200
        answers = await asyncio.gather(*(_activate(free_api, account, i) for i in ids[4:]))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] + [403] * (RACERS - 1), [a.text for a in answers]
        for answer in answers:
            if answer.status_code == 403:
                assert answer.json()["code"] == "plan_limit"
        listed = await free_api.listed(account, WORKFLOWS, status="active")
        assert len(listed) == 5

    async def test_usage_shows_the_active_workflows_beside_the_limit(self, free_api: PlaneApi):
        account = await free_api.user()
        [workflow_id] = await _drafts(free_api, account, 1)
        await _activate(free_api, account, workflow_id)
        response = await free_api.client.get("/api/v1/billing/usage", headers=account.headers)
        assert response.status_code == 200, response.text
        usage = response.json()
        assert usage["plan"] == "free"
        assert usage["active_workflows"] == {"used": 1, "limit": 5}
        assert usage["team_members"] == {"used": 1, "limit": 1}
        assert usage["executions"]["limit"] == 1000


class TestTeamMembers:
    async def _invite(self, api: PlaneApi, owner: Account, workspace_id: str) -> Any:
        return await api.client.post(
            f"/api/v1/workspaces/{workspace_id}/members",
            json={"email": new_email("invitee")},
            headers=owner.headers,
        )

    async def test_free_allows_the_owner_alone(self, free_api: PlaneApi):
        owner = await free_api.user()
        workspace_id = await team(free_api.client, owner)
        body = assert_problem(await self._invite(free_api, owner, workspace_id), 403, "plan_limit")
        assert (body["limit"], body["value"], body["usage"]) == ("team_members", 1, 1)

    async def test_twenty_invitations_racing_for_the_last_seat_let_exactly_one_pass(
        self, free_api: PlaneApi
    ):
        """An admin's override gives the workspace three seats; the owner and one
        invitation take two, and of twenty concurrent invitations one gets the third."""
        admin = await free_api.user()
        await make_admin(free_api.container, admin.user_id)
        owner = await free_api.user()
        workspace_id = await team(free_api.client, owner)
        raised = await free_api.client.put(
            f"/api/v1/admin/workspaces/{workspace_id}/limits",
            json={"limits": {"team_members": 3}},
            headers=admin.headers,
        )
        assert raised.status_code == 200, raised.text
        assert raised.json()["limits"]["team_members"] == 3
        assert (await self._invite(free_api, owner, workspace_id)).status_code == 201
        answers = await asyncio.gather(
            *(self._invite(free_api, owner, workspace_id) for _ in range(RACERS))
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201] + [403] * (RACERS - 1), [a.text for a in answers]
        members = await free_api.listed(owner, f"/api/v1/workspaces/{workspace_id}/members")
        assert len(members) == 3
