"""An operator's commands: `linkflow backup`, `linkflow restore` and `linkflow doctor`.

`linkflow.cli` adds them to its app (`app.add_typer(operations)`), as commands of
their own; they fail the way every command does (one line on stderr, exit code 2),
through its helpers. Like there, everything beyond Typer is imported by the command
that needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from linkflow.config import Settings

__all__ = ["operations"]

operations = typer.Typer()

POSTGRES_BACKUPS = 'docs/operations.md, "Backups"'


def _database_file(settings: Settings, command: str) -> Path:
    """The embedded SQLite file, or a one-line failure for any other database."""
    from linkflow.cli import _fail
    from linkflow.store import StoreConfigError
    from linkflow.store.sqlite_backup import database_file

    try:
        path = database_file(settings.effective_database_url)
    except StoreConfigError as error:
        raise _fail(f"LINKFLOW_DATABASE_URL: {error}") from None
    if path is None:
        raise _fail(
            f"linkflow {command} works on the embedded SQLite database; LINKFLOW_DATABASE_URL "
            f"names another: use pg_dump and pg_restore ({POSTGRES_BACKUPS})"
        )
    return path


@operations.command()
def backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write (replaced if there).")],
) -> None:
    """Back up the embedded SQLite database and the blobs to FILE, while LinkFlow runs.

    FILE holds every workflow, credential (sealed), schedule and execution as of one
    moment, and the blobs of a filesystem blob store. It does not hold the keys: keep
    the data dir's `encryption_key` and `secret_key` files (or LINKFLOW_ENCRYPTION_KEY
    and LINKFLOW_SECRET_KEY) safe apart from it; credentials open only with them.
    For PostgreSQL use pg_dump (docs/operations.md).
    """
    from linkflow.cli import _fail, _settings
    from linkflow.services.backups import create_backup
    from linkflow.services.errors import LinkFlowError
    from linkflow.store import StoreError
    from linkflow.wiring.inventory import blob_directory, key_inventory

    settings = _settings(settle_keys=False)
    database = _database_file(settings, "backup")
    blobs = blob_directory(settings)
    store = "filesystem" if blobs else str(settings.blob_url)
    try:
        manifest = create_backup(file, database=database, blobs=blobs, blob_store=store)
    except (LinkFlowError, StoreError) as error:
        raise _fail(str(error)) from None
    except OSError as error:
        raise _fail(f"cannot write the backup {file}: {error.strerror or error}") from None
    counts = ", ".join(f"{count} {name}" for name, count in manifest.counts.items())
    typer.echo(f"backup written to {file}: {counts}; {manifest.blobs_carried} blob(s)"
               + ("" if blobs else f" (blobs stay in {settings.blob_url})"))  # fmt: skip
    keys = key_inventory(settings)
    typer.echo("not in it, keep apart from it: the encryption key "
               f"({keys.encryption_key or 'none yet'}; the backup needs key id(s) "
               f"{', '.join(sorted(manifest.key_ids)) or '(none)'}) and the secret key "
               f"({keys.secret_key or 'none yet'})")  # fmt: skip


@operations.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A file `linkflow backup` wrote.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a database that holds data (kept aside).")
    ] = False,
    without_keys: Annotated[
        bool,
        typer.Option(
            "--without-keys",
            help="Restore although the configured keys cannot open the backup's secrets.",
        ),
    ] = False,
) -> None:
    """Restore a backup into the data dir (LINKFLOW_DATA_DIR), with LinkFlow stopped.

    Put the old `encryption_key` and `secret_key` files in the data dir first (or set
    LINKFLOW_ENCRYPTION_KEY and LINKFLOW_SECRET_KEY): a restore whose keys cannot open
    the backup's credentials is refused. A database that holds data is replaced only
    with --replace, and kept aside as linkflow.db.replaced-<time>.
    """
    from linkflow.cli import _fail, _settings
    from linkflow.services.backups import restore_backup
    from linkflow.services.errors import LinkFlowError
    from linkflow.store import StoreError
    from linkflow.store import migrate as store_migrate
    from linkflow.store.sqlite_lock import DatabaseLock
    from linkflow.wiring.inventory import blob_directory, key_inventory

    settings = _settings(settle_keys=False)
    database = _database_file(settings, "restore")
    keys = key_inventory(settings)
    try:
        with DatabaseLock(database, exclusive=True):
            restored = restore_backup(
                file, database=database, blobs=blob_directory(settings),
                known_revision=store_migrate.known, key_ids=keys.encryption_key_ids,
                without_keys=without_keys, replace=replace,
            )  # fmt: skip
    except (LinkFlowError, StoreError) as error:
        raise _fail(str(error)) from None
    except OSError as error:
        raise _fail(f"cannot restore into {database.parent}: {error.strerror or error}") from None
    manifest = restored.manifest
    counts = ", ".join(f"{count} {name}" for name, count in manifest.counts.items())
    typer.echo(f"restored {file} (taken {manifest.created_at}) into {database}: {counts}; "
               f"{restored.blobs_written} blob(s) written")  # fmt: skip
    if restored.replaced is not None:
        typer.echo(f"the database that was there is kept as {restored.replaced}")
    if restored.unopenable_key_ids:
        lost = ", ".join(sorted(restored.unopenable_key_ids))
        typer.echo(f"warning: secrets sealed with key id(s) {lost} do not open with the "
                   "configured keys: enter those credentials again", err=True)  # fmt: skip
    if manifest.schema_revision != store_migrate.head():
        typer.echo(f"its schema is at revision {manifest.schema_revision}: `linkflow serve` "
                   "migrates it at start (in production run `linkflow migrate`)")  # fmt: skip


@operations.command()
def doctor() -> None:
    """Show what this configuration would connect to, and whether each part answers.

    The data dir, the database (its schema, and whether the keys open its credentials),
    Redis, the blob store, the OTLP endpoint, the keys. Creates and changes nothing.
    Exit code 1 when a required part fails (a warning is not a failure).
    """
    import asyncio
    import sys

    from rich.console import Console
    from rich.table import Table

    from linkflow.cli import _settings
    from linkflow.wiring.doctor import State, examine

    settings = _settings(settle_keys=False)
    findings = asyncio.run(examine(settings))
    table = Table("part", "would use", "state", "", box=None, pad_edge=False)
    styles = {State.OK: "green", State.FAILED: "bold red", State.WARNING: "yellow",
              State.UNSET: "dim"}  # fmt: skip
    for finding in findings:
        table.add_row(finding.part, finding.target,
                      f"[{styles[finding.state]}]{finding.state}[/]", finding.detail)  # fmt: skip
    # Into a file or a pipe, one line per part (grep-able); on a terminal, its width.
    console = Console(width=None if sys.stdout.isatty() else 240)
    console.print(f"LinkFlow ({settings.env}) with this configuration:")
    console.print(table)
    failed = [finding.part for finding in findings if finding.state is State.FAILED]
    if failed:
        console.print(f"[bold red]not ready:[/] {', '.join(failed)} failed")
        raise typer.Exit(1)
    console.print("[green]every required part answers[/]")
