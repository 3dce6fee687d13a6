"""Workflows: create, change (a new version whenever the document changes), list,
clone, activate and deactivate, import and export.

Invariants:
- every stored document was validated by the engine; problems come back as
  `Invalid` with one field problem per engine problem, naming the node;
- `workflows.version` is the newest `workflow_versions.version`, and a version
  row never changes: an execution runs exactly the version it recorded;
- a workflow has one `webhooks` row per webhook node, whatever its status
  (`linkflow.services.webhook_endpoints`): a random id (its public URL), kept
  across edits, deactivation and activation until rotated, and the node's
  sealed signing secret, which the document never holds;
- an active workflow has one `schedules` row per schedule trigger;
  deactivation removes them.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    TextClause,
    delete,
    exists,
    func,
    literal,
    select,
    text,
    update,
)

from linkflow.engine import CompiledWorkflow, Engine, InvalidWorkflow
from linkflow.nodes.polling import PollingTrigger
from linkflow.scheduler.timing import next_fire
from linkflow.security.rbac import Permission
from linkflow.security.secretbox import SecretBox
from linkflow.services import audit
from linkflow.services._paging import Page, ordinal_page, page
from linkflow.services.context import Actor, WorkspaceAccess
from linkflow.services.errors import FieldProblem, Invalid, NotFound
from linkflow.services.plan_limits import Limit
from linkflow.services.plans import PlanLimits
from linkflow.services.webhook_endpoints import (
    SecretChange,
    sealed_nodes,
    sync_webhooks,
    webhook_row,
)
from linkflow.store import (
    Credential,
    Database,
    Schedule,
    ScheduleStatus,
    Webhook,
    Workflow,
    WorkflowStatus,
    WorkflowVersion,
)

__all__ = ["WorkflowChanges", "WorkflowDocumentIn", "WorkflowService"]

DOCUMENT_FIELDS = ("nodes", "connections", "settings")


@dataclass(frozen=True, slots=True)
class WorkflowDocumentIn:
    name: str
    nodes: list[dict[str, Any]]
    connections: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WorkflowChanges:
    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    nodes: list[dict[str, Any]] | None = None
    connections: list[dict[str, Any]] | None = None
    settings: dict[str, Any] | None = None
    message: str = ""


def problems_of(invalid: InvalidWorkflow) -> list[FieldProblem]:
    """Engine problems as field problems: `nodes.<node id>.<field>`."""
    out = []
    for problem in invalid.problems:
        where = "body"
        if problem.node_id:
            where += f".nodes.{problem.node_id}"
        if problem.field:
            where += f".{problem.field}"
        out.append(FieldProblem(where, problem.message, problem.code))
    return out


class WorkflowService:
    def __init__(
        self,
        database: Database,
        engine: Engine,
        box: SecretBox,
        on_triggers_changed: Callable[[], None] | None = None,
        limits: PlanLimits | None = None,
    ) -> None:
        self.database = database
        self.engine = engine
        self.box = box
        self.limits = limits
        """Checks the plan's active-workflow limit at activation (None: no limit)."""
        self._triggers_changed = on_triggers_changed or (lambda: None)

    def compile(self, name: str, nodes: Any, connections: Any, settings: Any) -> CompiledWorkflow:
        """Validate a document with the engine; `Invalid` lists every problem with its node."""
        document = {"name": name, "nodes": nodes, "connections": connections, "settings": settings}
        try:
            return self.engine.compile(document)
        except InvalidWorkflow as invalid:
            raise Invalid(
                f"the workflow has {len(invalid.problems)} problem(s)",
                code="invalid_workflow", errors=problems_of(invalid),
            ) from None  # fmt: skip

    async def create(
        self, access: WorkspaceAccess, actor: Actor, doc: WorkflowDocumentIn,
        inherited: Mapping[str, bytes] | None = None,
    ) -> Workflow:  # fmt: skip
        """A new draft; its webhook nodes' plain secrets are sealed away (`inherited`:
        sealed secrets by node id, for nodes that say `{"sealed": true}`)."""
        access.require(Permission.WORKFLOWS_WRITE)
        nodes, secrets = sealed_nodes(doc.nodes)
        compiled = self.compile(doc.name, nodes, doc.connections, doc.settings)
        async with self.database.transaction() as session:
            workflow = Workflow(
                id=uuid.uuid4(), workspace_id=access.workspace_id, name=doc.name,
                description=doc.description, nodes=nodes, connections=doc.connections,
                settings=doc.settings, tags=doc.tags, version=1,
                status=WorkflowStatus.DRAFT, created_by_id=actor.user_id,
                updated_by_id=actor.user_id,
            )  # fmt: skip
            session.add(workflow)
            await session.flush()
            session.add(_version_of(workflow, "created", actor))
            await sync_webhooks(session, self.box, workflow, compiled, secrets, inherited)
            await audit.record(session, actor, "workflow.created", "workflow", workflow.id,
                               workspace_id=access.workspace_id,
                               new={"name": doc.name, "version": 1})  # fmt: skip
        return workflow

    async def import_document(
        self, access: WorkspaceAccess, actor: Actor, doc: WorkflowDocumentIn
    ) -> Workflow:
        """Create from an exported document: credential names become this workspace's ids."""
        by_name = {
            name: ref for ref, name in (await self._credential_names(access.workspace_id)).items()
        }
        nodes = []
        for node in doc.nodes:
            slots = node.get("credentials") or {}
            if isinstance(slots, dict) and slots:
                node = {**node, "credentials": {k: by_name.get(v, v) for k, v in slots.items()}}
            nodes.append(node)
        imported = WorkflowDocumentIn(
            name=doc.name, nodes=nodes, connections=doc.connections, settings=doc.settings,
            description=doc.description, tags=doc.tags,
        )  # fmt: skip
        return await self.create(access, actor, imported)

    async def get(self, access: WorkspaceAccess, workflow_id: uuid.UUID) -> Workflow:
        access.require(Permission.WORKFLOWS_READ)
        async with self.database.session() as session:
            return await _get(session, access.workspace_id, workflow_id)

    async def list_page(
        self,
        access: WorkspaceAccess,
        *,
        limit: int,
        cursor: str | None,
        status: WorkflowStatus | None = None,
        tag: str | None = None,
        search: str | None = None,
    ) -> Page[Workflow]:
        access.require(Permission.WORKFLOWS_READ)
        statement = select(Workflow).where(
            Workflow.workspace_id == access.workspace_id, Workflow.deleted_at.is_(None)
        )
        if status is not None:
            statement = statement.where(Workflow.status == status)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(
                func.lower(Workflow.name).like(f"%{escaped.lower()}%", escape="\\")
            )
        if tag is not None:
            statement = statement.where(_has_tag(self.database.dialect, tag))
        async with self.database.session() as session:
            result: Page[Workflow] = await page(
                session, cast(Any, statement), created_at=Workflow.created_at,
                row_id=Workflow.id, limit=limit, cursor=cursor)  # fmt: skip
        return result

    async def update(
        self, access: WorkspaceAccess, actor: Actor, workflow_id: uuid.UUID,
        changes: WorkflowChanges,
    ) -> Workflow:  # fmt: skip
        access.require(Permission.WORKFLOWS_WRITE)
        async with self.database.transaction() as session:
            workflow = await _get(session, access.workspace_id, workflow_id)
            old = audit.snapshot(workflow, ("name", "version", "status"))
            document = {f: getattr(changes, f) for f in DOCUMENT_FIELDS}
            new_document = {f: v for f, v in document.items() if v is not None}
            # Sealed first, so that a document differing only by a secret's value is no
            # new version (secrets are not part of the document).
            nodes, secrets = sealed_nodes(new_document.get("nodes", workflow.nodes))
            if "nodes" in new_document:
                new_document["nodes"] = nodes
            changed = any(getattr(workflow, f) != v for f, v in new_document.items())
            name = changes.name if changes.name is not None else workflow.name
            merged = {f: new_document.get(f, getattr(workflow, f)) for f in DOCUMENT_FIELDS}
            compiled = self.compile(
                name, merged["nodes"], merged["connections"], merged["settings"]
            )
            for key in ("name", "description", "tags"):
                if getattr(changes, key) is not None:
                    setattr(workflow, key, getattr(changes, key))
            previous = workflow.nodes
            if changed:
                for key, value in merged.items():
                    setattr(workflow, key, value)
                workflow.version += 1
                session.add(_version_of(workflow, changes.message, actor))
            workflow.updated_by_id = actor.user_id
            workflow.updated_at = datetime.now(UTC)
            await sync_webhooks(session, self.box, workflow, compiled, secrets)
            self._triggers_changed()
            if changed and workflow.status is WorkflowStatus.ACTIVE:
                await self._register_schedules(session, workflow, compiled, previous)
            new = audit.snapshot(workflow, ("name", "version", "status"))
            await audit.record(session, actor, "workflow.updated", "workflow", workflow.id,
                               workspace_id=access.workspace_id, old=old, new=new)  # fmt: skip
        return workflow

    async def delete(self, access: WorkspaceAccess, actor: Actor, workflow_id: uuid.UUID) -> None:
        access.require(Permission.WORKFLOWS_WRITE)
        async with self.database.transaction() as session:
            workflow = await _get(session, access.workspace_id, workflow_id)
            await _remove_triggers(session, workflow.id)
            await session.execute(delete(Webhook).where(Webhook.workflow_id == workflow.id))
            self._triggers_changed()
            workflow.deleted_at = datetime.now(UTC)
            workflow.status = WorkflowStatus.INACTIVE
            await audit.record(session, actor, "workflow.deleted", "workflow", workflow.id,
                               workspace_id=access.workspace_id,
                               old={"name": workflow.name})  # fmt: skip

    async def clone(
        self, access: WorkspaceAccess, actor: Actor, workflow_id: uuid.UUID, name: str | None
    ) -> Workflow:
        source = await self.get(access, workflow_id)
        doc = WorkflowDocumentIn(
            name=name or f"{source.name} (copy)", nodes=source.nodes,
            connections=source.connections, settings=source.settings,
            description=source.description, tags=list(source.tags or []),
        )  # fmt: skip
        async with self.database.session() as session:
            rows = await session.scalars(select(Webhook).where(
                Webhook.workflow_id == source.id, Webhook.is_test.is_(False)))  # fmt: skip
            inherited = {row.node_id: row.secret_encrypted for row in rows
                         if row.secret_encrypted is not None}  # fmt: skip
        return await self.create(access, actor, doc, inherited)

    async def set_active(
        self, access: WorkspaceAccess, actor: Actor, workflow_id: uuid.UUID, active: bool
    ) -> Workflow:
        """Activate (register its triggers; refused if invalid) or deactivate."""
        access.require(Permission.WORKFLOWS_WRITE)
        async with self.database.transaction() as session:
            workflow = await _get(session, access.workspace_id, workflow_id)
            if active:
                compiled = self.compile(workflow.name, workflow.nodes, workflow.connections,
                                        workflow.settings)  # fmt: skip
                if not compiled.triggers:
                    raise Invalid("a workflow needs a trigger to be activated",
                                  code="no_trigger")  # fmt: skip
                if self.limits is not None and workflow.status is not WorkflowStatus.ACTIVE:
                    await self.limits.check(session, access.workspace_id, Limit.ACTIVE_WORKFLOWS)
                await sync_webhooks(session, self.box, workflow, compiled,
                                    _kept_secrets(workflow.nodes))  # fmt: skip
                await self._register_schedules(session, workflow, compiled)
                workflow.status = WorkflowStatus.ACTIVE
                workflow.activated_at = datetime.now(UTC)
            else:
                await _remove_triggers(session, workflow.id)
                workflow.status = WorkflowStatus.INACTIVE
            action = "workflow.activated" if active else "workflow.deactivated"
            await audit.record(session, actor, action, "workflow", workflow.id,
                               workspace_id=access.workspace_id)  # fmt: skip
        self._triggers_changed()
        return workflow

    async def _register_schedules(
        self, session: Any, workflow: Workflow, compiled: CompiledWorkflow,
        previous: Sequence[Mapping[str, Any]] = (),
    ) -> None:  # fmt: skip
        """Make the schedule rows match the workflow's schedule triggers, keeping what
        belongs to a row: its pause, input and API changes. A schedule's timing follows
        its node only when the node's own timing changed from `previous` (the nodes
        before this edit). (Webhook rows follow every save: `sync_webhooks`.)"""
        self._triggers_changed()
        specs = [compiled.nodes[node_id].spec for node_id in compiled.triggers]
        specs = [spec for spec in specs if not spec.disabled]
        before = {node["id"]: node.get("parameters") or {} for node in previous}
        timings = {spec.id: (_timing(spec.parameters), spec.parameters)
                   for spec in specs if spec.type == "schedule"}  # fmt: skip
        existing = {row.node_id: row for row in await session.scalars(
            select(Schedule).where(Schedule.workflow_id == workflow.id)
        )}  # fmt: skip
        for node_id, (timing, params) in timings.items():
            row = existing.get(node_id)
            if row is None:
                session.add(_schedule_row(workflow, node_id, params))
            elif _timing(before.get(node_id, {})) != timing:
                row.cron, row.interval_s, row.timezone = timing
                # Shown at once, as the scheduler would count it; a paused one has none.
                row.next_run_at = (_first_fire(*timing) if row.status is ScheduleStatus.ACTIVE
                                   else None)  # fmt: skip
        polls = {spec.id: spec.parameters for spec in specs
                 if isinstance(compiled.nodes[spec.id].node, PollingTrigger)}  # fmt: skip
        for node_id, params in polls.items():
            _sync_poll(session, workflow, node_id, existing.get(node_id), params,
                       before.get(node_id))  # fmt: skip
        for node_id, row in existing.items():
            if node_id not in timings and node_id not in polls:
                await session.delete(row)

    async def arm_test_webhooks(
        self, access: WorkspaceAccess, actor: Actor, workflow_id: uuid.UUID
    ) -> builtins.list[Webhook]:
        """Test URLs for the workflow's webhook triggers, active or not: each serves the
        next call only, with the workflow's current version."""
        access.require(Permission.WORKFLOWS_EXECUTE)
        async with self.database.transaction() as session:
            workflow = await _get(session, access.workspace_id, workflow_id)
            compiled = self.compile(workflow.name, workflow.nodes, workflow.connections,
                                    workflow.settings)  # fmt: skip
            await session.execute(
                delete(Webhook).where(Webhook.workflow_id == workflow.id, Webhook.is_test)
            )
            await sync_webhooks(session, self.box, workflow, compiled,
                                _kept_secrets(workflow.nodes))  # fmt: skip
            secrets = {row.node_id: row.secret_encrypted for row in await session.scalars(
                select(Webhook).where(Webhook.workflow_id == workflow.id,
                                      Webhook.is_test.is_(False)))}  # fmt: skip
            rows = [
                webhook_row(
                    workflow, node_id, compiled.nodes[node_id].spec.parameters,
                    sealed=secrets.get(node_id), test=True,
                )
                for node_id in compiled.triggers
                if compiled.nodes[node_id].spec.type == "webhook"
            ]
            if not rows:
                raise Invalid("the workflow has no webhook trigger", code="no_webhook_trigger")
            session.add_all(rows)
        self._triggers_changed()
        return rows

    async def rotate_webhook(
        self, access: WorkspaceAccess, actor: Actor, workflow_id: uuid.UUID, node_id: str
    ) -> Webhook:
        """Give a webhook node's endpoint a new random id: the old URL stops answering
        (and the node's test URL, if armed, is dropped). Secret and counts stay."""
        access.require(Permission.WORKFLOWS_WRITE)
        async with self.database.transaction() as session:
            workflow = await _get(session, access.workspace_id, workflow_id)
            compiled = self.compile(workflow.name, workflow.nodes, workflow.connections,
                                    workflow.settings)  # fmt: skip
            await sync_webhooks(session, self.box, workflow, compiled,
                                _kept_secrets(workflow.nodes))  # fmt: skip
            await session.flush()
            hooks = {row.is_test: row for row in await session.scalars(select(Webhook).where(
                Webhook.workflow_id == workflow.id, Webhook.node_id == node_id))}  # fmt: skip
            live = hooks.get(False)
            if live is None:
                raise NotFound(f"workflow {workflow_id} has no webhook node {node_id!r}",
                               code="webhook_not_found")  # fmt: skip
            if True in hooks:
                await session.delete(hooks[True])
            old_id, new_id = live.id, uuid.uuid4()
            await session.execute(update(Webhook).where(Webhook.id == old_id).values(id=new_id))
            await audit.record(session, actor, "workflow.webhook_rotated", "workflow",
                               workflow.id, workspace_id=access.workspace_id,
                               new={"node_id": node_id})  # fmt: skip
            session.expunge(live)
            live.id = new_id
        self._triggers_changed()
        return live

    async def webhooks_of(
        self, access: WorkspaceAccess, workflow_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, builtins.list[Webhook]]:
        """The live webhook rows of these workflows (of this workspace), by workflow."""
        out: dict[uuid.UUID, builtins.list[Webhook]] = {}
        if not workflow_ids:
            return out
        async with self.database.session() as session:
            rows = await session.scalars(select(Webhook).where(
                Webhook.workspace_id == access.workspace_id,
                Webhook.workflow_id.in_(list(workflow_ids)), Webhook.is_test.is_(False),
            ))  # fmt: skip
            for row in rows:
                out.setdefault(row.workflow_id, []).append(row)
        return out

    async def versions(
        self, access: WorkspaceAccess, workflow_id: uuid.UUID
    ) -> builtins.list[WorkflowVersion]:
        access.require(Permission.WORKFLOWS_READ)
        async with self.database.session() as session:
            await _get(session, access.workspace_id, workflow_id)
            statement = (
                select(WorkflowVersion)
                .where(WorkflowVersion.workflow_id == workflow_id)
                .order_by(WorkflowVersion.version.desc())
            )
            return list((await session.scalars(statement)).all())

    async def versions_page(
        self, access: WorkspaceAccess, workflow_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> Page[WorkflowVersion]:
        """One page of the workflow's versions, newest first."""
        access.require(Permission.WORKFLOWS_READ)
        statement = select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)
        async with self.database.session() as session:
            await _get(session, access.workspace_id, workflow_id)
            return await ordinal_page(
                session, cast(Any, statement), position=WorkflowVersion.version, limit=limit,
                cursor=cursor, descending=True,
            )  # fmt: skip

    async def version(
        self, access: WorkspaceAccess, workflow_id: uuid.UUID, version: int
    ) -> WorkflowVersion:
        for row in await self.versions(access, workflow_id):
            if row.version == version:
                return row
        raise NotFound(f"workflow {workflow_id} has no version {version}",
                       code="version_not_found")  # fmt: skip

    async def export(self, access: WorkspaceAccess, workflow_id: uuid.UUID) -> dict[str, Any]:
        """The contract's document, credentials named instead of referenced by id."""
        workflow = await self.get(access, workflow_id)
        names = await self._credential_names(access.workspace_id)
        nodes = []
        for node in workflow.nodes:
            slots = cast(dict[str, str], node.get("credentials") or {})
            exported = {slot: names.get(ref, ref) for slot, ref in slots.items()}
            nodes.append({**node, "credentials": exported} if slots else dict(node))
        return {"name": workflow.name, "description": workflow.description,
                "tags": list(workflow.tags or []), "nodes": nodes,
                "connections": workflow.connections, "settings": workflow.settings}  # fmt: skip

    async def _credential_names(self, workspace_id: uuid.UUID) -> dict[str, str]:
        async with self.database.session() as session:
            rows = await session.execute(
                select(Credential.id, Credential.name).where(
                    Credential.workspace_id == workspace_id, Credential.deleted_at.is_(None)
                )
            )
            return {str(row_id): name for row_id, name in rows}


