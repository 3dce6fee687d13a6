"""Hostile input against a real `linkflow serve`: no expression or payload freezes the
server, fails another tenant's calls or leaves an execution `running`.

- a catastrophic regex answers at once (RE2), and a long chain of work is stopped at
  the expression's time budget while `/health/live` keeps answering within a second;
- an expression that builds gigabytes in small pieces is refused in total: serve's peak
  memory stays far under 1 GB;
- values the history cannot store (2**64, a lone surrogate, 300 levels of nesting)
  fail their node with the reason; none leaves its execution running;
- webhook bodies the server cannot store (too deep) are a 422 to their caller, and
  another tenant's webhook calls made meanwhile all succeed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e._serve import Client, Serve, execution_of, poll, register, workflow

ENDED = ("completed", "failed", "cancelled", "timeout")


def one_set(expression: str, *, field: str = "value") -> dict[str, Any]:
    return {
        "name": "hostile",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "shape", "type": "set", "parameters": {"fields": {field: expression}}},
        ],
        "connections": [{"from": "start", "to": "shape"}],
    }


def run(client: Client, doc: dict[str, Any]) -> dict[str, Any]:
    flow = workflow(client, doc)
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    return execution_of(client, queued["id"], *ENDED)


def peak_rss_mib(server: Serve) -> float:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


class Prober(threading.Thread):
    """Calls `/health/live` back to back and keeps the slowest answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.slowest = 0.0
        self.calls = 0
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.done.is_set():
                started = time.monotonic()
                assert http.get(f"{self.url}/health/live").status_code == 200
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.calls += 1


def test_a_catastrophic_regex_answers_at_once(server: Serve) -> None:
    """`(a|a)*b` backtracks exponentially in Python's `re`; on RE2 it is linear."""
    client = Client(server)
    register(client)
    done = run(client, one_set("{{ ('a' * 30000) | regex_match('(a|a)*b') }}"))
    assert done["status"] == "completed", done
    assert done["output"] == [{"value": False}]


def test_a_long_expression_fails_at_its_budget_while_the_server_answers(server: Serve) -> None:
    """Bounded step by step, long in total: stopped at the time budget with the reason;
    the health probe never waits a second meanwhile."""
    client = Client(server)
    register(client)
    replace = "map('regex_replace', '(\\\\d)', '\\\\1\\\\1')"
    chain = " | ".join([replace] * 12)
    doc = one_set("{{ range(100000) | map('string') | " + chain + " | join | length }}")
    prober = Prober(server.url)
    prober.start()
    try:
        poll(lambda: prober.calls > 0, "the prober's first answer")
        done = run(client, doc)
        calls = prober.calls
        poll(lambda: prober.calls > calls, "one more answer after the run")
    finally:
        prober.done.set()
        prober.join(timeout=30)
    assert done["status"] == "failed", done
    # Which budget stops it first depends on the machine's speed: its time, or the
    # characters it builds (a fast core gets to 20M within the 0.5 s).
    message = done["error"]["message"]
    assert "ran longer than its limit" in message or "would build more than" in message
    assert prober.slowest < 1.0, prober.slowest


def test_a_memory_bomb_is_refused_before_it_takes_the_memory(server: Serve) -> None:
    client = Client(server)
    register(client)
    doc = one_set("{{ range(150) | map('string') | map('center', 9999999) | list | length }}")
    done = run(client, doc)
    assert done["status"] == "failed", done
    assert "would build more than" in done["error"]["message"]
    assert peak_rss_mib(server) < 1024


UNSTORABLE = {
    "an integer beyond 64 bits": (one_set("{{ 2 ** 64 }}"), "too large to store"),
    "a lone surrogate": (one_set("{{ '\\ud800' }}"), "not valid Unicode"),
    "300 levels of nesting": (one_set("x", field=".".join(["a"] * 300)), "nested more than"),
}


def test_unstorable_values_fail_their_node_and_leave_nothing_running(server: Serve) -> None:
    """Each fails its node, non-retryable, with the reason; cancel and retry answer as for
    any failed execution."""
    client = Client(server)
    register(client)
    for name, (doc, reason) in UNSTORABLE.items():
        done = run(client, doc)
        assert done["status"] == "failed", (name, done)
        assert done["error"]["node_id"] == "shape", (name, done)
        assert reason in done["error"]["message"], (name, done)
        assert "cannot be stored" in done["error"]["message"], (name, done)
        refused = client.call("POST", f"/api/v1/executions/{done['id']}/cancel")
        assert refused.status_code == 409, (name, refused.text)
    listed = client.ok("GET", "/api/v1/executions")["data"]
    assert {row["status"] for row in listed} == {"failed"}


def hook(client: Client, name: str) -> str:
    doc = {
        "name": name,
        "nodes": [
            {"id": "hook", "type": "webhook",
             "parameters": {"path": name, "method": "POST", "response_mode": "last_node"}},
            {"id": "shape", "type": "set",
             "parameters": {"fields": {"n": "{{ json.body.n }}"}, "keep_only_set": True}},
        ],
        "connections": [{"from": "hook", "to": "shape"}],
    }  # fmt: skip
    (found,) = workflow(client, doc, activate=True)["webhooks"]
    return str(found["url"])


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def test_another_tenants_unstorable_bodies_fail_none_of_my_calls(server: Serve) -> None:
    """While an anonymous caller posts bodies nested 250 deep (and invalid Unicode) to one
    tenant's webhook, every call of another tenant's webhook answers 200 with its own
    result; the hostile calls get a 4xx naming the problem."""
    mine, theirs = Client(server), Client(server)
    register(mine)
    eve = {"email": "eve@example.com", "password": "correct horse battery"}
    theirs.token = theirs.ok("POST", "/api/v1/auth/register", 201, json=eve)["access_token"]
    my_url, their_url = hook(mine, "mine"), hook(theirs, "theirs")
    refusals: list[httpx.Response] = []
    stop = threading.Event()

    def hostile() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                for body in (deep(250), '{"n": "\\ud800"}'):
                    headers = {"content-type": "application/json"}
                    refusals.append(http.post(their_url, content=body, headers=headers))

    attacker = threading.Thread(target=hostile, daemon=True)
    attacker.start()
    try:
        poll(lambda: len(refusals) >= 2, "the first hostile calls")
        with httpx.Client(timeout=30) as http:
            answers = [http.post(my_url, json={"n": n}) for n in range(200)]
    finally:
        stop.set()
        attacker.join(timeout=30)
    assert [a.status_code for a in answers] == [200] * 200
    assert [a.json() for a in answers] == [{"n": n} for n in range(200)]
    codes = {(r.status_code, r.json().get("code")) for r in refusals}
    assert codes == {(422, "unstorable_input"), (422, "invalid_json")}, codes
