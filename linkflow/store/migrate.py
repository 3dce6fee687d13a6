"""Apply, inspect and verify the database schema (Alembic, driven from code).

Invariants:
- No ``alembic.ini`` is needed: the configuration is built here, and the
  migration scripts ship inside the package.
- Every command runs on one connection inside one transaction, driven with
  ``AsyncConnection.run_sync``: it works from inside a running event loop
  (tests, the server) as well as under ``asyncio.run`` (the CLI), and a
  failed upgrade leaves the database as it was, on PostgreSQL and SQLite alike.
- On SQLite, migrations run with foreign keys off (batch migrations rebuild
  tables, and enforcement would cascade deletes through the rebuild) and
  ``PRAGMA foreign_key_check`` must come back clean before the commit.
- PostgreSQL-only indexes (`linkflow.store.models.postgresql_only`) are left
  out of the comparison on SQLite, so `check` is empty on both engines.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Final, Literal, TypedDict, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from sqlalchemy import Column, ForeignKeyConstraint, Index, MetaData, Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import Constraint, SchemaItem

from linkflow.store.database import connect, create_engine, normalize_url
from linkflow.store.errors import StoreError
from linkflow.store.models import Base, exists_on
from linkflow.store.types import JSONDocument, StrEnumType, StringArray, UTCDateTime

__all__ = [
    "MIGRATIONS_DIR",
    "SEAL_ATTRIBUTE",
    "ContextOptions",
    "alembic_config",
    "check",
    "context_options",
    "current",
    "downgrade",
    "head",
    "known",
    "revision",
    "upgrade",
]

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
SEAL_ATTRIBUTE: Final = "linkflow.seal"
"""Where a migration finds the secret box's `seal` (`Config.attributes`), when given."""

T = TypeVar("T")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic `Config` for LinkFlow's migrations, optionally bound to `url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


class ContextOptions(TypedDict):
    """The `EnvironmentContext.configure` options env.py and `check` share."""

    target_metadata: MetaData
    transactional_ddl: bool
    render_as_batch: bool
    compare_type: bool
    include_object: Callable[[SchemaItem, str | None, str, bool, SchemaItem | None], bool]
    render_item: Callable[[str, object, AutogenContext], str | Literal[False]]


