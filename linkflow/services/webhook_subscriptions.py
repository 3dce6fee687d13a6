"""Outgoing webhook subscriptions of a workspace, their deliveries, and redelivery.

Invariants:
- Every read and write is scoped by the caller's workspace: another workspace's
  subscription or delivery is `NotFound`, like one that does not exist.
- A URL is accepted only if the SSRF guard would let a request reach it now: http or
  https, a host whose every address the `AddressPolicy` allows (private, loopback and
  link-local addresses only with `LINKFLOW_HTTP_ALLOW_PRIVATE`, as for the HTTP node).
  Each delivery is checked again at connection time (a name may resolve elsewhere later).
- The signing secret (`whsec_` + 32 random bytes, URL-safe base64) is returned once, by
  `create`; it is stored sealed, bound to the subscription's id.
- Reading needs `webhooks:read`; creating, changing, deleting and redelivering need
  `webhooks:write` (members and above): the same rights as incoming webhooks.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

import httpcore
import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.nodes.sdk import NodeError
from linkflow.queue import Queue
from linkflow.security.rbac import Permission
from linkflow.security.secretbox import SecretBox
from linkflow.security.ssrf import ALLOWED_SCHEMES, AddressPolicy, GuardedBackend
from linkflow.services import audit
from linkflow.services._paging import Page, page
from linkflow.services.context import Actor, WorkspaceAccess
from linkflow.services.errors import Conflict, FieldProblem, Invalid, NotFound
from linkflow.services.outgoing_events import EVENTS, OPEN_STATUSES, delivery_job
from linkflow.store import (
    Database,
    DeliveryStatus,
    WebhookDelivery,
    WebhookSubscription,
    Workflow,
    new_id,
)

__all__ = ["SECRET_PREFIX", "Created", "WebhookSubscriptions", "secret_aad"]

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret
RESOLVE_TIMEOUT_S: Final = 5.0
"""How long creating a subscription waits for its host's addresses."""
MAX_URL_CHARS: Final = 2048


def secret_aad(subscription_id: uuid.UUID) -> bytes:
    """The associated data binding a sealed secret to its subscription."""
    return f"webhook_subscription:{subscription_id}".encode()


class Created:
    """A new subscription and its secret (shown this once)."""

    __slots__ = ("row", "secret")

    def __init__(self, row: WebhookSubscription, secret: str) -> None:
        self.row = row
        self.secret = secret


