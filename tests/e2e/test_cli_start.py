"""Starting the `linkflow` command as a newcomer does (issue 14): `--version`, the
defaults in `--help`, a busy port, and what a command loads before it works."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkflow import cli
from linkflow.config import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def linkflow(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}  # noqa: TID251 - child PATH
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def modules_loaded(*args: str, cwd: Path) -> set[str]:
    """The modules a `linkflow` command imports, from `-X importtime`'s report."""
    done = linkflow("-X", "importtime", "-m", "linkflow", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}  # fmt: skip


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


class TestVersionAndHelp:
    def test_version_prints_the_installed_version(self, tmp_path: Path) -> None:
        """`linkflow --version` prints `linkflow <version>` and exits 0."""
        from importlib.metadata import version

        done = linkflow("-m", "linkflow", "--version", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"linkflow {version('linkflow')}"

    @pytest.mark.parametrize("command", ["serve", "api"])
    def test_help_shows_the_listening_defaults_and_their_settings(
        self, command: str, tmp_path: Path
    ) -> None:
        """`serve --help` and `api --help` say what --host and --port default to."""
        done = linkflow("-m", "linkflow", command, "--help", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        text = " ".join(done.stdout.split())
        assert "Default: LINKFLOW_HOST, else 127.0.0.1" in text
        assert "Default: LINKFLOW_PORT, else 8080" in text

    def test_the_defaults_help_shows_are_the_settings_defaults(self) -> None:
        """The CLI repeats Settings' defaults (so --help loads no settings): they agree."""
        assert Settings.model_fields["host"].default == cli.DEFAULT_HOST
        assert Settings.model_fields["port"].default == cli.DEFAULT_PORT

    def test_help_loads_neither_settings_nor_logging(self, tmp_path: Path) -> None:
        """`linkflow --help` answers without pydantic-settings, structlog or the engine."""
        loaded = modules_loaded("--help", cwd=tmp_path)
        assert not loaded & {"linkflow.config", "structlog", "linkflow.engine", "asyncio"}


class TestBusyPort:
    @pytest.mark.parametrize("command", ["serve", "api"])
    def test_a_busy_port_names_the_flag_and_the_setting(
        self, command: str, busy_port: int, tmp_path: Path
    ) -> None:
        """A taken --port ends the command with one line naming --port and LINKFLOW_PORT."""
        done = linkflow("-m", "linkflow", command, "--port", str(busy_port), cwd=tmp_path,
                        LINKFLOW_DATA_DIR=str(tmp_path))  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert f"port {busy_port} on 127.0.0.1 is already in use" in done.stderr
        assert "--port or LINKFLOW_PORT" in done.stderr
        assert "Traceback" not in done.stderr

    def test_a_busy_port_from_the_environment_is_refused_the_same_way(
        self, busy_port: int, tmp_path: Path
    ) -> None:
        """LINKFLOW_PORT set to a taken port: the same readable refusal, nothing migrated."""
        done = linkflow("-m", "linkflow", "serve", cwd=tmp_path, LINKFLOW_DATA_DIR=str(tmp_path),
                        LINKFLOW_PORT=str(busy_port))  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "--port or LINKFLOW_PORT" in done.stderr
        assert not list(tmp_path.glob("linkflow.db*")), "migrated before the refusal"


class TestRunLoadsOnlyTheEngine:
    def test_run_imports_neither_the_web_app_nor_the_store(self, tmp_path: Path) -> None:
        """Regression (issue 14): `linkflow run` imported FastAPI, SQLAlchemy and the API
        through `linkflow.wiring`, tripling its start-up; it needs only the engine."""
        payload = json.dumps({"body": {"name": "Ada", "age": 36}})
        loaded = modules_loaded("run", str(EXAMPLES / "greet-adults.json"), "--input", payload,
                                cwd=tmp_path)  # fmt: skip
        assert "linkflow.engine" in loaded
        heavy = {"fastapi", "starlette", "sqlalchemy", "uvicorn", "linkflow.api", "linkflow.store"}
        assert not loaded & heavy
