"""Webhook secrets and signatures through a real `linkflow serve` (issue 13): the secret
never comes back, ten simultaneous copies of one signed call start one execution, the
stored input has no signature, a rotated URL replaces the old one at once."""

from __future__ import annotations

import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e._serve import Client, Serve, execution_of, register, workflow

SECRET = "e2e-signing-secret-91c4"


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "X-LinkFlow-Timestamp": stamp,
            "X-LinkFlow-Signature": f"sha256={digest}"}  # fmt: skip


def test_a_signed_webhook_under_serve(server: Serve) -> None:
    """Secret write-only, replay race won once, nothing of the signature stored, rotation."""
    client = Client(server)
    register(client)
    doc = {
        "name": "Signed",
        "nodes": [{"id": "hook", "type": "webhook",
                   "parameters": {"secret": SECRET, "response_mode": "immediately"}}],
        "connections": [],
    }  # fmt: skip
    flow = workflow(client, doc, activate=True)
    for path in ("", "/export", "/versions"):
        read = client.call("GET", f"/api/v1/workflows/{flow['id']}{path}")
        assert read.status_code == 200, read.text
        assert SECRET not in read.text
    (hook,) = flow["webhooks"]
    body = b'{"order": 1}'
    headers = signed(body)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(
            lambda _: httpx.post(hook["url"], content=body, headers=headers, timeout=30),
            range(10),
        ))  # fmt: skip
    accepted = [a for a in answers if a.status_code == 202]
    refused = [a.json()["code"] for a in answers if a.status_code == 401]
    assert (len(accepted), refused) == (1, ["replayed_signature"] * 9), [a.text for a in answers]
    done = execution_of(client, accepted[0].json()["execution_id"], "completed")
    assert done["input"]["headers"]["x-linkflow-signature"] == "[redacted]"
    assert headers["X-LinkFlow-Signature"] not in str(done)
    rotated = client.ok("POST", f"/api/v1/workflows/{flow['id']}/webhooks/hook/rotate")
    body = b'{"order": 2}'
    assert httpx.post(hook["url"], content=body, headers=signed(body), timeout=30)\
        .status_code == 404  # fmt: skip
    fresh = httpx.post(rotated["url"], content=body, headers=signed(body), timeout=30)
    assert fresh.status_code == 202, fresh.text