class WebhookSubscriptions:
    def __init__(
        self, database: Database, box: SecretBox, queue: Queue, policy: AddressPolicy, *,
        on_change: Callable[[uuid.UUID], None] | None = None,
    ) -> None:  # fmt: skip
        self.database = database
        self.box = box
        self.queue = queue
        self.guard = GuardedBackend(policy)
        self.on_change = on_change
        """Told the workspace whose subscriptions changed (the worker's cache)."""

    async def create(
        self, access: WorkspaceAccess, actor: Actor, *, url: str, events: Sequence[str],
        workflow_id: uuid.UUID | None, description: str, active: bool,
    ) -> Created:  # fmt: skip
        access.require(Permission.WEBHOOKS_WRITE)
        _check_events(events)
        url = await self._vetted(url)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        row_id = new_id()
        async with self.database.transaction() as session:
            await _check_workflow(session, access, workflow_id)
            row = WebhookSubscription(
                id=row_id, workspace_id=access.workspace_id, url=url, events=_ordered(events),
                workflow_id=workflow_id, description=description, active=active,
                secret_encrypted=self.box.seal(secret.encode(), secret_aad(row_id)),
            )  # fmt: skip
            session.add(row)
            await session.flush()
            await audit.record(session, actor, "webhook_subscription.created",
                               "webhook_subscription", row.id, workspace_id=access.workspace_id,
                               new={"url": url, "events": row.events})  # fmt: skip
        self._changed(access)
        return Created(row, secret)

    async def list(
        self, access: WorkspaceAccess, *, limit: int, cursor: str | None
    ) -> Page[WebhookSubscription]:
        access.require(Permission.WEBHOOKS_READ)
        statement = select(WebhookSubscription).where(
            WebhookSubscription.workspace_id == access.workspace_id
        )
        async with self.database.session() as session:
            return await page(
                session, statement, created_at=WebhookSubscription.created_at,
                row_id=WebhookSubscription.id, limit=limit, cursor=cursor,
            )  # fmt: skip

    async def get(self, access: WorkspaceAccess, subscription_id: uuid.UUID) -> WebhookSubscription:
        access.require(Permission.WEBHOOKS_READ)
        async with self.database.session() as session:
            return await _row(session, access, subscription_id)

    async def update(
        self, access: WorkspaceAccess, actor: Actor, subscription_id: uuid.UUID, *,
        url: str | None = None, events: Sequence[str] | None = None,
        workflow_id: uuid.UUID | None = None, clear_workflow: bool = False,
        description: str | None = None, active: bool | None = None,
    ) -> WebhookSubscription:  # fmt: skip
        """Change the fields given; `clear_workflow` drops the workflow filter."""
        access.require(Permission.WEBHOOKS_WRITE)
        if events is not None:
            _check_events(events)
        if url is not None:
            url = await self._vetted(url)
        async with self.database.transaction() as session:
            row = await _row(session, access, subscription_id)
            old = {"url": row.url, "events": row.events, "active": row.active}
            if workflow_id is not None:
                await _check_workflow(session, access, workflow_id)
                row.workflow_id = workflow_id
            elif clear_workflow:
                row.workflow_id = None
            if url is not None:
                row.url = url
            if events is not None:
                row.events = _ordered(events)
            if description is not None:
                row.description = description
            if active is not None:
                row.active = active
            row.updated_at = datetime.now(UTC)
            await audit.record(session, actor, "webhook_subscription.updated",
                               "webhook_subscription", row.id, workspace_id=access.workspace_id,
                               old=old, new={"url": row.url, "events": row.events,
                                             "active": row.active})  # fmt: skip
        self._changed(access)
        return row

    async def delete(
        self, access: WorkspaceAccess, actor: Actor, subscription_id: uuid.UUID
    ) -> None:
        access.require(Permission.WEBHOOKS_WRITE)
        async with self.database.transaction() as session:
            row = await _row(session, access, subscription_id)
            await session.delete(row)
            await audit.record(session, actor, "webhook_subscription.deleted",
                               "webhook_subscription", row.id, workspace_id=access.workspace_id,
                               old={"url": row.url})  # fmt: skip
        self._changed(access)

    async def deliveries(
        self, access: WorkspaceAccess, subscription_id: uuid.UUID, *, limit: int,
        cursor: str | None,
    ) -> Page[WebhookDelivery]:  # fmt: skip
        """The subscription's deliveries, newest first."""
        access.require(Permission.WEBHOOKS_READ)
        async with self.database.session() as session:
            await _row(session, access, subscription_id)
            statement = select(WebhookDelivery).where(
                WebhookDelivery.subscription_id == subscription_id
            )
            return await page(
                session, statement, created_at=WebhookDelivery.created_at,
                row_id=WebhookDelivery.id, limit=limit, cursor=cursor,
            )  # fmt: skip

    async def redeliver(
        self, access: WorkspaceAccess, actor: Actor, subscription_id: uuid.UUID,
        delivery_id: uuid.UUID,
    ) -> WebhookDelivery:  # fmt: skip
        """Send a delivered or dead delivery again (same id and body, 5 more attempts)."""
        access.require(Permission.WEBHOOKS_WRITE)
        async with self.database.transaction() as session:
            await _row(session, access, subscription_id)
            row = (await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                              WebhookDelivery.subscription_id == subscription_id)
            )).one_or_none()  # fmt: skip
            if row is None:
                raise NotFound(f"there is no delivery {delivery_id}", code="delivery_not_found")
            if row.status in OPEN_STATUSES:
                raise Conflict("the delivery is still being attempted",
                               code="delivery_in_progress")  # fmt: skip
            now = datetime.now(UTC)
            row.status, row.next_attempt_at, row.updated_at = DeliveryStatus.PENDING, now, now
            await audit.record(session, actor, "webhook_delivery.redelivered", "webhook_delivery",
                               row.id, workspace_id=access.workspace_id)  # fmt: skip
        job, delay_s = delivery_job(row)
        await self.queue.enqueue(job, delay_s=delay_s)
        return row

    def _changed(self, access: WorkspaceAccess) -> None:
        if self.on_change is not None:
            self.on_change(access.workspace_id)

    async def _vetted(self, text: str) -> str:
        """`text` if deliveries may go there (see the module's doc), else `Invalid`."""
        text = text.strip()
        try:
            url = httpx.URL(text)
        except (httpx.InvalidURL, TypeError, ValueError):
            url = None
        if url is not None and url.scheme and url.scheme not in ALLOWED_SCHEMES:
            raise _bad_url(f"the scheme {url.scheme}:// is not allowed; only http:// and "
                           "https:// are", code="url_not_allowed")  # fmt: skip
        if url is None or len(text) > MAX_URL_CHARS or not url.host:
            raise _bad_url("not an absolute http(s) URL", code="invalid_url")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            await self.guard.resolve(url.host, port, timeout_s=RESOLVE_TIMEOUT_S)
        except NodeError as error:
            raise _bad_url(str(error), code="url_not_allowed") from None
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
            raise _bad_url(f"the host {url.host} cannot be resolved ({error or 'no address'})",
                           code="invalid_url") from None  # fmt: skip
        return text


def _bad_url(detail: str, *, code: str) -> Invalid:
    return Invalid(f"the URL cannot receive deliveries: {detail}", code=code,
                   errors=[FieldProblem("body.url", detail)])  # fmt: skip


def _check_events(events: Sequence[str]) -> None:
    unknown = [event for event in events if event not in EVENTS]
    if not events or unknown:
        detail = f"one or more of {', '.join(EVENTS)}"
        raise Invalid(
            f"unknown events: {', '.join(unknown)}" if unknown else "no events given",
            code="invalid_events", errors=[FieldProblem("body.events", detail)],
        )  # fmt: skip


def _ordered(events: Sequence[str]) -> list[str]:
    """Each event once, in the order of `EVENTS`."""
    return [event for event in EVENTS if event in events]


async def _check_workflow(
    session: AsyncSession, access: WorkspaceAccess, workflow_id: uuid.UUID | None
) -> None:
    if workflow_id is None:
        return
    found = await session.scalar(
        select(Workflow.id).where(Workflow.id == workflow_id,
                                  Workflow.workspace_id == access.workspace_id,
                                  Workflow.deleted_at.is_(None))
    )  # fmt: skip
    if found is None:
        raise Invalid(f"there is no workflow {workflow_id} in this workspace",
                      code="workflow_not_found",
                      errors=[FieldProblem("body.workflow_id", "no such workflow")])  # fmt: skip


async def _row(
    session: AsyncSession, access: WorkspaceAccess, subscription_id: uuid.UUID
) -> WebhookSubscription:
    row = await session.scalar(
        select(WebhookSubscription).where(WebhookSubscription.id == subscription_id,
                                          WebhookSubscription.workspace_id == access.workspace_id)
    )  # fmt: skip
    if row is None:
        raise NotFound(f"there is no webhook subscription {subscription_id}",
                       code="webhook_subscription_not_found")  # fmt: skip
    return row