def _include_object_on(
    dialect_name: str,
) -> Callable[[SchemaItem, str | None, str, bool, SchemaItem | None], bool]:
    """Leave indexes that do not exist on `dialect_name` out of autogenerate's comparison."""

    def include_object(
        obj: SchemaItem,
        _name: str | None,
        type_: str,
        reflected: bool,
        _compare_to: SchemaItem | None,
    ) -> bool:
        if type_ == "index" and not reflected and isinstance(obj, Index):
            return exists_on(obj, dialect_name)
        return True

    return include_object


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render LinkFlow's types as plain SQLAlchemy ones in new revision scripts.

    Migrations then spell out their DDL and do not change when a Python-side
    type evolves.
    """
    if type_ != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, StrEnumType):
        return f"sa.String(length={obj.length})"
    if isinstance(obj, JSONDocument):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return (
            "sa.JSON(none_as_null=True)"
            '.with_variant(postgresql.JSONB(none_as_null=True), "postgresql")'
        )
    if isinstance(obj, StringArray):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")'
    return False


def context_options(dialect_name: str) -> ContextOptions:
    """Options for `EnvironmentContext.configure` shared by env.py and `check`."""
    return ContextOptions(
        target_metadata=Base.metadata,
        # True on SQLite too: our connections emit BEGIN themselves (see
        # `linkflow.store.database`), so DDL there is transactional as well.
        transactional_ddl=True,
        render_as_batch=dialect_name == "sqlite",
        compare_type=True,
        include_object=_include_object_on(dialect_name),
        render_item=_render_item,
    )


async def _run(url: str, work: Callable[[Connection], T]) -> T:
    """Run `work` on one connection to `url`, inside one committed transaction."""
    engine = create_engine(url, foreign_keys=False)
    try:
        connection = await connect(engine)
        try:
            async with connection.begin():
                return await connection.run_sync(work)
        finally:
            await connection.close()
    finally:
        await engine.dispose()


def _command(
    action: Callable[[Config], object],
    connection: Connection,
    seal: Callable[[bytes], bytes] | None = None,
) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if seal is not None:
        config.attributes[SEAL_ATTRIBUTE] = seal
    action(config)
    if connection.dialect.name == "sqlite":
        violations = connection.execute(text("PRAGMA foreign_key_check")).all()
        if violations:
            tables = sorted({str(row[0]) for row in violations})
            msg = f"migration left broken foreign keys in {', '.join(tables)}; rolled back"
            raise StoreError(msg)


async def upgrade(
    url: str, revision: str = "head", *, seal: Callable[[bytes], bytes] | None = None
) -> None:
    """Migrate the database at `url` up to `revision` (default: the latest).

    `seal` (the secret box's `seal`) is for data migrations that must encrypt what they
    move, such as 0005 (webhook secrets out of workflow documents); one that needs it and
    has none stops with a `StoreError` saying so.

    Raises `StoreUnavailable` when the database cannot be reached.
    """
    await _run(url, partial(_command, lambda cfg: command.upgrade(cfg, revision), seal=seal))


async def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at `url` down to `revision` (default: an empty schema)."""
    await _run(url, partial(_command, lambda cfg: command.downgrade(cfg, revision)))


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current(url: str) -> str | None:
    """The revision the database at `url` is at, or None if it was never migrated."""
    return await _run(url, _current)


def head() -> str:
    """The latest revision shipped with this version of LinkFlow."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    if len(heads) != 1:
        msg = f"migrations have {len(heads)} heads ({', '.join(heads)}); merge them"
        raise StoreError(msg)
    return heads[0]


def known(revision: str) -> bool:
    """Whether this version of LinkFlow ships `revision` (a newer one's is unknown)."""
    script = ScriptDirectory.from_config(alembic_config())
    try:
        return script.get_revision(revision) is not None
    except (CommandError, ResolutionError):
        return False


def _table_name(item: Table | Column[object] | Index | Constraint) -> str:
    table = getattr(item, "table", None)
    return str(table.name) if isinstance(table, Table) else "?"


def _describe_change(diff: Sequence[object]) -> str:
    kind = diff[0]
    if kind in ("add_table", "remove_table") and isinstance(diff[1], Table):
        where = "models" if kind == "add_table" else "database"
        return f"table {diff[1].name} exists only in the {where}"
    if kind in ("add_column", "remove_column") and isinstance(diff[3], Column):
        where = "models" if kind == "add_column" else "database"
        return f"column {diff[2]}.{diff[3].name} exists only in the {where}"
    if kind in ("add_index", "remove_index") and isinstance(diff[1], Index):
        where = "models" if kind == "add_index" else "database"
        return f"index {diff[1].name} on {_table_name(diff[1])} exists only in the {where}"
    if kind in ("add_fk", "remove_fk") and isinstance(diff[1], ForeignKeyConstraint):
        where = "models" if kind == "add_fk" else "database"
        columns = ", ".join(diff[1].column_keys)
        return f"foreign key on {_table_name(diff[1])}({columns}) exists only in the {where}"
    if kind in ("add_constraint", "remove_constraint") and isinstance(diff[1], Constraint):
        where = "models" if kind == "add_constraint" else "database"
        return f"constraint {diff[1].name} on {_table_name(diff[1])} exists only in the {where}"
    if kind.__class__ is str and str(kind).startswith("modify_") and len(diff) == 7:
        _, _, table, column, _, in_database, in_models = diff
        what = str(kind).removeprefix("modify_")
        return (
            f"column {table}.{column}: {what} is {in_database!r} in the database "
            f"but {in_models!r} in the models"
        )
    return f"{kind}: {diff[1:]!r}"


def _describe(diffs: Sequence[object]) -> list[str]:
    described: list[str] = []
    for diff in diffs:
        # Column modifications come grouped in a list; everything else is a tuple.
        if isinstance(diff, list):
            described.extend(_describe_change(change) for change in diff)
        elif isinstance(diff, tuple):
            described.append(_describe_change(diff))
        else:
            described.append(repr(diff))
    return described


def _check(connection: Connection) -> list[str]:
    at = MigrationContext.configure(connection).get_current_revision()
    latest = head()
    if at != latest:
        return [f"database is at revision {at or 'base (never migrated)'}, not at head {latest}"]
    options = context_options(connection.dialect.name)
    context = MigrationContext.configure(connection, opts=dict(options))
    return _describe(compare_metadata(context, Base.metadata))


async def check(url: str) -> list[str]:
    """Differences between the models and the database at `url`, one line each.

    An empty list means the schema matches the models. A database that is not
    at the latest revision yields a single line saying which revision it is at.
    """
    return await _run(url, _check)


def _next_revision_id(config: Config) -> str:
    """Revisions are numbered 0001, 0002...; the number orders the files on disk too."""
    heads = ScriptDirectory.from_config(config).get_heads()
    numbers = [int(rev) for rev in heads if rev.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def _revision(message: str, connection: Connection) -> str:
    config = alembic_config()
    config.attributes["connection"] = connection
    script = command.revision(
        config, message=message, autogenerate=True, rev_id=_next_revision_id(config)
    )
    if script is None or isinstance(script, list):
        msg = "alembic produced no single revision script"
        raise StoreError(msg)
    return str(script.path)


async def revision(url: str, message: str) -> str:
    """Write a new revision script autogenerated against the database at `url`.

    For developers: migrate a scratch database to head, change the models,
    then call this and review the script it returns the path of.
    """
    return await _run(url, partial(_revision, message))


def _main() -> None:  # pragma: no cover - developer convenience
    usage = "usage: python -m linkflow.store.migrate {upgrade|check|revision MESSAGE} URL"
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "upgrade":
        asyncio.run(upgrade(args[1]))
    elif len(args) == 2 and args[0] == "check":
        differences = asyncio.run(check(args[1]))
        sys.stdout.write("".join(f"{line}\n" for line in differences) or "in sync\n")
        raise SystemExit(1 if differences else 0)
    elif len(args) == 3 and args[0] == "revision":
        sys.stdout.write(asyncio.run(revision(args[2], args[1])) + "\n")
    else:
        raise SystemExit(usage)


if __name__ == "__main__":  # pragma: no cover
    _main()
