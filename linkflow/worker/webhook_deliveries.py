"""`webhook_delivery` jobs: one signed POST of an execution event to a subscriber.

The request: the delivery row's `payload` as the JSON body, and

    X-LinkFlow-Event: execution.failed
    X-LinkFlow-Delivery: <delivery id>
    X-LinkFlow-Timestamp: <unix seconds>
    X-LinkFlow-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">

signed with the subscription's secret exactly as incoming webhook calls are
(`services.webhook_signatures.signature`), so one function verifies both. It goes
through the process's SSRF-guarded client, without following redirects, and fails
after `timeout_s`. A 2xx answer delivers it; anything else (another status, a
refused address, a connection error, a timeout) fails the attempt and raises, so the
job is retried with backoff and, after its last attempt, dead-lettered.

The row is the truth: an attempt first claims it in one compare-and-set (open, and
due: `next_attempt_at` passed, less `EARLY_S`), which also pushes `next_attempt_at`
past the attempt's end. So a second job of the same delivery (recovery's, a
redelivery's) runs no attempt while another is under way or not yet due, and a
delivered or dead delivery is never sent again by a stale job.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx
import orjson
from sqlalchemy import or_, select, update

from linkflow.nodes.sdk import NodeError
from linkflow.observability.logging import get_logger
from linkflow.queue import Delivery, backoff_s
from linkflow.security.secretbox import SecretBox
from linkflow.services.outgoing_events import OPEN_STATUSES
from linkflow.services.webhook_signatures import signature
from linkflow.services.webhook_subscriptions import secret_aad
from linkflow.store import Database, DeliveryStatus, WebhookDelivery, WebhookSubscription
from linkflow.worker.handlers import UndecodableJob

__all__ = ["DeliveryFailed", "WebhookDeliveries"]

log = get_logger(__name__)

EARLY_S: Final = 1.0
"""A retry's job may come this much before its row's `next_attempt_at` (the queue's
clock and the database's differ, across machines): it still runs."""
CLAIM_MARGIN_S: Final = 30.0
"""A claimed attempt holds the row this long past its timeout; a worker that died in
it leaves the row to the next job after that."""


class DeliveryFailed(Exception):
    """One attempt did not deliver (the message says why); the job is retried."""


@dataclass(frozen=True, slots=True)
class _Attempt:
    url: str
    secret: bytes
    event: str
    body: bytes


class WebhookDeliveries:
    """The `JobHandler` of `webhook_delivery` jobs."""

    def __init__(
        self, database: Database, box: SecretBox, http: httpx.AsyncClient, *,
        timeout_s: float = 10.0, backoff_base_s: float = 1.0,
    ) -> None:  # fmt: skip
        self.database = database
        self.box = box
        self.http = http
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s

    async def handle(self, delivery: Delivery) -> None:
        try:
            delivery_id = uuid.UUID(str(delivery.job.payload["delivery_id"]))
        except (KeyError, ValueError) as error:
            raise UndecodableJob(f"no delivery_id: {error}") from None
        attempt = await self._claim(delivery_id)
        if attempt is None:
            return  # delivered, dead, deleted, or in another job's hands
        failure, status_code = await self._post(delivery_id, attempt)
        await self._record(delivery_id, delivery, failure, status_code)
        if failure is not None:
            raise DeliveryFailed(failure)

    async def _claim(self, delivery_id: uuid.UUID) -> _Attempt | None:
        now = datetime.now(UTC)
        hold = timedelta(seconds=self.timeout_s + CLAIM_MARGIN_S)
        async with self.database.transaction() as session:
            claimed = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id,
                       WebhookDelivery.status.in_(OPEN_STATUSES),
                       or_(WebhookDelivery.next_attempt_at.is_(None),
                           WebhookDelivery.next_attempt_at <= now + timedelta(seconds=EARLY_S)))
                .values(status=DeliveryStatus.DELIVERING, attempts=WebhookDelivery.attempts + 1,
                        last_attempt_at=now, next_attempt_at=now + hold, updated_at=now)
            )  # fmt: skip
            if not getattr(claimed, "rowcount", 0):
                return None
            found = (await session.execute(
                select(WebhookDelivery.event, WebhookDelivery.payload, WebhookSubscription.url,
                       WebhookSubscription.secret_encrypted, WebhookSubscription.id)
                .join(WebhookSubscription,
                      WebhookSubscription.id == WebhookDelivery.subscription_id)
                .where(WebhookDelivery.id == delivery_id)
            )).one()  # fmt: skip
        event, payload, url, sealed, subscription_id = found
        secret = self.box.open(sealed, secret_aad(subscription_id))
        return _Attempt(url, secret, event, orjson.dumps(payload))

    async def _post(
        self, delivery_id: uuid.UUID, attempt: _Attempt
    ) -> tuple[str | None, int | None]:
        """Send once: (None, status) when delivered, else (why not, status or None)."""
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json", "X-LinkFlow-Event": attempt.event,
            "X-LinkFlow-Delivery": str(delivery_id), "X-LinkFlow-Timestamp": str(stamp),
            "X-LinkFlow-Signature": signature(attempt.secret, stamp, attempt.body),
        }  # fmt: skip
        try:
            async with self.http.stream(
                "POST", attempt.url, content=attempt.body, headers=headers,
                timeout=self.timeout_s,
            ) as response:  # fmt: skip
                status = response.status_code
        except NodeError as error:  # the SSRF guard refused the address
            return str(error), None
        except httpx.TimeoutException:
            return f"no answer within {self.timeout_s:g} s", None
        except httpx.HTTPError as error:
            return f"cannot reach the URL ({type(error).__name__}: {error})"[:500], None
        if 200 <= status < 300:
            return None, status
        return f"the receiver answered HTTP {status}", status

    async def _record(
        self, delivery_id: uuid.UUID, delivery: Delivery, failure: str | None,
        status_code: int | None,
    ) -> None:  # fmt: skip
        now = datetime.now(UTC)
        values: dict[str, object] = {"last_status_code": status_code, "last_error": failure,
                                     "updated_at": now}  # fmt: skip
        if failure is None:
            values |= {"status": DeliveryStatus.SUCCEEDED, "delivered_at": now,
                       "next_attempt_at": None}  # fmt: skip
        elif delivery.last_attempt:
            values |= {"status": DeliveryStatus.DEAD, "next_attempt_at": None}
            log.warning("webhook delivery given up", delivery_id=str(delivery_id),
                        reason=failure, attempt=delivery.attempt)  # fmt: skip
        else:
            delay = backoff_s(delivery.attempt, base_s=self.backoff_base_s)
            values |= {"status": DeliveryStatus.RETRYING,
                       "next_attempt_at": now + timedelta(seconds=delay)}  # fmt: skip
        async with self.database.transaction() as session:
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
            )
