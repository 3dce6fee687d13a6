"""A large execution's output under `linkflow serve`: the detail shows its first items and
says how many there are, the rest are paged (issue 14, item 12: the detail held every
item, megabytes for a large run)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e._serve import Client, Serve, execution_of, register, workflow

ITEMS = 5000
BOB = {"email": "bob@example.com", "password": "staple battery horse"}
BIG_RUN = {
    "name": "Five thousand items",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "many", "type": "code",
         "parameters": {"code": f"return [{{'n': i, 'pad': 'x' * 300}} for i in range({ITEMS})]"}},
    ],
    "connections": [{"from": "start", "to": "many"}],
}  # fmt: skip


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """serve, Ada's completed execution of `BIG_RUN` (1.5 MB of output: over the blob
    threshold, so the node's output is kept in the blob store), and Bob in another
    workspace."""
    server = Serve(tmp_path_factory.mktemp("serve"))
    server.start()
    try:
        ada = Client(server)
        register(ada)
        flow = workflow(ada, BIG_RUN)
        queued = ada.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
        done = execution_of(ada, queued["id"], "completed", "failed")
        assert done["status"] == "completed", done["error"]
        bob = Client(server)
        bob.token = bob.ok("POST", "/api/v1/auth/register", 201, json=BOB)["access_token"]
        yield ada, bob, queued["id"]
    finally:
        server.stop()


def pages(client: Client, path: str, cursor: str | None = None, limit: int = 200) -> list[Any]:
    """Every item from `cursor` on, following `next_cursor` page by page."""
    items: list[Any] = []
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = client.ok("GET", path, params=params)
        assert len(page["data"]) <= limit
        items.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_the_detail_shows_the_first_items_and_how_many_there_are(big_run: Any) -> None:
    """The detail of a 5,000-item run is small: its first 100 items, `output_items: 5000`
    and a cursor for the rest; the node's row counts its 5,000 items."""
    ada, _, execution_id = big_run
    response = ada.call("GET", f"/api/v1/executions/{execution_id}")
    assert response.status_code == 200, response.text
    assert len(response.content) < 100_000
    detail = response.json()
    assert [item["n"] for item in detail["output"]] == list(range(100))
    assert detail["output_items"] == ITEMS
    assert detail["output_next_cursor"] is not None
    (many,) = [node for node in detail["nodes"] if node["node_id"] == "many"]
    assert many["items_out"] == ITEMS


def test_paging_returns_every_output_item_in_order_exactly_once(big_run: Any) -> None:
    """From the start, or on from the detail's cursor, the pages hold each item once, in
    order; the node's own output pages the same items with their run, output and index."""
    ada, _, execution_id = big_run
    path = f"/api/v1/executions/{execution_id}"
    everything = pages(ada, f"{path}/output")
    assert [item["n"] for item in everything] == list(range(ITEMS))
    detail = ada.ok("GET", path)
    rest = pages(ada, f"{path}/output", detail["output_next_cursor"], limit=150)
    assert detail["output"] + rest == everything
    produced = pages(ada, f"{path}/nodes/many/output", limit=199)
    assert [(p["run"], p["output"], p["index"], p["json"]["n"]) for p in produced] == [
        (0, "main", n, n) for n in range(ITEMS)
    ]


def test_another_workspace_and_bad_requests_get_problems(big_run: Any) -> None:
    """Bob's workspace sees none of Ada's execution (404 everywhere); a node that did not
    run is 404 node_not_found; a cursor the API did not make is 422 invalid_cursor."""
    ada, bob, execution_id = big_run
    path = f"/api/v1/executions/{execution_id}"
    for url in (path, f"{path}/output", f"{path}/nodes/many/output"):
        refused = bob.call("GET", url)
        assert refused.status_code == 404, url
        assert refused.json()["code"] == "execution_not_found"
        assert "pad" not in refused.text
    missing = ada.call("GET", f"{path}/nodes/nowhere/output")
    assert missing.status_code == 404
    assert missing.json()["code"] == "node_not_found"
    forged = ada.call("GET", f"{path}/output", params={"cursor": "not-a-cursor"})
    assert forged.status_code == 422
    assert forged.json()["code"] == "invalid_cursor"
