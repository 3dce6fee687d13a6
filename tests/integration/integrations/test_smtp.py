"""The smtp node and credential against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from linkflow.nodes.integrations.smtp import SMTP_CREDENTIAL, Smtp
from linkflow.nodes.sdk import NodeError
from linkflow.nodes.testing import FakeContext, MemoryBlobStore, items, run_node
from linkflow.security.ssrf import AddressPolicy, HostGuard
from tests._services import free_port
from tests._smtp import Inbox, smtp_sink


class PickyInbox(Inbox):
    """Refuses recipients at nowhere.invalid (550), as a server refuses unknown users."""

    async def handle_RCPT(
        self, _server: object, _session: object, envelope: Any, address: str, _options: object
    ) -> str:
        if address.endswith("@nowhere.invalid"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[Inbox, int]]:
    with smtp_sink() as found:
        yield found


@pytest.fixture
def picky() -> Iterator[tuple[PickyInbox, int]]:
    inbox = PickyInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def credential(port: int, **overrides: Any) -> dict[str, Any]:
    return {"type": "smtp", "host": "127.0.0.1", "port": port, "starttls": False, **overrides}


MAIL = {
    "from_address": "LinkFlow <flows@example.com>",
    "to": "ada@example.com",
    "subject": "Report",
    "text": "See attached.",
}


class TestSend:
    async def test_sends_text_and_html_with_an_attachment_from_a_binary(
        self, sink: tuple[Inbox, int]
    ) -> None:
        """The server gets a multipart message: both bodies, the file under its name, and
        the Message-ID and Date of the recorded context; the item reports the recipients."""
        inbox, port = sink
        blobs = MemoryBlobStore()
        report = await blobs.put(b"a,b\n1,2\n", mime_type="text/csv", file_name="report.csv")
        ctx = FakeContext(
            items=items({"n": 1}, binary={"data": report.to_json()}),
            parameters={
                **MAIL,
                "cc": ["bob@example.com"],
                "bcc": "eve@example.com",
                "html": "<p>See <b>attached</b>.</p>",
                "attachments": ["data"],
            },
            credentials={"smtp": credential(port)},
            blobs=blobs,
        )
        result = await run_node(Smtp, ctx)
        out = result.outputs["main"][0].json
        assert out == {
            "n": 1,
            "message_id": "<00000000-0000-4000-8000-000000000001@example.com>",
            "accepted": ["ada@example.com", "bob@example.com", "eve@example.com"],
            "rejected": {},
        }
        [message] = inbox.messages
        assert message["To"] == "ada@example.com"
        assert message["Cc"] == "bob@example.com"
        assert message["Bcc"] is None
        assert message["Message-ID"] == out["message_id"]
        assert message["Date"] == "Thu, 01 Jan 2026 12:00:00 +0000"
        parts = {part.get_content_type(): part for part in message.walk()}
        assert _text(parts["text/plain"]).strip() == "See attached."
        assert "<b>attached</b>" in _text(parts["text/html"])
        assert parts["text/csv"].get_filename() == "report.csv"
        assert parts["text/csv"].get_payload(decode=True) == b"a,b\n1,2\n"

    async def test_one_session_sends_one_message_per_item(self, sink: tuple[Inbox, int]) -> None:
        """Three items, three messages, each its own Message-ID."""
        inbox, port = sink
        ctx = FakeContext(
            items=items({}, {}, {}), parameters=MAIL, credentials={"smtp": credential(port)}
        )
        result = await run_node(Smtp, ctx)
        ids = [item.json["message_id"] for item in result.outputs["main"]]
        assert len(set(ids)) == 3
        assert [m["Message-ID"] for m in inbox.messages] == ids

    async def test_a_refused_recipient_is_reported_and_all_refused_is_an_error(
        self, picky: tuple[PickyInbox, int]
    ) -> None:
        """One of two refused: sent, with the refusal; every one refused: a node error."""
        inbox, port = picky
        both = {**MAIL, "to": ["ada@example.com", "ghost@nowhere.invalid"]}
        ctx = FakeContext(items=items({}), parameters=both, credentials={"smtp": credential(port)})
        out = (await run_node(Smtp, ctx)).outputs["main"][0].json
        assert out["accepted"] == ["ada@example.com"]
        assert out["rejected"] == {"ghost@nowhere.invalid": "550 5.1.1 no such user"}
        assert len(inbox.messages) == 1
        only_ghost = {**MAIL, "to": "ghost@nowhere.invalid"}
        ctx = FakeContext(
            items=items({}), parameters=only_ghost, credentials={"smtp": credential(port)}
        )
        with pytest.raises(NodeError) as caught:
            await run_node(Smtp, ctx)
        assert caught.value.message == (
            "smtp send: every recipient was refused (ghost@nowhere.invalid: 550)"
        )
        assert caught.value.retryable is False


class TestErrors:
    async def test_a_missing_binary_names_what_the_item_has(self, sink: tuple[Inbox, int]) -> None:
        """The attachment the parameters name is not on the item: nothing is sent."""
        inbox, port = sink
        ctx = FakeContext(
            items=items({}),
            parameters={**MAIL, "attachments": ["invoice"]},
            credentials={"smtp": credential(port)},
        )
        with pytest.raises(NodeError, match=r"the item has no binary 'invoice' \(it has: none\)"):
            await run_node(Smtp, ctx)
        assert inbox.messages == []

    async def test_a_closed_port_is_retryable(self) -> None:
        """Nothing listens: 'connection refused', retryable."""
        ctx = FakeContext(
            items=items({}), parameters=MAIL, credentials={"smtp": credential(free_port())}
        )
        with pytest.raises(NodeError) as caught:
            await run_node(Smtp, ctx)
        assert "connection refused" in caught.value.message
        assert caught.value.retryable is True

    async def test_a_bad_address_and_missing_body_are_refused_before_sending(self) -> None:
        """Both are the parameters' fault: clear messages, no connection needed."""
        with pytest.raises(ValueError, match="one of text and html is required"):
            await run_node(Smtp, FakeContext(parameters={"from_address": "a@x", "to": "b@y"}))
        ctx = FakeContext(
            items=items({}),
            parameters={**MAIL, "to": "not-an-address"},
            credentials={"smtp": credential(1)},
        )
        with pytest.raises(NodeError, match="to holds 'not-an-address', not an e-mail address"):
            await run_node(Smtp, ctx)

    async def test_a_loopback_host_is_refused_when_the_guard_is_on(
        self, sink: tuple[Inbox, int]
    ) -> None:
        """The production policy refuses the server on 127.0.0.1; allowing loopback sends."""
        inbox, port = sink
        ctx = FakeContext(
            items=items({}),
            parameters=MAIL,
            credentials={"smtp": credential(port)},
            addresses=HostGuard(AddressPolicy()),
        )
        with pytest.raises(NodeError, match=r"127\.0\.0\.1 is not allowed \(loopback\)"):
            await run_node(Smtp, ctx)
        assert inbox.messages == []
        loopback = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
        ctx = FakeContext(
            items=items({}),
            parameters=MAIL,
            credentials={"smtp": credential(port)},
            addresses=HostGuard(loopback),
        )
        await run_node(Smtp, ctx)
        assert len(inbox.messages) == 1


class TestCredentialCheck:
    async def test_the_check_connects_and_a_closed_port_fails(
        self, sink: tuple[Inbox, int]
    ) -> None:
        """Without a username it connects and NOOPs."""
        _, port = sink
        assert SMTP_CREDENTIAL.check is not None
        ok = await SMTP_CREDENTIAL.check(_CheckContext(), credential(port))
        assert ok == f"connected to 127.0.0.1:{port}"
        closed = free_port()
        with pytest.raises(NodeError, match=f"SMTP check against 127.0.0.1:{closed} failed"):
            await SMTP_CREDENTIAL.check(_CheckContext(), credential(closed))


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


class _CheckContext:
    timeout_s = 5.0

    def http(self) -> Any:
        raise AssertionError("the smtp check makes no HTTP request")

    async def resolve_host(self, host: str, port: int) -> list[str]:
        return await HostGuard(AddressPolicy(allow_private=True)).resolve(host, port, timeout_s=5)
