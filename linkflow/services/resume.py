"""Resume URLs of waiting executions (wait nodes with `resume: webhook`).

The URL carries a token derived from the secret key and the execution id
(HMAC-SHA256), so it is known before the wait node runs (`{{
execution.resume_url }}` can be e-mailed ahead) and needs no storage; it is
unguessable without the key, and only resumes that one execution. A URL made
under a previous secret key (`LINKFLOW_SECRET_KEYS_PREVIOUS`) still resumes.

An accepted resume is durable before it is answered: one transaction moves the
execution from waiting to queued and appends `execution.resumed` with the
payload (`store.move_execution`); only then is its job queued. So a second
call, however close, finds it no longer waiting (409 `not_waiting`), and a crash
after the answer loses nothing: recovery finds the execution queued. For the same
reason a queue found unreachable only by that enqueue does not fail the resume (it is
stored; recovery queues the job), while a queue already known to be away refuses the
resume before anything is written (503 `queue_unavailable`, `services.executions`).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from typing import Any

from linkflow.engine import EventType
from linkflow.queue import Priority, Queue
from linkflow.services.errors import Conflict, NotFound
from linkflow.services.executions import (
    enqueue_stored,
    execution_job,
    require_queue,
    storable_input,
)
from linkflow.store import (
    Database,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    StoreConflict,
    move_execution,
)

__all__ = ["ResumeLinks"]


class ResumeLinks:
    def __init__(
        self,
        database: Database,
        queue: Queue,
        secret: bytes,
        public_url: str,
        previous_secrets: Sequence[bytes] = (),
    ) -> None:
        self.database = database
        self.queue = queue
        self._secret = secret
        self._secrets = (secret, *previous_secrets)
        self.public_url = public_url

    def token(self, execution_id: uuid.UUID, secret: bytes | None = None) -> str:
        digest = hmac.new(secret or self._secret, b"resume:" + execution_id.bytes,
                          hashlib.sha256)  # fmt: skip
        return digest.hexdigest()[:40]

    def _valid(self, execution_id: uuid.UUID, token: str) -> bool:
        return any(hmac.compare_digest(token, self.token(execution_id, secret))
                   for secret in self._secrets)  # fmt: skip

    def url(self, execution_id: uuid.UUID) -> str:
        return f"{self.public_url}/webhooks/resume/{execution_id}/{self.token(execution_id)}"

    async def resume(self, execution_id: uuid.UUID, token: str, payload: Any) -> None:
        """Resume a waiting execution whose wait accepts a webhook; `NotFound` for a wrong
        token (the same as for an unknown execution), `Conflict` when it is not waiting."""
        if not self._valid(execution_id, token):
            raise NotFound("there is no waiting execution here", code="execution_not_found")
        storable_input(payload, "the resume payload")
        require_queue(self.queue)
        async with self.database.session() as session:
            row = await session.get(Execution, execution_id)
        if row is None:
            raise NotFound("there is no waiting execution here", code="execution_not_found")
        try:
            async with self.database.transaction() as session:
                moved = await move_execution(
                    session, execution_id, ExecutionStatus.QUEUED,
                    event_type=EventType.EXECUTION_RESUMED.value,
                    data={"by": "webhook", "payload": payload},
                    only_from=frozenset({ExecutionStatus.WAITING}),
                    values={"wait_until": None}, check=_accepts_webhook,
                )  # fmt: skip
        except StoreConflict:
            moved = None  # its timer resumed it at the same moment
        if moved is None:
            async with self.database.session() as session:
                status = (await session.get(Execution, execution_id, populate_existing=True))
            now = status.status.value if status is not None else "gone"
            raise Conflict(f"the execution is {now}, not waiting", code="not_waiting")
        await enqueue_stored(self.queue, execution_job(execution_id, Priority.HIGH))


def _accepts_webhook(last: ExecutionEvent | None) -> None:
    if last is None or last.type != EventType.EXECUTION_WAITING.value:
        raise Conflict("the execution is not waiting", code="not_waiting")
    if not last.data.get("webhook"):
        raise Conflict("this execution waits for a time, not for a webhook call",
                       code="not_waiting")  # fmt: skip
