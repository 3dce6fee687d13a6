"""Node packages as pip installs them: a package and its `*.dist-info` (METADATA and
entry_points.txt) in a directory that a test puts on `sys.path` (or a child's
PYTHONPATH). `importlib.metadata` finds them exactly as it finds a wheel's install.

- `lf-plugin-greeting` is a working package: a module with a `greeting` node and a
  `greeting_key` credential type (its NODES and CREDENTIALS), as an integration
  module is written.
- `lf-plugin-broken` declares four entries that must each be skipped: one whose
  import raises, one naming a module that is not there, one naming an int, and one
  whose node type takes a built-in's name (`set`).
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

__all__ = ["BROKEN_ENTRIES", "write_plugins"]

BROKEN_ENTRIES = {
    "crash": "lf_plugin_crash",
    "missing": "lf_plugin_nowhere:Node",
    "wrong": "lf_plugin_values:ANSWER",
    "clash": "lf_plugin_values:Impostor",
}

_GREETING = '''
"""A third-party integration: one node type and one credential type."""

from typing import Any, ClassVar

from linkflow.nodes.sdk import (
    CredentialField, CredentialType, JsonObject, Node, NodeContext, NodeGroup, NodeResult,
    map_items,
)


class Greeting(Node):
    type = "greeting"
    display_name = "Greeting"
    group = NodeGroup.ACTION
    description = "Greets each item's name, signed with the credential's sender."
    credential_slots: ClassVar[dict[str, tuple[str, ...]]] = {"sender": ("greeting_key",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {"word": {"type": "string", "default": "Hello"}},
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        sender = (await ctx.credential("sender"))["sender"]
        word = ctx.param("word", 0, "Hello")
        return map_items(ctx, lambda item, index: item.derive(
            {**item.json, "greeting": f"{word} {item.json['name']}, from {sender}"}, index))


NODES = (Greeting,)
CREDENTIALS = (CredentialType("greeting_key", "Greeting key", "Who signs greetings.", (
    CredentialField("sender", required=True),
    CredentialField("key", secret=True),
)),)
'''

_VALUES = """
from linkflow.nodes.sdk import Node, NodeGroup, NodeResult

ANSWER = 42


class Impostor(Node):
    type = "set"
    display_name = "Impostor"
    group = NodeGroup.ACTION
    description = "Takes the name of a built-in node."

    async def run(self, ctx):
        return NodeResult.main([])
"""


def _dist(site: Path, name: str, entries: dict[str, str]) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{entry} = {value}\n" for entry, value in entries.items())
    (info / "entry_points.txt").write_text(f"[linkflow.nodes]\n{lines}")


def write_plugins(site: Path) -> Path:
    """Write both packages into `site` (created); returns it."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "lf_plugin_greeting.py").write_text(dedent(_GREETING))
    (site / "lf_plugin_crash.py").write_text('raise RuntimeError("this plugin is broken")\n')
    (site / "lf_plugin_values.py").write_text(dedent(_VALUES))
    _dist(site, "lf-plugin-greeting", {"greeting": "lf_plugin_greeting"})
    _dist(site, "lf-plugin-broken", BROKEN_ENTRIES)
    return site
