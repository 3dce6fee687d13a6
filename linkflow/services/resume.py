"""Resume URLs of waiting executions (wait nodes with `resume: webhook`).

The URL carries a token derived from the secret key and the execution id
(HMAC-SHA256), so it is known before the wait node runs (`{{
execution.resume_url }}` can be e-mailed ahead) and needs no storage; it is
unguessable without the key, and only resumes that one execution.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

from linkflow.engine import Resume
from linkflow.queue import Job, JobType, Priority, Queue
from linkflow.services.errors import Conflict, NotFound
from linkflow.store import Database, Execution, ExecutionStatus

__all__ = ["ResumeLinks"]


class ResumeLinks:
    def __init__(
        self,
        database: Database,
        queue: Queue,
        resumes: dict[uuid.UUID, Resume],
        secret: bytes,
        public_url: str,
    ) -> None:
        self.database = database
        self.queue = queue
        self.resumes = resumes
        self._secret = secret
        self.public_url = public_url

    def token(self, execution_id: uuid.UUID) -> str:
        digest = hmac.new(self._secret, b"resume:" + execution_id.bytes, hashlib.sha256)
        return digest.hexdigest()[:40]

    def url(self, execution_id: uuid.UUID) -> str:
        return f"{self.public_url}/webhooks/resume/{execution_id}/{self.token(execution_id)}"

    async def resume(self, execution_id: uuid.UUID, token: str, payload: Any) -> None:
        """Resume a waiting execution whose wait accepts a webhook; `NotFound` for a wrong
        token (the same as for an unknown execution), `Conflict` when it is not waiting."""
        if not hmac.compare_digest(token, self.token(execution_id)):
            raise NotFound("there is no waiting execution here", code="execution_not_found")
        async with self.database.session() as session:
            row = await session.get(Execution, execution_id)
        if row is None:
            raise NotFound("there is no waiting execution here", code="execution_not_found")
        if row.status is not ExecutionStatus.WAITING:
            raise Conflict(f"the execution is {row.status.value}, not waiting",
                           code="not_waiting")  # fmt: skip
        self.resumes[execution_id] = Resume(payload)
        await self.queue.enqueue(
            Job(
                type=JobType.WORKFLOW_EXECUTION,
                payload={"execution_id": str(execution_id)},
                queue=Priority.HIGH,
            )
        )
