"""docs/writing-nodes.md stays true: its template integration registers, validates and
runs (against a loopback stand-in for the Acme API the template calls)."""

from __future__ import annotations

import re
import types
from pathlib import Path

import httpx
from jsonschema import Draft202012Validator

from linkflow.nodes.registry import NodeRegistry
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from tests._http_server import Recorded, Reply, serve

DOC = Path(__file__).resolve().parents[3] / "docs" / "writing-nodes.md"


def _template() -> types.ModuleType:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)[0]
    module = types.ModuleType("acme_template")
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module


def _ticket(request: Recorded) -> Reply:
    assert request.headers["authorization"] == "Bearer t0ken"
    return Reply.json({"id": request.path.rsplit("/", 1)[-1]})


async def test_the_template_registers_and_runs() -> None:
    """NODES and CREDENTIALS register; the schema is valid; `get` reads a ticket per item
    and the credential check reports who it authenticated as."""
    module = _template()
    registry = NodeRegistry()
    registry.register_module(module)
    node = registry.get("acme")
    Draft202012Validator.check_schema(node.parameters_schema)
    assert registry.credential_types["acme"].secret_fields == {"token"}
    routes = {"/tickets/T-1": _ticket, "/tickets/T-2": _ticket,
              "/me": lambda _: Reply.json({"name": "bot"})}  # fmt: skip
    with serve(routes) as server:
        base = server.url("").rstrip("/")
        credential = {"type": "acme", "token": "t0ken", "base_url": base}
        async with httpx.AsyncClient() as client:
            ctx = FakeContext(
                items=items({"id": "T-1"}, {"id": "T-2"}), http=client,
                parameters={"operation": "get",
                            "ticket_id": per_item(lambda item, _: item.json["id"] if item else "")},
                credentials={"acme": credential},
            )  # fmt: skip
            result = await run_node(node, ctx)
            check = registry.credential_types["acme"].check
            assert check is not None
            checked = await check(_CheckContext(client), credential)
    assert [i.json["ticket"] for i in result.outputs["main"]] == [{"id": "T-1"}, {"id": "T-2"}]
    assert checked == "authenticated as bot"


class _CheckContext:
    timeout_s = 5.0

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    def http(self) -> httpx.AsyncClient:
        return self.client

    async def resolve_host(self, host: str, port: int) -> list[str]:
        return [host]
