"""Rows that integration tests need as roots: a workspace with its owner, a workflow,
an execution. Each call makes new ones, so tests sharing a database stay apart."""

from __future__ import annotations

import uuid

from linkflow.store import (
    Database,
    Execution,
    ExecutionRepository,
    User,
    Workflow,
    WorkflowRepository,
    Workspace,
)


async def new_workspace(database: Database) -> uuid.UUID:
    """A new workspace (with its owner), committed; returns its id."""
    async with database.transaction() as session:
        owner = User(email=f"{uuid.uuid4().hex}@Example.com")
        session.add(owner)
        await session.flush()
        workspace = Workspace(name="Team", slug=uuid.uuid4().hex, owner_id=owner.id)
        session.add(workspace)
        await session.flush()
        return workspace.id


async def new_workflow(database: Database, workspace_id: uuid.UUID, name: str = "wf") -> Workflow:
    async with database.transaction() as session:
        return await WorkflowRepository(session, workspace_id).add(Workflow(name=name))


async def new_execution(database: Database, workspace_id: uuid.UUID) -> Execution:
    workflow = await new_workflow(database, workspace_id)
    async with database.transaction() as session:
        execution = Execution(workflow_id=workflow.id, workflow_version=workflow.version)
        return await ExecutionRepository(session, workspace_id).add(execution)
