"""The mongodb node under `linkflow serve`, with its credential stored through the API,
against the session's fake MongoDB server (tests/_mongo_wire.py) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._mongo_wire import FakeMongo
from tests.conftest import MONGO_PASSWORD, MONGO_USER
from tests.e2e._serve import Client, Serve, register
from tests.e2e.test_serve_integrations import checked, logs_text, run, store


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One serve for the module, loopback allowed (the fake server is local)."""
    server = Serve(tmp_path_factory.mktemp("serve-nosql"), LINKFLOW_HTTP_ALLOW_PRIVATE="true")
    server.start()
    try:
        client = Client(server)
        register(client)
        yield client
    finally:
        server.stop()


def test_a_workflow_inserts_items_and_finds_them_with_a_stored_credential(
    served: Client, mongo_server: FakeMongo
) -> None:
    """The credential tests by ping and reads back masked; items go in and come out; the
    history never holds the password."""
    uri = f"mongodb://{MONGO_USER}:{MONGO_PASSWORD}@{mongo_server.address}/serve_shop"
    credential = store(served, "docs", "mongodb", {"connection_string": uri})
    assert credential["data"]["connection_string"] == "••••••"
    assert checked(served, credential) == {
        "ok": True, "message": f"ping answered by {mongo_server.address} (database serve_shop)",
    }  # fmt: skip
    done = run(served, [
        {"id": "save", "type": "mongodb", "credentials": {"mongodb": "docs"},
         "parameters": {"operation": "insert", "collection": "signups"}},
        {"id": "read", "type": "mongodb", "credentials": {"mongodb": "docs"},
         "parameters": {"operation": "find", "collection": "signups",
                        "filter": {"plan": "{{ json.plan }}"}, "projection": {"_id": 0}}},
    ], [{"email": "a@x", "plan": "pro"}, {"email": "b@x", "plan": "free"}])  # fmt: skip
    assert done["status"] == "completed", done["error"]
    assert done["output"] == [{"email": "a@x", "plan": "pro"}, {"email": "b@x", "plan": "free"}]
    stored = mongo_server.collection("serve_shop", "signups")
    assert [d["email"] for d in stored] == ["a@x", "b@x"]
    assert MONGO_PASSWORD not in logs_text(served, done["id"])
    assert MONGO_PASSWORD not in Path(served.server.log).read_text()
