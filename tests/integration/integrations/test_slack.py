"""The slack node and credential against a loopback fake of Slack's Web API
(tests/_saas/slack.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.slack import SLACK_CREDENTIAL, Slack
from linkflow.nodes.sdk import NodeError, NodeResult, OnError
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.slack import BOT_USER, TOKEN, FakeSlack, fake_slack, rate_limited
from tests.unit.engine._support import StepClock


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with fake_slack() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(slack: FakeSlack, token: str = TOKEN) -> dict[str, Any]:
    return {"type": "slack", "token": token, "base_url": f"{slack.url}/api"}


async def run(
    slack: FakeSlack, http: httpx.AsyncClient, parameters: dict[str, Any], *jsons: dict[str, Any],
    token: str = TOKEN, on_error: OnError = OnError.STOP,
) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=items(*(jsons or ({},))), parameters=parameters,
                      credentials={"slack": credential(slack, token)}, http=http,
                      on_error=on_error)  # fmt: skip
    return await run_node(Slack, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


async def failure(slack: FakeSlack, http: httpx.AsyncClient, parameters: dict[str, Any],
                  **kwargs: Any) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(slack, http, parameters, **kwargs)
    return caught.value


POST = {"resource": "message", "operation": "post", "channel": "#general", "text": "Deployed"}


class TestMessages:
    async def test_post_sends_json_with_the_bearer_token_per_item(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        """chat.postMessage once per item, with the item's text; each item comes out as
        Slack's answer (channel id, ts, message) without `ok`."""
        text = per_item(lambda item, _: f"v{item.json['v']}" if item else None)
        parameters = {**POST, "text": text, "thread_ts": "1690000000.000001",
                      "extra": {"unfurl_links": False}}  # fmt: skip
        result = await run(slack, http, parameters, {"v": 1}, {"v": 2})
        sent = slack.calls("chat.postMessage")
        assert [r.method for r in sent] == ["POST", "POST"]
        assert sent[0].headers["authorization"] == f"Bearer {TOKEN}"
        assert sent[0].headers["content-type"] == "application/json; charset=utf-8"
        assert body_json(sent[0]) == {"channel": "#general", "text": "v1", "unfurl_links": False,
                                      "thread_ts": "1690000000.000001"}  # fmt: skip
        general = slack.channels[0]["id"]
        first, second = out(result)
        assert set(first) == {"channel", "ts", "message"}
        assert first["channel"] == general
        assert first["message"]["text"] == "v1"
        assert first["message"]["user"] == BOT_USER
        assert second["message"]["text"] == "v2"
        assert first["ts"] != second["ts"]
        assert (general, second["ts"]) in slack.messages

    async def test_blocks_alone_are_a_message(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Deployed*"}}]
        parameters = {"resource": "message", "operation": "post", "channel": "#random",
                      "blocks": blocks}  # fmt: skip
        [posted] = out(await run(slack, http, parameters))
        assert body_json(slack.calls("chat.postMessage")[0])["blocks"] == blocks
        assert posted["message"]["blocks"] == blocks

    async def test_update_then_delete_a_posted_message(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        """chat.update changes the text of `ts` in `channel`; chat.delete removes it."""
        [posted] = out(await run(slack, http, POST))
        where = {"channel": posted["channel"], "ts": posted["ts"]}
        update = {"resource": "message", "operation": "update", **where, "text": "Rolled back"}
        [updated] = out(await run(slack, http, update))
        assert body_json(slack.calls("chat.update")[0]) == {**where, "text": "Rolled back"}
        assert updated["text"] == "Rolled back"
        assert slack.messages[(posted["channel"], posted["ts"])]["text"] == "Rolled back"
        [deleted] = out(await run(slack, http, {"resource": "message", "operation": "delete",
                                                **where}))  # fmt: skip
        assert body_json(slack.calls("chat.delete")[0]) == where
        assert deleted == where
        assert slack.messages == {}

    async def test_slacks_error_code_fails_the_item_naming_the_operation(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        """HTTP 200 with ok=false is a failure, with Slack's code, not retryable."""
        error = await failure(slack, http, {**POST, "channel": "#nowhere"})
        assert error.message == "slack message post: Slack answered channel_not_found"
        assert error.retryable is False
        missing = await failure(slack, http, {"resource": "message", "operation": "delete",
                                              "channel": "C1", "ts": "1.2"})  # fmt: skip
        assert missing.message == "slack message delete: Slack answered message_not_found"

    async def test_failed_items_go_to_the_error_output_and_the_others_carry_on(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        parameters = {**POST, "channel": per_item(lambda item, _: item.json["to"] if item
                                                  else None)}  # fmt: skip
        result = await run(slack, http, parameters, {"to": "#general"}, {"to": "#gone"},
                           on_error=OnError.OUTPUT)  # fmt: skip
        assert len(result.outputs["main"]) == 1
        [failed] = result.outputs["error"]
        assert failed.json["error"]["message"].endswith("channel_not_found")

    def test_required_parameters_are_named_when_the_workflow_is_saved(self) -> None:
        node = Slack()
        assert node.check({"resource": "message", "operation": "update", "text": "x"}) == [
            "channel is required for message update",
            "ts is required for message update",
        ]
        assert node.check({"resource": "message", "operation": "post", "channel": "C1"}) == [
            "one of text and blocks is required to post a message"
        ]
        assert node.check({"resource": "user", "operation": "create"}) == [
            "operation 'create' is not one of user's: get, list"]  # fmt: skip


class TestChannels:
    async def test_list_follows_the_cursor_until_the_limit(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        """300 channels, limit 250: a page of 200, then one of 50 with Slack's next_cursor;
        one item per channel, in Slack's order."""
        for number in range(298):
            slack.add_channel(f"c{number:03d}")
        parameters = {"resource": "channel", "operation": "list", "limit": 250,
                      "types": "public_channel,private_channel"}  # fmt: skip
        channels = out(await run(slack, http, parameters))
        first, second = slack.calls("conversations.list")
        assert first.method == "GET"
        assert first.query == {"types": ["public_channel,private_channel"],
                               "exclude_archived": ["true"], "limit": ["200"]}  # fmt: skip
        assert second.query["limit"] == ["50"]
        assert second.query["cursor"] == slack.cursors[:1]
        assert [c["name"] for c in channels[:3]] == ["general", "random", "c000"]
        assert len(channels) == 250
        assert channels[-1]["name"] == "c247"

    async def test_return_all_reads_to_the_last_page(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        for number in range(401):
            slack.add_channel(f"c{number:03d}")
        parameters = {"resource": "channel", "operation": "list", "return_all": True}
        channels = out(await run(slack, http, parameters))
        assert len(channels) == 403
        assert len(slack.calls("conversations.list")) == 3

    async def test_create_names_a_taken_name(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        parameters = {"resource": "channel", "operation": "create", "name": "deploys",
                      "is_private": True}  # fmt: skip
        [created] = out(await run(slack, http, parameters))
        assert body_json(slack.calls("conversations.create")[0]) == {
            "name": "deploys", "is_private": True}  # fmt: skip
        assert created["name"] == "deploys"
        assert created["is_private"] is True
        assert created["id"].startswith("C")
        error = await failure(slack, http, parameters)
        assert error.message == "slack channel create: Slack answered name_taken"


class TestUsers:
    async def test_get_reads_one_user(self, slack: FakeSlack, http: httpx.AsyncClient) -> None:
        slack.add_user("U0ADA", "ada")
        [user] = out(await run(slack, http, {"resource": "user", "operation": "get",
                                             "user": "U0ADA"}))  # fmt: skip
        assert slack.calls("users.info")[0].query == {"user": ["U0ADA"]}
        assert user["name"] == "ada"
        error = await failure(slack, http, {"resource": "user", "operation": "get",
                                            "user": "U0NOBODY"})  # fmt: skip
        assert error.message == "slack user get: Slack answered user_not_found"

    async def test_list_gives_an_item_per_member(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        for number in range(3):
            slack.add_user(f"U{number}", f"user{number}")
        users = out(await run(slack, http, {"resource": "user", "operation": "list", "limit": 3}))
        assert [u["id"] for u in users] == [BOT_USER, "U0", "U1"]
        assert slack.calls("users.list")[0].query["limit"] == ["3"]


class TestFailures:
    async def test_a_wrong_token_is_refused_without_quoting_it(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        error = await failure(slack, http, POST, token="xoxb-wrong-token")
        assert error.message == "slack message post: Slack refused the token (invalid_auth)"
        assert "xoxb-wrong-token" not in error.message
        assert error.retryable is False

    async def test_a_missing_scope_names_the_scope(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        refusal = {"ok": False, "error": "missing_scope", "needed": "chat:write",
                   "provided": "channels:read"}  # fmt: skip
        slack.fail_next(Reply.json(refusal))
        error = await failure(slack, http, POST)
        assert error.message == (
            "slack message post: Slack answered missing_scope; the token needs the chat:write scope"
        )

    @pytest.mark.parametrize(
        ("status", "message", "retryable"),
        [
            (401, "slack message post: the credential was refused (HTTP 401: not_authed)", False),
            (403, "slack message post: not permitted (HTTP 403: not_allowed)", False),
            (404, "slack message post: not found (HTTP 404: unknown_method)", False),
            (500, "slack message post: the service failed (HTTP 500: internal_error)", True),
        ],
    )
    async def test_http_errors_name_the_operation_and_slacks_code(
        self, slack: FakeSlack, http: httpx.AsyncClient, status: int, message: str,
        retryable: bool,
    ) -> None:  # fmt: skip
        code = message.rsplit(": ", 1)[1].rstrip(")")
        slack.fail_next(Reply.json({"ok": False, "error": code}, status))
        error = await failure(slack, http, POST)
        assert (error.message, error.retryable) == (message, retryable)

    async def test_a_429_is_retryable_after_slacks_retry_after(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        slack.fail_next(rate_limited(7))
        error = await failure(slack, http, POST)
        assert error.message == "slack message post: rate limited (HTTP 429); retry after 7 s"
        assert (error.retryable, error.retry_after_s) == (True, 7.0)

    async def test_a_malformed_answer_is_an_error(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        slack.fail_next(Reply(200, "<html>upstream hiccup</html>", content_type="text/html"))
        error = await failure(slack, http, POST)
        assert error.message == (
            "slack message post: the answer is not JSON (HTTP 200): <html>upstream hiccup</html>"
        )

    async def test_a_timeout_is_retryable(self, slack: FakeSlack, http: httpx.AsyncClient) -> None:
        slack.fail_next(HANG)
        error = await failure(slack, http, {**POST, "timeout_s": 0.2})
        assert error.message == "slack message post: timed out after 0.2 s"
        assert error.retryable is True

    async def test_the_engine_retries_a_429_after_retry_after_then_posts(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        """The node never sleeps: the engine waits Slack's 3 s (its clock records it) and the
        second attempt reaches Slack and posts."""
        slack.fail_next(rate_limited(3))
        clock = StepClock()
        result = await run_in_engine(
            http, "slack", POST, clock=clock, retry={"max_attempts": 3, "backoff_s": 60},
            credentials={"slack": {"type": "slack", "data": credential(slack)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [3.0]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [3.0]
        assert len(slack.calls("chat.postMessage")) == 2
        assert result.output_of(NODE)[0]["message"]["text"] == "Deployed"


class TestCredential:
    async def test_the_check_calls_auth_test(
        self, slack: FakeSlack, http: httpx.AsyncClient
    ) -> None:
        assert SLACK_CREDENTIAL.check is not None
        said = await SLACK_CREDENTIAL.check(Checking(http), credential(slack))
        assert said == "authenticated as linkflow_bot in LinkFlow"
        assert slack.calls("auth.test")[0].headers["authorization"] == f"Bearer {TOKEN}"
        with pytest.raises(NodeError, match=r"^slack auth test: Slack refused the token"):
            await SLACK_CREDENTIAL.check(Checking(http), credential(slack, "xoxb-nope"))

    def test_the_token_is_secret_and_the_base_url_defaults_to_slack(self) -> None:
        assert SLACK_CREDENTIAL.secret_fields == {"token"}
        field = SLACK_CREDENTIAL.field("base_url")
        assert field is not None
        assert field.default == "https://slack.com/api"

