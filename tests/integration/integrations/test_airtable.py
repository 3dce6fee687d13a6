"""The airtable node and credential against a loopback fake of Airtable's Web API
(tests/_saas/airtable.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.airtable import AIRTABLE_CREDENTIAL, Airtable
from linkflow.nodes.sdk import NodeError, NodeResult
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.airtable import BASE, RATE_LIMITED, TOKEN, FakeAirtable, fake_airtable
from tests.unit.engine._support import StepClock

TABLE = {"base_id": BASE, "table": "Tasks"}
PATH = f"/v0/{BASE}/Tasks"


@pytest.fixture
def airtable() -> Iterator[FakeAirtable]:
    with fake_airtable() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(airtable: FakeAirtable, token: str = TOKEN) -> dict[str, Any]:
    return {"type": "airtable", "token": token, "base_url": f"{airtable.url}/v0"}


async def run(
    airtable: FakeAirtable, http: httpx.AsyncClient, parameters: dict[str, Any],
    *jsons: dict[str, Any], token: str = TOKEN,
) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=items(*(jsons or ({},))), parameters=parameters, http=http,
                      credentials={"airtable": credential(airtable, token)})  # fmt: skip
    return await run_node(Airtable, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


async def failure(airtable: FakeAirtable, http: httpx.AsyncClient, parameters: dict[str, Any],
                  token: str = TOKEN) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(airtable, http, parameters, token=token)
    assert token not in caught.value.message
    return caught.value


class TestWrites:
    async def test_create_one_record_per_item(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        fields = per_item(lambda item, _: {"Name": item.json["name"], "Status": "Todo"}
                          if item else None)  # fmt: skip
        created = out(await run(airtable, http, {"operation": "create", **TABLE,
                                                 "fields": fields},
                                {"name": "Write docs"}, {"name": "Ship"}))  # fmt: skip
        first, second = [r for r in airtable.requests if r.method == "POST"]
        assert first.path == PATH
        assert first.headers["authorization"] == f"Bearer {TOKEN}"
        assert body_json(first) == {"fields": {"Name": "Write docs", "Status": "Todo"}}
        assert body_json(second)["fields"]["Name"] == "Ship"
        assert [r["fields"]["Name"] for r in created] == ["Write docs", "Ship"]
        assert {r["id"] for r in created} == set(airtable.records)

    async def test_typecast_lets_airtable_add_a_select_option(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        parameters = {"operation": "create", **TABLE, "fields": {"Status": "Blocked"}}
        refused = await failure(airtable, http, parameters)
        assert refused.message == (
            "airtable record create: refused (HTTP 422: INVALID_MULTIPLE_CHOICE_OPTIONS: "
            'Insufficient permissions to create new select option ""Blocked"")'
        )
        await run(airtable, http, {**parameters, "typecast": True})
        assert body_json(airtable.requests[-1]) == {"fields": {"Status": "Blocked"},
                                                    "typecast": True}  # fmt: skip
        assert "Blocked" in airtable.statuses

    async def test_update_keeps_the_other_fields_and_delete_removes_the_record(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        record = airtable.add(Name="Write docs", Status="Todo", Points=3)
        one = {**TABLE, "record_id": record["id"]}
        [updated] = out(await run(airtable, http, {"operation": "update", **one,
                                                   "fields": {"Status": "Done"}}))  # fmt: skip
        patch = airtable.requests[-1]
        assert (patch.method, patch.path) == ("PATCH", f"{PATH}/{record['id']}")
        assert updated["fields"] == {"Name": "Write docs", "Status": "Done", "Points": 3}
        [deleted] = out(await run(airtable, http, {"operation": "delete", **one}))
        assert airtable.requests[-1].method == "DELETE"
        assert deleted == {"id": record["id"], "deleted": True}
        assert airtable.records == {}
        gone = await failure(airtable, http, {"operation": "delete", **one})
        assert gone.message == "airtable record delete: not found (HTTP 404: NOT_FOUND)"

    async def test_an_unknown_field_and_a_missing_table_are_named(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        unknown = await failure(airtable, http, {"operation": "create", **TABLE,
                                                 "fields": {"Owner": "ada"}})  # fmt: skip
        assert unknown.message == (
            "airtable record create: refused (HTTP 422: UNKNOWN_FIELD_NAME: Unknown field name: "
            '"Owner")'
        )
        missing = await failure(airtable, http, {"operation": "list", "base_id": BASE,
                                                 "table": "Nope"})  # fmt: skip
        assert missing.message.startswith(
            "airtable record list: not permitted (HTTP 403: INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
        )

    def test_required_parameters_are_named_when_the_workflow_is_saved(self) -> None:
        assert Airtable().check({"operation": "update", **TABLE}) == [
            "record_id is required for update",
            "fields is required for update",
        ]
        assert Airtable().check({"operation": "search", **TABLE}) == [
            "filter_by_formula is required for search"]  # fmt: skip


class TestReads:
    async def test_list_follows_the_offset_up_to_the_limit(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        """250 records, limit 130: maxRecords=130, pages of 100 then 30 with the offset."""
        for number in range(250):
            airtable.add(Name=f"task {number:03d}", Status="Todo")
        records = out(await run(airtable, http, {"operation": "list", **TABLE, "limit": 130}))
        first, second = airtable.requests
        assert (first.method, first.path) == ("GET", PATH)
        assert first.query == {"maxRecords": ["130"], "pageSize": ["100"]}
        assert second.query == {"maxRecords": ["130"], "pageSize": ["30"],
                                "offset": [f"itr100/{records[100]['id']}"]}  # fmt: skip
        assert len(records) == 130
        assert records[-1]["fields"]["Name"] == "task 129"

    async def test_search_with_a_formula_a_view_fields_and_a_sort(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        for name, status in [("b", "Todo"), ("a", "Todo"), ("c", "Doing"), ("d", "Todo")]:
            airtable.add(Name=name, Status=status, Points=1)
        parameters = {"operation": "search", **TABLE, "filter_by_formula": "{Status}='Todo'",
                      "view": "Open", "return_fields": ["Name", "Status"], "return_all": True,
                      "sort": [{"field": "Name", "direction": "desc"}]}  # fmt: skip
        records = out(await run(airtable, http, parameters))
        assert airtable.requests[0].query == {
            "filterByFormula": ["{Status}='Todo'"], "view": ["Open"],
            "fields[]": ["Name", "Status"], "sort[0][field]": ["Name"],
            "sort[0][direction]": ["desc"], "pageSize": ["100"]}  # fmt: skip
        assert [r["fields"] for r in records] == [
            {"Name": "d", "Status": "Todo"}, {"Name": "b", "Status": "Todo"},
            {"Name": "a", "Status": "Todo"}]  # fmt: skip

    async def test_a_bad_formula_is_airtables_error(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        error = await failure(airtable, http, {"operation": "search", **TABLE,
                                               "filter_by_formula": "Status = "})  # fmt: skip
        assert error.message == (
            "airtable record search: refused (HTTP 422: INVALID_FILTER_BY_FORMULA: "
            "The formula for filtering records is invalid)"
        )


class TestFailures:
    async def test_a_wrong_token_is_refused(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        error = await failure(airtable, http, {"operation": "list", **TABLE}, token="patWrong")
        assert error.message == (
            "airtable record list: the credential was refused "
            "(HTTP 401: AUTHENTICATION_REQUIRED: Authentication required)"
        )

    async def test_a_429_waits_the_30_seconds_airtable_asks_for(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        """Airtable sends no Retry-After; its documented 30 s is the delay."""
        airtable.fail_next(RATE_LIMITED)
        error = await failure(airtable, http, {"operation": "list", **TABLE})
        assert error.message == "airtable record list: rate limited (HTTP 429); retry after 30 s"
        assert (error.retryable, error.retry_after_s) == (True, 30.0)

    async def test_a_500_a_malformed_answer_and_a_timeout(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        listing = {"operation": "list", **TABLE}
        airtable.fail_next(Reply.json({"error": {"type": "SERVER_ERROR",
                                                 "message": "Try again."}}, 500))  # fmt: skip
        down = await failure(airtable, http, listing)
        assert (down.message, down.retryable) == (
            "airtable record list: the service failed (HTTP 500: SERVER_ERROR: Try again.)",
            True)  # fmt: skip
        airtable.fail_next(Reply(200, "<!doctype html>", content_type="text/html"))
        assert (await failure(airtable, http, listing)).message == (
            "airtable record list: the answer is not JSON (HTTP 200): <!doctype html>"
        )
        airtable.fail_next(Reply.json({"rows": []}))
        assert (await failure(airtable, http, listing)).message == (
            "airtable record list: the answer has no records list"
        )
        airtable.fail_next(HANG)
        slow = await failure(airtable, http, {**listing, "timeout_s": 0.2})
        assert (slow.message, slow.retryable) == (
            "airtable record list: timed out after 0.2 s", True)  # fmt: skip

    async def test_the_engine_waits_30_s_after_a_429_then_creates_the_record(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        airtable.fail_next(RATE_LIMITED)
        clock = StepClock()
        result = await run_in_engine(
            http, "airtable", {"operation": "create", **TABLE, "fields": {"Name": "Retried"}},
            clock=clock, retry={"max_attempts": 2, "backoff_s": 1},
            credentials={"airtable": {"type": "airtable", "data": credential(airtable)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [30.0]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [30.0]
        assert len([r for r in airtable.requests if r.method == "POST"]) == 2
        assert result.output_of(NODE)[0]["fields"] == {"Name": "Retried"}


class TestCredential:
    async def test_the_check_asks_whoami(
        self, airtable: FakeAirtable, http: httpx.AsyncClient
    ) -> None:
        assert AIRTABLE_CREDENTIAL.check is not None
        said = await AIRTABLE_CREDENTIAL.check(Checking(http), credential(airtable))
        assert said == "authenticated as ada@example.com"
        assert airtable.requests[0].path == "/v0/meta/whoami"
        with pytest.raises(NodeError, match=r"^airtable whoami: the credential was refused"):
            await AIRTABLE_CREDENTIAL.check(Checking(http), credential(airtable, "patNope"))
