"""Forgotten passwords: the reset e-mail through a real SMTP server, single-use tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message

import pytest
import structlog
from sqlalchemy import update

from linkflow.store import PasswordResetToken, utcnow
from tests._smtp import Inbox, smtp_sink
from tests.api._support import PASSWORD, eventually, new_email, register
from tests.api.conftest import ApiFactory

NEW_PASSWORD = "velvet-harbour-lantern-9"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback, collecting what it is sent."""
    with smtp_sink() as sink:
        yield sink


def token_in(message: Message) -> str:
    text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    match = re.search(r"token=([A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)


class TestPasswordReset:
    async def test_the_reset_email_arrives_and_its_token_sets_a_new_password(
        self, make_api: ApiFactory, smtp: tuple[Inbox, int]
    ):
        """forgot-password → e-mail over SMTP → reset-password → login with the new password."""
        inbox, port = smtp
        api = await make_api(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_from="LinkFlow <noreply@linkflow.test>",
        )
        account = await register(api.client)
        response = await api.client.post(
            "/api/v1/auth/forgot-password", json={"email": account.email}
        )
        assert response.status_code == 202

        async def arrived() -> Message | None:
            mails = inbox.to(account.email)
            return mails[0] if mails else None

        mail = await eventually(arrived, what="the reset e-mail")
        assert mail["From"] == "LinkFlow <noreply@linkflow.test>"
        assert "reset" in mail["Subject"].lower()
        token = token_in(mail)
        reset = await api.client.post(
            "/api/v1/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert reset.status_code == 204
        old = await api.client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert old.status_code == 401
        new = await api.client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": NEW_PASSWORD}
        )
        assert new.status_code == 200
        # The reset ended the sessions that existed before it.
        me = await api.client.get("/api/v1/users/me", headers=account.headers)
        assert me.status_code == 401
        again = await api.client.post(
            "/api/v1/auth/reset-password", json={"token": token, "password": NEW_PASSWORD + "x"}
        )
        assert again.status_code == 422
        assert again.json()["code"] == "invalid_reset_token"

    async def test_an_unknown_email_gets_the_same_answer_and_no_mail(
        self, make_api: ApiFactory, smtp: tuple[Inbox, int]
    ):
        """202 with the same body; nothing is sent."""
        inbox, port = smtp
        api = await make_api(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
        account = await register(api.client)
        known = await api.client.post("/api/v1/auth/forgot-password", json={"email": account.email})
        unknown_address = new_email()
        unknown = await api.client.post(
            "/api/v1/auth/forgot-password", json={"email": unknown_address}
        )
        assert known.status_code == unknown.status_code == 202
        assert known.json() == unknown.json()
        await eventually(lambda: _some(inbox.to(account.email)), what="the known user's e-mail")
        assert inbox.to(unknown_address) == []

    async def test_an_expired_token_is_refused(self, make_api: ApiFactory, smtp: tuple[Inbox, int]):
        """A token past its expiry: 422 invalid_reset_token, the password stays."""
        inbox, port = smtp
        api = await make_api(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
        account = await register(api.client)
        await api.client.post("/api/v1/auth/forgot-password", json={"email": account.email})
        mail = await eventually(lambda: _first(inbox.to(account.email)), what="the e-mail")
        async with api.container.database.transaction() as session:
            await session.execute(
                update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        response = await api.client.post(
            "/api/v1/auth/reset-password", json={"token": token_in(mail), "password": NEW_PASSWORD}
        )
        assert response.status_code == 422

    async def test_a_weak_new_password_is_refused_and_the_token_survives(
        self, make_api: ApiFactory, smtp: tuple[Inbox, int]
    ):
        """422 weak_password; the same token then works with a strong password."""
        inbox, port = smtp
        api = await make_api(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
        account = await register(api.client)
        await api.client.post("/api/v1/auth/forgot-password", json={"email": account.email})
        token = token_in(await eventually(lambda: _first(inbox.to(account.email)), what="mail"))
        weak = await api.client.post(
            "/api/v1/auth/reset-password", json={"token": token, "password": "password1"}
        )
        assert weak.status_code == 422
        ok = await api.client.post(
            "/api/v1/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert ok.status_code == 204

    async def test_without_smtp_the_email_is_written_to_the_log(self, make_api: ApiFactory):
        """Embedded mode: the reset link appears in the log instead."""
        api = await make_api()
        account = await register(api.client)
        with structlog.testing.capture_logs() as logs:
            await api.client.post("/api/v1/auth/forgot-password", json={"email": account.email})

            async def logged() -> dict[str, object] | None:
                hits = [entry for entry in logs if entry["event"] == "email.not_sent_no_smtp"]
                return hits[0] if hits else None

            entry = await eventually(logged, what="the logged e-mail")
        assert entry["to"] == account.email
        assert "token=" in str(entry["body"])


async def _some(items: list[Message]) -> list[Message] | None:
    return items or None


async def _first(items: list[Message]) -> Message | None:
    return items[0] if items else None
