"""docs/operations.md's key rotations, step by step, on real `linkflow` processes (issue 14,
item 5): nothing sealed or signed before a rotation is lost through it."""

from __future__ import annotations

import hashlib
import hmac
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e._serve import ROOT, Client, Serve, register, workflow

OPERATIONS = ROOT / "docs" / "operations.md"
OLD_SECRET_KEY = "old-secret-key-" + "s" * 40
OLD_ENCRYPTION_KEY = "b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleS0="  # 32 bytes
SIGNING_SECRET = "e2e-rotation-signing-secret"


def documented_steps(heading: str) -> list[str]:
    """The numbered steps of one section of docs/operations.md."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\d\. (.*?)(?=^\d\. |^\n|\Z)", section, flags=re.M | re.S)


def generated_key(heading: str) -> str:
    """Run step 1's command (`python -c ...`) as written, with this interpreter."""
    command = re.search(r"`(python -c .*?)`", documented_steps(heading)[0])
    assert command is not None, "step 1 shows no command"
    argv = shlex.split(command.group(1))
    done = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True,
                          timeout=30, check=True)  # fmt: skip
    return done.stdout.strip()


def rotate_keys(data_dir: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "linkflow", "rotate-keys"], cwd=data_dir, timeout=120,
        env={"PATH": "/usr/bin:/bin", "LINKFLOW_DATA_DIR": str(data_dir), **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), stamp.encode() + b"." + body,
                      hashlib.sha256).hexdigest()  # fmt: skip
    return {"content-type": "application/json", "X-LinkFlow-Timestamp": stamp,
            "X-LinkFlow-Signature": f"sha256={digest}"}  # fmt: skip


class Deployment:
    """One data dir, served by one `linkflow serve` after another (a restart per step)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: Serve | None = None

    def restart(self, **env: str) -> Serve:
        self.stop()
        self.server = Serve(self.data_dir, **env)
        self.server.start()
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def as_bearer(server: Serve, token: str) -> Client:
    client = Client(server)
    client.token = token
    return client


def check_everything_opens(server: Serve, token: str, api_key: str, state: dict[str, str],
                           call: int) -> None:  # fmt: skip
    """The credential decrypts (its test passes), the sealed webhook secret checks a
    signature, the access token and the API key authenticate."""
    client = as_bearer(server, token)
    tested = client.ok("POST", f"/api/v1/credentials/{state['credential']}/test")
    assert tested["ok"] is True, tested
    body = b'{"call": %d}' % call
    hook = httpx.post(f"{server.url}/webhooks/{state['endpoint']}", content=body,
                      headers=signed(body), timeout=30)  # fmt: skip
    assert hook.status_code == 202, hook.text
    assert as_bearer(server, api_key).call("GET", "/api/v1/workflows").status_code == 200


def test_the_documented_rotation_of_both_keys_keeps_data_and_sessions(tmp_path: Path) -> None:
    """Following both sections of docs/operations.md at once (as its last line allows):
    after step 2 old secrets open and an old session token is valid; step 3 re-seals them
    (then prints 0); after step 4 everything opens under the new keys alone, and only
    the token signed by the old secret key is refused."""
    encryption_steps = documented_steps("Rotating the encryption key")
    secret_steps = documented_steps("Rotating the secret key")
    assert "`LINKFLOW_ENCRYPTION_KEYS_PREVIOUS`" in encryption_steps[1]
    assert "`LINKFLOW_SECRET_KEYS_PREVIOUS`" in secret_steps[1]
    assert "`linkflow rotate-keys`" in encryption_steps[2]
    deployment = Deployment(tmp_path)
    before = {"LINKFLOW_SECRET_KEY": OLD_SECRET_KEY, "LINKFLOW_ENCRYPTION_KEY": OLD_ENCRYPTION_KEY}
    try:
        server = deployment.restart(**before)
        client = Client(server)
        register(client)
        old_token = client.token
        credential = client.ok("POST", "/api/v1/credentials", 201, json={
            "name": "api", "type": "bearer", "data": {"token": "t0p-secret-token"},
        })  # fmt: skip
        flow = workflow(client, {
            "name": "Signed", "connections": [],
            "nodes": [{"id": "hook", "type": "webhook", "parameters": {"secret": SIGNING_SECRET}}],
        }, activate=True)  # fmt: skip
        api_key = client.ok("POST", "/api/v1/api-keys", 201, json={
            "name": "ci", "scopes": ["workflows:read"],
        })["key"]  # fmt: skip
        state = {"credential": credential["id"],
                 "endpoint": flow["webhooks"][0]["url"].rsplit("/", 1)[1]}  # fmt: skip
        check_everything_opens(server, old_token, api_key, state, call=1)

        # Step 1: new keys, made by the documented commands.
        new_encryption_key = generated_key("Rotating the encryption key")
        new_secret_key = generated_key("Rotating the secret key")
        # Step 2: restart with the new keys current and the old ones previous.
        during = {
            "LINKFLOW_ENCRYPTION_KEY": new_encryption_key,
            "LINKFLOW_ENCRYPTION_KEYS_PREVIOUS": OLD_ENCRYPTION_KEY,
            "LINKFLOW_SECRET_KEY": new_secret_key,
            "LINKFLOW_SECRET_KEYS_PREVIOUS": OLD_SECRET_KEY,
        }
        server = deployment.restart(**during)
        check_everything_opens(server, old_token, api_key, state, call=2)
        new_token = Client(server).ok("POST", "/api/v1/auth/login", json={
            "email": "ada@example.com", "password": "correct horse battery",
        })["access_token"]  # fmt: skip
        # Step 3: rotate-keys with the same configuration, until it prints 0.
        assert "re-encrypted 2 secret(s)" in rotate_keys(tmp_path, during)
        assert "re-encrypted 0 secret(s)" in rotate_keys(tmp_path, during)
        check_everything_opens(server, old_token, api_key, state, call=3)

        # Step 4: the old keys removed.
        after = {"LINKFLOW_ENCRYPTION_KEY": new_encryption_key,
                 "LINKFLOW_SECRET_KEY": new_secret_key}  # fmt: skip
        server = deployment.restart(**after)
        check_everything_opens(server, new_token, api_key, state, call=4)
        refused = as_bearer(server, old_token).call("GET", "/api/v1/workflows")
        assert (refused.status_code, refused.json()["code"]) == (401, "invalid_token")
    finally:
        deployment.stop()


def test_rotate_keys_without_an_old_key_says_where_to_list_it(tmp_path: Path) -> None:
    """With nothing in LINKFLOW_ENCRYPTION_KEYS_PREVIOUS and no --old-key: exit 2, one line."""
    done = subprocess.run(
        [sys.executable, "-m", "linkflow", "rotate-keys"], cwd=tmp_path, timeout=120,
        env={"PATH": "/usr/bin:/bin", "LINKFLOW_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "LINKFLOW_ENCRYPTION_KEYS_PREVIOUS" in done.stderr
    assert "Traceback" not in done.stderr
