"""A real SMTP server on loopback (aiosmtpd) that keeps what it is sent, for the tests of
e-mails (password resets, invitations, failure alerts)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message

from aiosmtpd.controller import Controller

from tests._services import free_port

__all__ = ["Inbox", "smtp_sink"]


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: object, _session: object, envelope: object) -> str:
        self.messages.append(message_from_bytes(envelope.original_content))  # type: ignore[attr-defined]
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [message for message in self.messages if message["To"] == address]


@contextmanager
def smtp_sink() -> Iterator[tuple[Inbox, int]]:
    """An SMTP server on 127.0.0.1 for the `with` block: its inbox and its port."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
