"""docs/expressions.md is the library's reference: every example in it runs here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from jinja2.filters import FILTERS as JINJA_FILTERS

from linkflow.engine.expressions import ExpressionError, JinjaDialect
from linkflow.engine.expressions.library import ENTRIES

DOC = Path(__file__).parents[3] / "docs" / "expressions.md"
EXAMPLE = re.compile(r"^- `(?P<source>[^`]+)` → `(?P<expected>[^`]+)`$")
HEADING = re.compile(r"^#### `(?P<name>\w+)`$")
SCOPE_BLOCK = re.compile(r"```json scope\n(?P<body>.*?)\n```", re.DOTALL)


@dataclass(frozen=True)
class Example:
    section: str | None
    source: str
    expected: str
    line: int


def _examples() -> list[Example]:
    section: str | None = None
    examples = []
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), start=1):
        heading = HEADING.match(line)
        if heading:
            section = heading["name"]
        elif line.startswith(("## ", "### ")):
            section = None
        found = EXAMPLE.match(line)
        if found:
            examples.append(Example(section, found["source"], found["expected"], number))
    return examples


EXAMPLES = _examples()


class DocRng:
    """The documented `_rng`: random() is always 0.5, uuid4() a fixed UUID."""

    def uuid4(self) -> str:
        return "123e4567-e89b-42d3-a456-426614174000"

    def random(self) -> float:
        return 0.5


@dataclass(frozen=True)
class NodeStub:
    json: dict[str, object]
    items: list[dict[str, object]] = field(default_factory=list)

    @property
    def item(self) -> dict[str, object]:
        return self.json


def doc_scope() -> dict[str, object]:
    """The scope documented at the top of docs/expressions.md."""
    block = SCOPE_BLOCK.search(DOC.read_text(encoding="utf-8"))
    assert block is not None, "docs/expressions.md lost its ```json scope block"
    scope: dict[str, object] = orjson.loads(block["body"])
    scope["items"] = [scope["json"]]
    scope["node"] = {"fetch": NodeStub({"status": 200}, [{"status": 200}])}
    scope["now"] = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
    scope["today"] = date(2026, 1, 15)
    scope["_rng"] = DocRng()
    return scope


@pytest.fixture(scope="module")
def dialect() -> JinjaDialect:
    return JinjaDialect()


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_documented_example_holds(dialect: JinjaDialect, example: Example) -> None:
    """Each `source` → `result` line of the docs evaluates to the documented JSON or error."""
    scope = doc_scope()
    if example.expected.startswith("error: "):
        with pytest.raises(ExpressionError) as caught:
            dialect.compile(example.source).evaluate(scope)
        message = example.expected.removeprefix("error: ")
        if message.endswith("…"):
            assert caught.value.message.startswith(message.removesuffix("…"))
        else:
            assert caught.value.message == message
    else:
        result = dialect.compile(example.source).evaluate(scope)
        assert result == orjson.loads(example.expected)
        assert type(result) is type(orjson.loads(example.expected)) or isinstance(result, float)


def test_every_library_entry_has_a_documented_example() -> None:
    """Each filter or function the library registers has a section with an example."""
    documented = {e.section for e in EXAMPLES if e.section is not None}
    missing = sorted(entry.name for entry in ENTRIES if entry.name not in documented)
    assert missing == []


def test_documented_sections_name_real_filters_or_functions(dialect: JinjaDialect) -> None:
    """No section documents a name that does not exist."""
    headings = {
        m["name"]
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if (m := HEADING.match(line))
    }
    known = dialect.filter_names | dialect.function_names
    assert sorted(headings - known) == []


def test_library_has_at_least_fifty_entries() -> None:
    """The contract promises a library of at least 50 filters and functions."""
    assert len({entry.name for entry in ENTRIES}) >= 50


def test_library_names_are_unique_and_leave_jinja_builtins_alone() -> None:
    """No library name is registered twice or shadows a Jinja built-in filter."""
    names = [entry.name for entry in ENTRIES]
    assert len(names) == len(set(names))
    assert sorted(set(names) & set(JINJA_FILTERS)) == []


def test_library_entries_are_reachable_as_declared(dialect: JinjaDialect) -> None:
    """Filters are filters, functions are globals, and function-only names are not filters."""
    for entry in ENTRIES:
        assert (entry.name in dialect.filter_names) == entry.filter, entry.name
        assert (entry.name in dialect.function_names) == entry.function, entry.name
