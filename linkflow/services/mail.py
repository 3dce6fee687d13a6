"""Outgoing e-mail: SMTP when configured, the log otherwise (embedded mode).

`SmtpMailer` uses the standard library's `smtplib` in a worker thread (the
event loop never blocks on the network) with a timeout on every operation.
`LogMailer` writes the whole message to the log, so a newcomer running
LinkFlow without SMTP can still follow a password-reset link.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol

from linkflow.observability.logging import get_logger
from linkflow.services.errors import Unavailable

__all__ = ["Email", "LogMailer", "Mailer", "SmtpMailer", "send_in_background"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str


class Mailer(Protocol):
    async def send(self, email: Email) -> None:
        """Deliver `email`; `Unavailable` when the mail server cannot take it."""


class LogMailer:
    """Writes e-mails to the log instead of sending them."""

    async def send(self, email: Email) -> None:
        log.warning(
            "email.not_sent_no_smtp",
            to=email.to,
            subject=email.subject,
            body=email.text,
            hint="set LINKFLOW_SMTP_HOST to send e-mail",
        )


class SmtpMailer:
    """Sends through one SMTP server."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        security: Literal["starttls", "tls", "none"],
        username: str | None,
        password: str | None,
        timeout_s: float,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.security = security
        self.username = username
        self._password = password
        self.timeout_s = timeout_s

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.security == "tls":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with client:
            if self.security == "starttls":
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self._password or "")
            client.send_message(message)

    async def send(self, email: Email) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message.set_content(email.text)
        try:
            await asyncio.to_thread(self._send, message)
        except (OSError, smtplib.SMTPException) as error:
            log.error("email.failed", to=email.to, subject=email.subject, error=str(error))
            raise Unavailable(f"cannot send e-mail through {self.host}:{self.port}") from error
        log.info("email.sent", to=email.to, subject=email.subject)


async def send_in_background(mailer: Mailer, email: Email) -> None:
    """Send after the response went out: a failure is logged (by the mailer), not raised."""
    try:
        await mailer.send(email)
    except Unavailable:
        return
