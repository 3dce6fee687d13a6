"""The notion node and credential against a loopback fake of Notion's API
(tests/_saas/notion.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.notion import NOTION_CREDENTIAL, Notion
from linkflow.nodes.sdk import NodeError, NodeResult
from linkflow.nodes.testing import FakeContext, items, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.notion import TOKEN, VERSION, FakeNotion, fake_notion, rate_limited
from tests.unit.engine._support import StepClock

DONE = {"Status": {"select": {"name": "Done"}}}


@pytest.fixture
def notion() -> Iterator[FakeNotion]:
    with fake_notion() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(notion: FakeNotion, token: str = TOKEN) -> dict[str, Any]:
    return {"type": "notion", "token": token, "base_url": f"{notion.url}/v1"}


async def run(notion: FakeNotion, http: httpx.AsyncClient, parameters: dict[str, Any],
              token: str = TOKEN) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=items({}), parameters=parameters, http=http,
                      credentials={"notion": credential(notion, token)})  # fmt: skip
    return await run_node(Notion, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


async def failure(notion: FakeNotion, http: httpx.AsyncClient, parameters: dict[str, Any],
                  token: str = TOKEN) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(notion, http, parameters, token)
    assert token not in caught.value.message
    return caught.value


class TestPages:
    async def test_create_in_a_database_with_a_title_properties_and_content(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        """POST /v1/pages with the database parent, `title` as the Name property, the other
        properties as given, and the blocks; headers carry the token and the API version."""
        text = [{"type": "text", "text": {"content": "Hi"}}]
        block = {"object": "block", "type": "paragraph", "paragraph": {"rich_text": text}}
        parameters = {"resource": "page", "operation": "create",
                      "parent_database_id": notion.tasks, "title": "Ship v2",
                      "properties": DONE, "children": [block]}  # fmt: skip
        [page] = out(await run(notion, http, parameters))
        [request] = [r for r in notion.requests if r.path == "/v1/pages"]
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["notion-version"] == VERSION
        assert body_json(request) == {
            "parent": {"database_id": notion.tasks},
            "properties": {**DONE, "Name": {"title": [{"type": "text",
                                                        "text": {"content": "Ship v2"}}]}},
            "children": [block],
        }  # fmt: skip
        assert page["object"] == "page"
        assert page["properties"]["Status"]["select"]["name"] == "Done"
        assert notion.pages[page["id"]]["children"] == [block]

    async def test_create_under_a_page_uses_the_title_property(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        parameters = {"resource": "page", "operation": "create", "parent_page_id": notion.home,
                      "title": "Notes"}  # fmt: skip
        [page] = out(await run(notion, http, parameters))
        assert body_json(notion.requests[0])["properties"] == {
            "title": {"title": [{"type": "text", "text": {"content": "Notes"}}]}}  # fmt: skip
        assert page["parent"] == {"type": "page_id", "page_id": notion.home}

    async def test_get_and_update_a_page(self, notion: FakeNotion, http: httpx.AsyncClient) -> None:
        task = notion.add_task("Write docs", "Doing")
        one = {"resource": "page", "page_id": task["id"]}
        [got] = out(await run(notion, http, {**one, "operation": "get"}))
        assert got["id"] == task["id"]
        update = {**one, "operation": "update", "properties": DONE, "archived": True}
        [updated] = out(await run(notion, http, update))
        patch = next(r for r in notion.requests if r.method == "PATCH")
        assert patch.path == f"/v1/pages/{task['id']}"
        assert body_json(patch) == {"properties": DONE, "archived": True}
        assert updated["archived"] is True
        assert updated["properties"]["Status"]["select"]["name"] == "Done"

    async def test_notions_code_and_message_are_in_the_error(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        parameters = {"resource": "page", "operation": "create",
                      "parent_database_id": notion.tasks, "properties": {"Owner": {}}}  # fmt: skip
        invalid = await failure(notion, http, parameters)
        assert invalid.message == (
            "notion page create: refused (HTTP 400: Owner is not a property that exists. "
            "(validation_error))"
        )
        gone = "00000000-0000-0000-0000-0000000000ff"
        missing = await failure(notion, http, {"resource": "page", "operation": "get",
                                               "page_id": gone})  # fmt: skip
        assert missing.message.startswith(
            f"notion page get: not found (HTTP 404: Could not find page with ID: {gone}."
        )
        assert missing.message.endswith("(object_not_found))")

    def test_a_page_needs_exactly_one_parent_when_the_workflow_is_saved(self) -> None:
        assert Notion().check({"resource": "page", "operation": "create"}) == [
            "page create needs one of parent_database_id and parent_page_id"]  # fmt: skip
        assert Notion().check({"resource": "database", "operation": "query"}) == [
            "database_id is required for database query"]  # fmt: skip


class TestDatabaseQuery:
    async def test_query_follows_the_cursor_while_has_more_up_to_the_limit(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        """180 matching pages, limit 150: page_size 100, then 50 from next_cursor."""
        for number in range(200):
            notion.add_task(f"task {number}", "Done" if number < 180 else "Doing")
        where = {"property": "Status", "select": {"equals": "Done"}}
        sorts = [{"property": "Name", "direction": "ascending"}]
        parameters = {"resource": "database", "operation": "query", "database_id": notion.tasks,
                      "filter": where, "sorts": sorts, "limit": 150}  # fmt: skip
        pages = out(await run(notion, http, parameters))
        first, second = [body_json(r) for r in notion.requests]
        assert first == {"filter": where, "sorts": sorts, "page_size": 100}
        assert second == {"filter": where, "sorts": sorts, "page_size": 50,
                          "start_cursor": pages[100]["id"]}  # fmt: skip
        assert len(pages) == 150
        assert {p["properties"]["Status"]["select"]["name"] for p in pages} == {"Done"}

    async def test_return_all_stops_when_has_more_is_false(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        for number in range(120):
            notion.add_task(f"task {number}", "Done")
        parameters = {"resource": "database", "operation": "query", "database_id": notion.tasks,
                      "return_all": True}  # fmt: skip
        assert len(out(await run(notion, http, parameters))) == 120
        assert len(notion.requests) == 2


class TestFailures:
    async def test_a_wrong_token_is_refused(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        get = {"resource": "page", "operation": "get", "page_id": notion.home}
        error = await failure(notion, http, get, token="ntn_wrong")
        assert error.message == (
            "notion page get: the credential was refused (HTTP 401: API token is invalid. "
            "(unauthorized))"
        )

    async def test_a_429_is_retryable_after_retry_after(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        notion.fail_next(rate_limited(2))
        error = await failure(notion, http, {"resource": "page", "operation": "get",
                                             "page_id": notion.home})  # fmt: skip
        assert error.message == "notion page get: rate limited (HTTP 429); retry after 2 s"
        assert (error.retryable, error.retry_after_s) == (True, 2.0)

    async def test_a_503_a_malformed_answer_and_a_timeout(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        get = {"resource": "page", "operation": "get", "page_id": notion.home}
        notion.fail_next(Reply.json({"object": "error", "status": 503,
                                     "code": "service_unavailable",
                                     "message": "Notion is unavailable."}, 503))  # fmt: skip
        down = await failure(notion, http, get)
        assert (down.message, down.retryable) == (
            "notion page get: the service failed (HTTP 503: Notion is unavailable. "
            "(service_unavailable))", True)  # fmt: skip
        notion.fail_next(Reply(200, "[not json", content_type="application/json"))
        assert (await failure(notion, http, get)).message == (
            "notion page get: the answer is not JSON (HTTP 200): [not json"
        )
        notion.fail_next(HANG)
        slow = await failure(notion, http, {**get, "timeout_s": 0.2})
        assert (slow.message, slow.retryable) == ("notion page get: timed out after 0.2 s", True)

    async def test_the_engine_retries_after_retry_after_then_creates_the_page(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        notion.fail_next(rate_limited(4))
        clock = StepClock()
        parameters = {"resource": "page", "operation": "create",
                      "parent_database_id": notion.tasks, "title": "Retried"}  # fmt: skip
        result = await run_in_engine(
            http, "notion", parameters, clock=clock, retry={"max_attempts": 2, "backoff_s": 60},
            credentials={"notion": {"type": "notion", "data": credential(notion)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [4.0]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [4.0]
        assert len([r for r in notion.requests if r.path == "/v1/pages"]) == 2
        title = result.output_of(NODE)[0]["properties"]["Name"]["title"]
        assert title[0]["text"]["content"] == "Retried"


class TestCredential:
    async def test_the_check_reads_the_bot_user(
        self, notion: FakeNotion, http: httpx.AsyncClient
    ) -> None:
        assert NOTION_CREDENTIAL.check is not None
        said = await NOTION_CREDENTIAL.check(Checking(http), credential(notion))
        assert said == "authenticated as LinkFlow"
        with pytest.raises(NodeError, match=r"^notion user get: the credential was refused"):
            await NOTION_CREDENTIAL.check(Checking(http), credential(notion, "ntn_nope"))
