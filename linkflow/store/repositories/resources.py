"""Repositories of the workspace-scoped resources: workflows, executions, credentials, variables."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import select

from linkflow.store.enums import ExecutionStatus, WorkflowStatus
from linkflow.store.models import (
    Credential,
    Execution,
    NodeExecution,
    Variable,
    Workflow,
    WorkflowVersion,
)
from linkflow.store.repositories._scoped import DEFAULT_PAGE_SIZE, Page, WorkspaceRepository

__all__ = [
    "CredentialRepository",
    "ExecutionRepository",
    "VariableRepository",
    "WorkflowRepository",
]


class WorkflowRepository(WorkspaceRepository[Workflow]):
    """Workflows and their immutable versions."""

    model = Workflow

    async def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        status: WorkflowStatus | None = None,
    ) -> Page[Workflow]:
        """Newest first, optionally only those in `status`."""
        statement = self._select()
        if status is not None:
            statement = statement.where(Workflow.status == status)
        return await self._page(statement, limit=limit, cursor=cursor)

    async def add_version(
        self, workflow: Workflow, *, message: str = "", created_by_id: uuid.UUID | None = None
    ) -> WorkflowVersion:
        """Snapshot `workflow`'s current document as version `workflow.version`."""
        if workflow.workspace_id != self.workspace_id:
            msg = f"workflow {workflow.id} is not in workspace {self.workspace_id}"
            raise ValueError(msg)
        snapshot = WorkflowVersion(
            workspace_id=self.workspace_id,
            workflow_id=workflow.id,
            version=workflow.version,
            nodes=workflow.nodes,
            connections=workflow.connections,
            settings=workflow.settings,
            message=message,
            created_by_id=created_by_id,
        )
        self.session.add(snapshot)
        await self.session.flush()
        return snapshot

    async def get_version(self, workflow_id: uuid.UUID, version: int) -> WorkflowVersion | None:
        """One version of one of this workspace's workflows."""
        statement = select(WorkflowVersion).where(
            WorkflowVersion.workspace_id == self.workspace_id,
            WorkflowVersion.workflow_id == workflow_id,
            WorkflowVersion.version == version,
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def versions(self, workflow_id: uuid.UUID) -> Sequence[WorkflowVersion]:
        """Every version of a workflow, newest first."""
        statement = (
            select(WorkflowVersion)
            .where(
                WorkflowVersion.workspace_id == self.workspace_id,
                WorkflowVersion.workflow_id == workflow_id,
            )
            .order_by(WorkflowVersion.version.desc())
        )
        return (await self.session.scalars(statement)).all()


class ExecutionRepository(WorkspaceRepository[Execution]):
    """Execution summaries and their per-node runs."""

    model = Execution

    async def list(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        status: ExecutionStatus | None = None,
        workflow_id: uuid.UUID | None = None,
    ) -> Page[Execution]:
        """Newest first, optionally filtered by status and workflow."""
        statement = self._select()
        if status is not None:
            statement = statement.where(Execution.status == status)
        if workflow_id is not None:
            statement = statement.where(Execution.workflow_id == workflow_id)
        return await self._page(statement, limit=limit, cursor=cursor)

    async def node_executions(self, execution_id: uuid.UUID) -> Sequence[NodeExecution]:
        """The node runs of one of this workspace's executions, in the order they started."""
        statement = (
            select(NodeExecution)
            .where(
                NodeExecution.workspace_id == self.workspace_id,
                NodeExecution.execution_id == execution_id,
            )
            .order_by(
                NodeExecution.started_at.nulls_last(),
                NodeExecution.node_id,
                NodeExecution.run_index,
            )
        )
        return (await self.session.scalars(statement)).all()


class CredentialRepository(WorkspaceRepository[Credential]):
    """Credentials (still encrypted: decryption belongs to the security layer)."""

    model = Credential

    async def get_by_name(self, name: str) -> Credential | None:
        """The live credential called `name` in this workspace."""
        return (await self.session.scalars(self._select().where(Credential.name == name))).first()


class VariableRepository(WorkspaceRepository[Variable]):
    """Workspace variables, as rows and as the ``vars`` mapping expressions see."""

    model = Variable

    async def get_by_key(self, key: str) -> Variable | None:
        """The variable named `key`, if set."""
        return (await self.session.scalars(self._select().where(Variable.key == key))).first()

    async def set(self, key: str, value: str) -> Variable:
        """Create or overwrite the variable `key`."""
        variable = await self.get_by_key(key)
        if variable is None:
            return await self.add(Variable(key=key, value=value))
        variable.value = value
        await self.session.flush()
        return variable

    async def as_mapping(self) -> Mapping[str, str]:
        """Every variable of the workspace, key to value."""
        statement = select(Variable.key, Variable.value).where(*self._visible())
        rows = await self.session.execute(statement)
        return {key: value for key, value in rows}
