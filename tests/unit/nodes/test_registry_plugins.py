"""Node packages found through the `linkflow.nodes` entry point group, installed as
pip installs them (a dist-info on sys.path): a working one registers its node and
credential types, a broken one is skipped and reported, never taking the process down."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from linkflow.nodes.registry import default_registry
from linkflow.nodes.sdk import NodeGroup
from linkflow.observability.logging import configure_logging
from tests._plugins import BROKEN_ENTRIES, write_plugins

PLUGIN_MODULES = ("lf_plugin_greeting", "lf_plugin_crash", "lf_plugin_values")


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    """The packages on sys.path for the test; their modules forgotten after it."""
    site = write_plugins(tmp_path / "site")
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in PLUGIN_MODULES:
            sys.modules.pop(name, None)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    out = io.StringIO()
    configure_logging(level="info", json=True, stream=out)
    try:
        yield out
    finally:
        structlog.configure(**saved)


class TestEntryPoints:
    def test_a_working_package_adds_its_node_and_credential_types(self, installed: Path) -> None:
        """The greeting module's NODES and CREDENTIALS, as an integration module's."""
        registry = default_registry()
        node = registry.get("greeting")
        assert node.group is NodeGroup.ACTION
        assert registry.credential_types["greeting_key"].secret_fields == {"key"}

    def test_each_broken_entry_is_skipped_and_reported_with_its_names(
        self, installed: Path, log_lines: io.StringIO
    ) -> None:
        """Import error, missing module, not a node, a clash with `set`: four problems
        naming the entry and the distribution; the built-in `set` is still ours."""
        registry = default_registry()
        problems = {p.entry_point.split(" = ")[0]: p for p in registry.problems}
        assert set(problems) == set(BROKEN_ENTRIES)
        assert {p.distribution for p in problems.values()} == {"lf-plugin-broken"}
        assert problems["crash"].reason == "RuntimeError: this plugin is broken"
        assert problems["missing"].reason.startswith("ModuleNotFoundError")
        assert "not a Node subclass" in problems["wrong"].reason
        assert problems["clash"].reason == "ValueError: node type 'set' is already registered"
        assert type(registry.get("set")).__module__ == "linkflow.nodes.builtin.set"
        logged = [json.loads(line) for line in log_lines.getvalue().splitlines()]
        skipped = [line for line in logged if line["event"] == "nodes.plugin_skipped"]
        assert {line["entry_point"] for line in skipped} == {
            f"{name} = {value}" for name, value in BROKEN_ENTRIES.items()
        }
        assert all(line["distribution"] == "lf-plugin-broken" for line in skipped)

    def test_without_plugins_none_is_loaded(self, installed: Path) -> None:
        """`plugins=False` (the docs generator) sees only what ships with LinkFlow."""
        registry = default_registry(plugins=False)
        assert "greeting" not in registry
        assert registry.problems == []
