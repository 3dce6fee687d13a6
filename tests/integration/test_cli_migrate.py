"""`linkflow migrate` as an operator runs it: real processes, real databases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from linkflow.store import create_engine

TABLES = {
    "users", "sessions", "api_keys", "oauth_connections", "workspaces", "workspace_members",
    "workflows", "workflow_versions", "executions", "node_executions", "credentials",
    "schedules", "webhooks", "plans", "subscriptions", "usage", "audit_logs",
    "execution_events", "variables", "idempotency_keys", "execution_leases",
}  # fmt: skip


def linkflow(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-m", "linkflow", *args],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_migrate_creates_every_table_and_check_passes(
    tmp_path: Path, empty_db_url: str
) -> None:
    """On an empty database (SQLite and PostgreSQL): migrate, then --check agrees."""
    done = linkflow(tmp_path, "migrate", LINKFLOW_DATABASE_URL=empty_db_url)
    assert done.returncode == 0, done.stderr
    assert await tables(empty_db_url) >= TABLES
    checked = linkflow(tmp_path, "migrate", "--check", LINKFLOW_DATABASE_URL=empty_db_url)
    assert checked.returncode == 0, checked.stderr
    assert "models and migrations agree" in checked.stdout


def test_migrate_with_no_configuration_makes_the_embedded_sqlite_file(tmp_path: Path) -> None:
    """`linkflow migrate` on embedded defaults creates .linkflow/linkflow.db."""
    done = linkflow(tmp_path, "migrate")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".linkflow" / "linkflow.db").exists()


def test_check_on_a_database_that_was_never_migrated_fails(tmp_path: Path) -> None:
    """--check changes nothing and says the database is behind."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    done = linkflow(tmp_path, "migrate", "--check", LINKFLOW_DATABASE_URL=url)
    assert done.returncode == 1
    assert "differ" in done.stderr


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "LINKFLOW_DATABASE_URL"),
        ("mysql://root@127.0.0.1/x", "LINKFLOW_DATABASE_URL"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot connect"),
    ],
)
def test_bad_database_configuration_is_one_readable_line(
    tmp_path: Path, url: str, fragment: str
) -> None:
    """An unparseable URL or an unreachable server: exit 2, one line, no traceback."""
    done = linkflow(tmp_path, "migrate", LINKFLOW_DATABASE_URL=url)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert fragment in lines[0]
    assert "Traceback" not in done.stderr


def test_a_bad_setting_stops_with_its_name(tmp_path: Path) -> None:
    """A bad LINKFLOW_* value is reported by name."""
    done = linkflow(tmp_path, "migrate", LINKFLOW_LOG_LEVEL="loud")
    assert done.returncode == 2
    assert done.stderr.startswith("linkflow: LINKFLOW_LOG_LEVEL")