def _has_tag(dialect: str, tag: str) -> ColumnElement[bool] | TextClause:
    """`tag` is among the workflow's tags: an array on PostgreSQL, a JSON list on SQLite."""
    if dialect == "postgresql":
        return text("workflows.tags @> ARRAY[:tag]::text[]").bindparams(tag=tag)
    return exists(
        select(literal(1)).select_from(func.json_each(Workflow.tags)).where(
            text("json_each.value = :tag").bindparams(tag=tag)
        )
    )


async def _get(session: Any, workspace_id: uuid.UUID, workflow_id: uuid.UUID) -> Workflow:
    workflow: Workflow | None = (
        await session.scalars(
            select(Workflow).where(
                Workflow.id == workflow_id,
                Workflow.workspace_id == workspace_id,
                Workflow.deleted_at.is_(None),
            )
        )
    ).one_or_none()
    if workflow is None:
        raise NotFound(f"there is no workflow {workflow_id}", code="workflow_not_found")
    return workflow


def _version_of(workflow: Workflow, message: str, actor: Actor) -> WorkflowVersion:
    return WorkflowVersion(
        workspace_id=workflow.workspace_id, workflow_id=workflow.id, version=workflow.version,
        nodes=workflow.nodes, connections=workflow.connections, settings=workflow.settings,
        message=message, created_by_id=actor.user_id,
    )  # fmt: skip


