"""`linkflow admin create-user` and `linkflow admin set-plan` as a self-hoster runs them,
then `linkflow serve` on the same data dir: the admin logs in as one, the workspace is
on its plan; refusals are one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e._serve import Serve

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def linkflow(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(data_dir), "LINKFLOW_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "linkflow", *args], cwd=data_dir, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_an_admin_made_on_the_command_line_administers_the_served_instance(
    tmp_path: Path,
) -> None:
    made = linkflow(tmp_path, "admin", "create-user", "root@example.com", "--password",
                    PASSWORD, "--name", "Root", "--admin")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "created root@example.com (instance admin)" in made.stdout
    plain = linkflow(tmp_path, "admin", "create-user", "ann@example.com", "--password", PASSWORD)
    assert plain.returncode == 0, plain.stderr
    assert "instance admin" not in plain.stdout

    server = Serve(tmp_path)
    server.start()
    try:

        def login(email: str) -> dict[str, str]:
            answer = httpx.post(f"{server.url}/api/v1/auth/login", timeout=30,
                                json={"email": email, "password": PASSWORD})  # fmt: skip
            assert answer.status_code == 200, answer.text
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        root, ann = login("root@example.com"), login("ann@example.com")
        me = httpx.get(f"{server.url}/api/v1/users/me", headers=root, timeout=30).json()
        assert me["is_admin"] is True
        users = httpx.get(f"{server.url}/api/v1/admin/users", headers=root, timeout=30)
        assert {u["email"] for u in users.json()["data"]} == {"root@example.com", "ann@example.com"}
        assert (
            httpx.get(f"{server.url}/api/v1/admin/users", headers=ann, timeout=30).status_code
            == 403
        )
        slug = httpx.get(f"{server.url}/api/v1/workspaces/current", headers=ann, timeout=30).json()[
            "slug"
        ]
    finally:
        server.stop()

    assigned = linkflow(tmp_path, "admin", "set-plan", slug, "pro")
    assert assigned.returncode == 0, assigned.stderr
    assert f"workspace {slug}" in assigned.stdout
    server.start()
    try:
        standing = httpx.get(
            f"{server.url}/api/v1/billing/subscription",
            headers=login("ann@example.com"),
            timeout=30,
        ).json()
        assert (standing["plan"]["code"], standing["subscription"]["provider"]) == ("pro", None)
    finally:
        server.stop()


def test_refusals_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    assert linkflow(tmp_path, "admin", "create-user", "a@example.com", "--password",
                    PASSWORD).returncode == 0  # fmt: skip
    taken = linkflow(tmp_path, "admin", "create-user", "a@example.com", "--password", PASSWORD)
    assert (taken.returncode, taken.stderr.strip().count("\n")) == (2, 0)
    assert "email_taken" in taken.stderr
    weak = linkflow(tmp_path, "admin", "create-user", "b@example.com", "--password", "short")
    assert weak.returncode == 2
    assert "weak_password" in weak.stderr
    nowhere = linkflow(tmp_path, "admin", "set-plan", "no-such-workspace", "pro")
    assert nowhere.returncode == 2
    assert "workspace_not_found" in nowhere.stderr
