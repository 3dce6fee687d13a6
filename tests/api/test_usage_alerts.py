"""Usage alerts on `linkflow serve`'s app (SQLite and PostgreSQL): when a workspace's
executions reach 80 % and 100 % of its monthly limit, its owners get one e-mail each,
once per threshold and period, through the worker and a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests._smtp import Inbox, smtp_sink
from tests.api._plane import PlaneApi, manual_doc, running_plane
from tests.api._support import api_settings, eventually, make_admin


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
async def api(
    db_url: str, tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]
) -> AsyncIterator[PlaneApi]:
    data_dir: Path = tmp_path_factory.mktemp("alerts")
    settings = api_settings(data_dir, db_url, default_plan="free", smtp_host="127.0.0.1",
                            smtp_port=inbox[1], smtp_security="none")  # fmt: skip
    async with running_plane(settings) as running:
        yield running


async def _count_and_alert(api: PlaneApi) -> int:
    """What the scheduler does every five minutes; how many alerts it queued."""
    alerts = api.runtime.scheduler.usage_alerts
    assert alerts is not None
    return await alerts()


async def test_owners_hear_at_80_and_100_percent_once_each(
    api: PlaneApi, inbox: tuple[Inbox, int]
) -> None:
    messages, _ = inbox
    admin = await api.user()
    await make_admin(api.container, admin.user_id)
    owner = await api.user()
    raised = await api.client.put(
        f"/api/v1/admin/workspaces/{owner.workspace_id}/limits",
        json={"limits": {"executions_per_month": 5}}, headers=admin.headers,
    )  # fmt: skip
    assert raised.status_code == 200, raised.text
    workflow = await api.workflow(owner, manual_doc())

    async def mails(count: int) -> list[object] | None:
        mine = messages.to(owner.email)
        return list(mine) if len(mine) >= count else None

    for _ in range(3):
        await api.run(owner, workflow["id"])
    assert await _count_and_alert(api) == 0, "3 of 5 is under 80 %"
    await api.run(owner, workflow["id"])
    assert await _count_and_alert(api) == 1
    assert await _count_and_alert(api) == 0  # the next round, or a second scheduler
    [first] = await eventually(lambda: mails(1), what="the 80 % e-mail")
    assert "80 % of the monthly executions" in first["Subject"]
    assert "used 80 % of 5 executions" in first.get_payload().replace("\n", " ")

    await api.run(owner, workflow["id"])
    assert await _count_and_alert(api) == 1
    both = await eventually(lambda: mails(2), what="the 100 % e-mail")
    assert "100 % of the monthly executions" in both[1]["Subject"]
    assert await _count_and_alert(api) == 0
    usage = (await api.client.get("/api/v1/billing/usage", headers=owner.headers)).json()
    assert usage["executions"] == {"used": 5, "limit": 5}
    assert len(messages.to(owner.email)) == 2
