"""The README's five-minute tour, run verbatim against a real `linkflow serve`, and the
README's claims that other files must keep true."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx

from linkflow.config import Settings
from tests.e2e._serve import Serve

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def tour_script() -> str:
    readme = README.read_text()
    section = readme[readme.index("## A five-minute tour") :]
    match = re.search(r"```bash\n(URL=.*?)```", section, re.DOTALL)
    assert match is not None, "the tour's script block is missing from README.md"
    return match.group(1)


def run_tour(server: Serve) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # noqa: TID251 - child PATH
           "LINKFLOW_URL": server.url}  # fmt: skip
    return subprocess.run(["bash", "-euo", "pipefail", "-c", tour_script()], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def assert_the_tour_went_through(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == '{"msg":"Welcome Ada"}'
    assert lines[1].startswith("completed [('hook', 'completed'), ('check', 'completed')")
    assert lines[-1] == "ada@example.com"  # step 5: the refreshed token works


def test_the_readme_tour_works_as_written_twice_in_a_row(tmp_path: Path) -> None:
    """Register, create from an example, activate, call the webhook, see the execution,
    refresh the token; run again on the same server, it logs in instead of registering
    (regression, issue 14: the taken e-mail gave five Python tracebacks)."""
    server = Serve(tmp_path)
    server.start()
    try:
        first = run_tour(server)
        second = run_tour(server)
    finally:
        server.stop()
    assert_the_tour_went_through(first)
    assert_the_tour_went_through(second)


def test_a_failing_tour_step_says_what_the_api_answered(tmp_path: Path) -> None:
    """The e-mail is taken with another password: the tour stops at the login with the
    API's status and problem, not a Python traceback."""
    server = Serve(tmp_path)
    server.start()
    try:
        taken = httpx.post(
            f"{server.url}/api/v1/auth/register",
            timeout=30,
            json={"email": "ada@example.com", "password": "another long secret"},
        )
        assert taken.status_code == 201, taken.text
        done = run_tour(server)
    finally:
        server.stop()
    assert done.returncode != 0
    assert "POST /auth/login answered 401" in done.stderr
    assert "invalid_credentials" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_readme_shows_the_example_workflow_as_it_is() -> None:
    """Regression (issue 14): the README's inline workflow lacked the example's
    `response_mode`, so it answered 202 instead of the greeting. It is the file itself."""
    readme = README.read_text()
    marker = readme.index("`examples/greet-adults.json`, the workflow of the tour")
    match = re.search(r"```json\n(.*?)```", readme[marker:], re.DOTALL)
    assert match is not None, "the README's workflow block is missing"
    example = json.loads((ROOT / "examples" / "greet-adults.json").read_text())
    assert json.loads(match.group(1)) == example


def test_the_readme_states_the_token_lifetimes_the_settings_give() -> None:
    """The README says how long tokens last and how to refresh: the numbers are the
    defaults of LINKFLOW_ACCESS_TOKEN_TTL_S and LINKFLOW_REFRESH_TOKEN_TTL_S."""
    readme = " ".join(README.read_text().split())
    access = Settings.model_fields["access_token_ttl_s"].default
    refresh = Settings.model_fields["refresh_token_ttl_s"].default
    assert f"The access token lasts {access // 60} minutes" in readme
    assert f"`LINKFLOW_ACCESS_TOKEN_TTL_S`, default {access}" in readme
    assert f"the refresh token lasts {refresh // 86400} days" in readme
    assert "POST /api/v1/auth/refresh" in readme
