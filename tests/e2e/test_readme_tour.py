"""The README's five-minute tour, run verbatim against a real `linkflow serve`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.e2e.test_serve import Serve

ROOT = Path(__file__).resolve().parents[2]


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## A five-minute tour"):]
    match = re.search(r"```bash\n(URL=.*?)```", section, re.DOTALL)
    assert match is not None, "the tour's script block is missing from README.md"
    return match.group(1)


def test_the_readme_tour_works_as_written(tmp_path: Path) -> None:
    """Register, create from an example, activate, call the webhook, see the execution."""
    server = Serve(tmp_path)
    server.start()
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # noqa: TID251 - child PATH
               "LINKFLOW_URL": server.url}  # fmt: skip
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", tour_script()], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == '{"msg":"Welcome Ada"}'
    assert lines[-1].startswith("completed [('hook', 'completed'), ('check', 'completed')")