def _kept_secrets(nodes: Sequence[Mapping[str, Any]]) -> dict[str, SecretChange]:
    """A stored document's secrets: each sealed one kept (stored documents hold no other)."""
    return sealed_nodes(nodes)[1]


def _timing(params: Mapping[str, Any]) -> tuple[str | None, int | None, str]:
    return params.get("cron"), params.get("interval_s"), params.get("timezone") or "UTC"


def _schedule_row(workflow: Workflow, node_id: str, params: Mapping[str, Any]) -> Schedule:
    cron, interval_s, timezone = _timing(params)
    return Schedule(
        workspace_id=workflow.workspace_id, workflow_id=workflow.id, node_id=node_id,
        cron=cron, interval_s=interval_s, timezone=timezone,
        next_run_at=_first_fire(cron, interval_s, timezone),
    )  # fmt: skip


def _sync_poll(
    session: Any, workflow: Workflow, node_id: str, row: Schedule | None,
    params: Mapping[str, Any], before: Mapping[str, Any] | None,
) -> None:  # fmt: skip
    """A polling trigger's row (`scheduler.polling`): added due at once, so that its
    first poll, which records where the items end, comes within a tick of activation.
    When the node's parameters change, its cursor starts over (it may be another
    column's, of another query)."""
    interval_s = int(params.get("interval_s") or 60)
    if row is None:
        session.add(Schedule(
            workspace_id=workflow.workspace_id, workflow_id=workflow.id, node_id=node_id,
            interval_s=interval_s, polling=True, next_run_at=datetime.now(UTC),
        ))  # fmt: skip
    elif before is not None and dict(before) != dict(params):
        row.interval_s, row.poll_cursor, row.polling = interval_s, None, True
        row.next_run_at = datetime.now(UTC) if row.status is ScheduleStatus.ACTIVE else None


def _first_fire(cron: str | None, interval_s: int | None, timezone: str) -> datetime:
    """When a schedule activated now fires first: stored at once, so `next_run_at` is not
    null until the first tick (the scheduler fires it then, as it would have counted)."""
    return next_fire(datetime.now(UTC), cron=cron, interval_s=interval_s, timezone=timezone)


async def _remove_triggers(session: Any, workflow_id: uuid.UUID) -> None:
    """Deactivation: schedules go; webhook rows stay (their ids and secrets), unanswered
    while the workflow is not active."""
    await session.execute(delete(Schedule).where(Schedule.workflow_id == workflow_id))
