"""The execution plane's objects, as the API's endpoints reach them.

Kept apart from `Container` (accounts, sessions, keys): an `api`-only process
needs a queue and a writer to start executions but runs no worker, while
`serve` runs all of it in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

from linkflow.bus import Bus
from linkflow.engine import Engine
from linkflow.queue import Queue
from linkflow.services.credentials import Credentials
from linkflow.services.execution_views import ExecutionViews
from linkflow.services.live import LiveEvents
from linkflow.services.oauth2_connect import OAuth2Connect
from linkflow.services.resume import ResumeLinks
from linkflow.services.schedules import Schedules
from linkflow.services.variables import Variables
from linkflow.services.webhook_subscriptions import WebhookSubscriptions
from linkflow.services.webhooks import WebhookService
from linkflow.services.workflows import WorkflowService

__all__ = ["Plane", "PlaneServices", "get_plane"]


@dataclass(frozen=True)
class Plane:
    engine: Engine
    bus: Bus
    workflows: WorkflowService
    executions: ExecutionViews
    webhooks: WebhookService
    variables: Variables
    credentials: Credentials
    schedules: Schedules
    resume_links: ResumeLinks
    public_url: str
    live: LiveEvents
    subscriptions: WebhookSubscriptions
    queue: Queue | None = None
    """For the admin endpoints (depth, dead letters)."""
    oauth2: OAuth2Connect | None = None
    """Connecting OAuth2 credentials (`/credentials/oauth2`)."""


def get_plane(request: Request) -> Plane:
    return cast(Plane, request.app.state.plane)


PlaneServices = Annotated[Plane, Depends(get_plane)]
