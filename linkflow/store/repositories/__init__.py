"""Repositories: the queries the rest of LinkFlow runs, scoped so that tenants cannot mix.

Invariants:
- A `WorkspaceRepository` is bound to one workspace and every statement it
  issues filters on that workspace's id: another workspace's row is simply
  not found (`get` returns None, `delete` returns False), which the API
  turns into a 404 rather than a 403 that would confirm the row exists.
- Soft-deleted rows (`deleted_at` set) are invisible through repositories.
- Lists are newest first and paged by an opaque cursor over
  ``(created_at, id)``: stable under concurrent inserts, and each page is one
  index range scan.
- Repositories flush but never commit: the caller owns the transaction.
- The event history is reached by execution id (`EventRepository`): callers
  authorise the execution through `ExecutionRepository` first. Appends use
  ``INSERT ... ON CONFLICT DO NOTHING``, so a refused append (`StoreConflict`)
  leaves the transaction usable.
"""

from __future__ import annotations

from linkflow.store.repositories._scoped import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Cursor,
    Page,
    WorkspaceRepository,
)
from linkflow.store.repositories.events import EventRepository, NewEvent
from linkflow.store.repositories.lifecycle import move_execution
from linkflow.store.repositories.resources import (
    CredentialRepository,
    ExecutionRepository,
    VariableRepository,
    WorkflowRepository,
)
from linkflow.store.repositories.users import UserRepository

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "CredentialRepository",
    "Cursor",
    "EventRepository",
    "ExecutionRepository",
    "NewEvent",
    "Page",
    "UserRepository",
    "VariableRepository",
    "WorkflowRepository",
    "WorkspaceRepository",
    "move_execution",
]
