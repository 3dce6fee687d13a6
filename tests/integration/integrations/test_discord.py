"""The discord node and its two credentials against a loopback fake of Discord's HTTP API
(tests/_saas/discord.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.discord import DISCORD_BOT, DISCORD_WEBHOOK, USER_AGENT, Discord
from linkflow.nodes.sdk import NodeError, NodeResult
from linkflow.nodes.testing import FakeContext, items, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.discord import (
    BOT_TOKEN,
    CHANNEL,
    WEBHOOK_ID,
    WEBHOOK_TOKEN,
    FakeDiscord,
    fake_discord,
    rate_limited,
)
from tests.unit.engine._support import StepClock

SEND = {"operation": "send", "content": "Deployed **v2**"}


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    with fake_discord() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def webhook(discord: FakeDiscord, url: str | None = None) -> dict[str, Any]:
    return {"type": "discord_webhook", "webhook_url": url or discord.webhook_url()}


def bot(discord: FakeDiscord, token: str = BOT_TOKEN) -> dict[str, Any]:
    return {"type": "discord_bot", "token": token, "base_url": f"{discord.url}/api/v10"}


async def run(http: httpx.AsyncClient, parameters: dict[str, Any], data: dict[str, Any],
              *jsons: dict[str, Any]) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=items(*(jsons or ({},))), parameters=parameters,
                      credentials={"discord": data}, http=http)  # fmt: skip
    return await run_node(Discord, ctx)


async def failure(http: httpx.AsyncClient, parameters: dict[str, Any],
                  data: dict[str, Any]) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(http, parameters, data)
    for secret in (WEBHOOK_TOKEN, BOT_TOKEN, data.get("token"), data.get("webhook_url")):
        assert not secret or secret not in caught.value.message
    return caught.value


class TestWebhook:
    async def test_posts_to_the_webhook_and_waits_for_the_message(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        """POST with ?wait=true (Discord then returns the message), as `username`, in a
        thread; the output item is the message."""
        embeds = [{"title": "v2", "description": "all green", "color": 5763719}]
        parameters = {**SEND, "embeds": embeds, "username": "CI",
                      "thread_id": "1500000000000000001",
                      "avatar_url": "https://example.com/ci.png"}  # fmt: skip
        [item] = (await run(http, parameters, webhook(discord))).outputs["main"]
        [request] = discord.requests
        assert (request.method, request.path) == ("POST", f"/api/webhooks/{WEBHOOK_ID}/"
                                                  f"{WEBHOOK_TOKEN}")  # fmt: skip
        assert request.query == {"wait": ["true"], "thread_id": ["1500000000000000001"]}
        assert "authorization" not in request.headers
        assert body_json(request) == {"content": "Deployed **v2**", "embeds": embeds,
                                      "username": "CI",
                                      "avatar_url": "https://example.com/ci.png"}  # fmt: skip
        assert item.json == discord.messages[0]
        assert item.json["author"]["username"] == "CI"
        assert item.json["channel_id"] == "1500000000000000001"

    async def test_a_wrong_webhook_token_is_refused_without_quoting_the_url(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        url = f"{discord.url}/api/webhooks/{WEBHOOK_ID}/not-the-token"
        error = await failure(http, SEND, webhook(discord, url))
        assert error.message == (
            "discord message send: the credential was refused "
            "(HTTP 401: Invalid Webhook Token (code 50027))"
        )
        assert "not-the-token" not in error.message

    async def test_a_deleted_webhook_is_not_found(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        url = f"{discord.url}/api/webhooks/1299999999999999999/{WEBHOOK_TOKEN}"
        error = await failure(http, SEND, webhook(discord, url))
        assert (
            error.message
            == "discord message send: not found (HTTP 404: Unknown Webhook (code 10015))"
        )

    def test_content_or_embeds_is_required_when_the_workflow_is_saved(self) -> None:
        assert Discord().check({"operation": "send"}) == ["one of content and embeds is required"]
        assert Discord().check({"operation": "send", "embeds": [{"title": "t"}]}) == []


class TestBot:
    async def test_posts_to_the_channel_with_the_bot_token(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        parameters = {**SEND, "channel_id": CHANNEL, "tts": True,
                      "extra": {"allowed_mentions": {"parse": []}}}  # fmt: skip
        [item] = (await run(http, parameters, bot(discord), {})).outputs["main"]
        [request] = discord.requests
        assert (request.method, request.path) == ("POST", f"/api/v10/channels/{CHANNEL}/messages")
        assert request.headers["authorization"] == f"Bot {BOT_TOKEN}"
        assert request.headers["user-agent"] == USER_AGENT
        assert body_json(request) == {"content": "Deployed **v2**", "tts": True,
                                      "allowed_mentions": {"parse": []}}  # fmt: skip
        assert item.json["author"]["username"] == "LinkFlow Bot"
        assert item.json["tts"] is True

    async def test_a_bot_needs_a_channel(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        error = await failure(http, SEND, bot(discord))
        assert error.message == "discord message send: channel_id is required with a bot credential"
        assert discord.requests == []

    async def test_discords_code_and_message_are_in_the_error(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        error = await failure(http, {**SEND, "channel_id": "1199999999999999999"}, bot(discord))
        assert (
            error.message
            == "discord message send: not found (HTTP 404: Unknown Channel (code 10003))"
        )
        discord.fail_next(Reply.json({"message": "Missing Permissions", "code": 50013}, 403))
        denied = await failure(http, {**SEND, "channel_id": CHANNEL}, bot(discord))
        assert denied.message == (
            "discord message send: not permitted (HTTP 403: Missing Permissions (code 50013))"
        )

    async def test_a_wrong_bot_token_is_refused(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        error = await failure(
            http, {**SEND, "channel_id": CHANNEL}, bot(discord, "wrong.bot.token")
        )
        assert (
            error.message
            == "discord message send: the credential was refused (HTTP 401: 401: Unauthorized)"
        )
        assert error.retryable is False


class TestFailures:
    async def test_a_429_waits_discords_fractional_retry_after(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        """The body's 1.5 s wins over the header's rounded 2."""
        discord.fail_next(rate_limited(1.5))
        error = await failure(http, SEND, webhook(discord))
        assert error.message == "discord message send: rate limited (HTTP 429); retry after 1.5 s"
        assert (error.retryable, error.retry_after_s) == (True, 1.5)

    async def test_a_500_is_retryable(self, discord: FakeDiscord, http: httpx.AsyncClient) -> None:
        discord.fail_next(Reply(502, "<html>Bad Gateway</html>", content_type="text/html"))
        error = await failure(http, SEND, webhook(discord))
        assert error.message == (
            "discord message send: the service failed (HTTP 502: <html>Bad Gateway</html>)"
        )
        assert error.retryable is True

    async def test_a_malformed_answer_is_an_error(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        discord.fail_next(Reply(200, "not json", content_type="application/json"))
        error = await failure(http, SEND, webhook(discord))
        assert error.message == "discord message send: the answer is not JSON (HTTP 200): not json"

    async def test_a_timeout_is_retryable(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        discord.fail_next(HANG)
        error = await failure(http, {**SEND, "timeout_s": 0.2}, webhook(discord))
        assert (error.message, error.retryable) == (
            "discord message send: timed out after 0.2 s", True)  # fmt: skip

    async def test_the_engine_retries_after_retry_after_then_sends(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        discord.fail_next(rate_limited(2.25))
        clock = StepClock()
        result = await run_in_engine(
            http, "discord", SEND, clock=clock, retry={"max_attempts": 2, "backoff_s": 60},
            credentials={"discord": {"type": "discord_webhook",
                                     "data": {"webhook_url": discord.webhook_url()}}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [2.25]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [2.25]
        assert len(discord.requests) == 2
        assert result.output_of(NODE)[0]["content"] == "Deployed **v2**"
        assert WEBHOOK_TOKEN not in str([e.data for e in result.events])


class TestCredentials:
    async def test_the_webhook_check_reads_the_webhook(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        assert DISCORD_WEBHOOK.check is not None
        said = await DISCORD_WEBHOOK.check(Checking(http), webhook(discord))
        assert said == f"webhook 'Deploys' of channel {CHANNEL}"
        assert WEBHOOK_TOKEN not in said
        assert discord.requests[0].method == "GET"
        assert DISCORD_WEBHOOK.secret_fields == {"webhook_url"}

    async def test_the_bot_check_reads_the_bots_user(
        self, discord: FakeDiscord, http: httpx.AsyncClient
    ) -> None:
        assert DISCORD_BOT.check is not None
        assert await DISCORD_BOT.check(Checking(http), bot(discord)) == (
            "authenticated as LinkFlow Bot"
        )
        with pytest.raises(NodeError, match=r"^discord user get: the credential was refused"):
            await DISCORD_BOT.check(Checking(http), bot(discord, "nope"))
