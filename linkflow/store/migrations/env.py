"""Alembic environment: runs migrations on the connection `linkflow.store.migrate` hands in.

`linkflow.store.migrate` opens an async connection, begins the transaction
and calls Alembic through ``run_sync``, passing the sync-facing connection
in ``config.attributes["connection"]``. Alembic then sees an external
transaction and leaves committing to the caller. Without a connection (the
``alembic`` command line, with ``sqlalchemy.url`` set), this file opens one
itself; ``--sql`` (offline) mode renders the DDL for the configured URL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection, make_url

from linkflow.store.database import connect, create_engine
from linkflow.store.migrate import context_options


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **context_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str) -> None:
    engine = create_engine(url, foreign_keys=False)
    try:
        connection = await connect(engine)
        try:
            async with connection.begin():
                await connection.run_sync(_run_on)
        finally:
            await connection.close()
    finally:
        await engine.dispose()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        msg = "no connection given and no sqlalchemy.url configured"
        raise RuntimeError(msg)
    if context.is_offline_mode():
        dialect_name = make_url(url).get_backend_name()
        context.configure(
            url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
            **context_options(dialect_name),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url))


_main()
