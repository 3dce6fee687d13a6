"""The declarative base, naming convention and column mixins shared by all models.

Invariants:
- Every constraint and index has a deterministic name (the naming convention
  below, or an explicit name), so migrations can drop and alter them by name
  on both engines.
- Timestamps are `UTCDateTime` (aware UTC) and filled on the Python side, so
  that they carry microseconds on SQLite too and compare correctly as text
  there; raw SQL inserts must supply them.
- Primary keys are UUIDv7 generated on the Python side (`new_id`), except for
  the append-heavy `execution_events` (a 64-bit sequence) and `plans`.
- No ORM relationships: with asyncio, a lazy load is an error waiting to
  happen. Repositories issue explicit queries.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, MetaData, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from linkflow.store.types import UTCDateTime, enum_check_sql, new_id, utcnow

__all__ = [
    "AUDIT_ORDER",
    "NAMING_CONVENTION",
    "Base",
    "SoftDeletable",
    "Timestamped",
    "WorkspaceScoped",
    "enum_check",
    "exists_on",
    "postgresql_only",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ONLY_ON = "linkflow_only_on"

# Pushes audit columns after a model's own columns in the DDL, for readability.
AUDIT_ORDER = 100


class Base(DeclarativeBase):
    """Root of every LinkFlow model; `Base.metadata` is what migrations compare against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        uuid.UUID: Uuid(),
        datetime: UTCDateTime(),
        str: Text(),
    }


class WorkspaceScoped(Base):
    """A row that belongs to exactly one workspace (and dies with it).

    `WorkspaceRepository` relies on `id`, `workspace_id` and `created_at`:
    it filters every query by `workspace_id` and pages by `(created_at, id)`.
    """

    __abstract__ = True

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id, sort_order=-2)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), sort_order=-1
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)


class SoftDeletable:
    """Mixin: a row whose deletion only sets `deleted_at`; repositories hide such rows."""

    deleted_at: Mapped[datetime | None] = mapped_column(default=None, sort_order=AUDIT_ORDER + 2)


class Timestamped:
    """Mixin: `updated_at`, refreshed by the ORM on every UPDATE it issues."""

    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, sort_order=AUDIT_ORDER + 1
    )


def postgresql_only(index: Index) -> Index:
    """Mark `index` as created on PostgreSQL only (GIN and other PostgreSQL-only kinds).

    `ddl_if` keeps ``metadata.create_all`` from emitting it elsewhere; the
    ``info`` entry is what migrations and autogenerate comparison read (see
    `exists_on`), since Alembic does not look at `ddl_if`.
    """
    index.info[_ONLY_ON] = "postgresql"
    return index.ddl_if(dialect="postgresql")


def exists_on(index: Index, dialect_name: str) -> bool:
    """Whether `index` belongs to the schema on the engine named `dialect_name`."""
    only_on = index.info.get(_ONLY_ON)
    return only_on is None or only_on == dialect_name


def enum_check(column: str, enum_cls: type[enum.StrEnum]) -> CheckConstraint:
    """A ``CHECK`` named ``ck_<table>_<column>`` keeping `column` within `enum_cls`."""
    return CheckConstraint(enum_check_sql(column, enum_cls), name=column)
