"""`linkflow rotate-keys` as an operator runs it."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NEW_KEY = base64.urlsafe_b64encode(b"n" * 32).decode()
OLD_KEY = base64.urlsafe_b64encode(b"o" * 32).decode()


def linkflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LINKFLOW_ENCRYPTION_KEY": NEW_KEY,
           "LINKFLOW_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "linkflow", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_rotate_keys_reports_what_it_moved(tmp_path: Path) -> None:
    """On a database with no secrets it moves none and says so; running again is safe."""
    done = linkflow(tmp_path, "rotate-keys", "--old-key", OLD_KEY)
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 0 secret(s)" in done.stdout


def test_a_malformed_old_key_is_refused_in_one_line(tmp_path: Path) -> None:
    """A key that is not 32 base64 bytes stops with exit code 2."""
    done = linkflow(tmp_path, "rotate-keys", "--old-key", "short")
    assert done.returncode == 2
    assert "--old-key is not 32 base64-encoded bytes" in done.stderr
