"""docs/api.md lists every endpoint the app serves under `/api/v1`, and no other.

The doc's convention (its Conventions section): a `## ` heading naming a prefix in
a code span (`/api/v1/workflows`) opens a section whose endpoints are code spans
`METHOD /rest`, relative to that prefix (`GET /` is the prefix itself, and
`GET|PUT|DELETE /{id}`, `\\|`-escaped in tables, is three endpoints); anywhere
else an endpoint is a code span `METHOD /api/v1/...` in full. Path parameters are
named as in OpenAPI. Fenced code blocks are not read.

The endpoints served are those of the OpenAPI document of the app with its
execution plane (as `linkflow api` builds it with Redis, here on the embedded
queue and bus), so routes left out of the schema are left out here too.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest

from linkflow.api import create_app
from linkflow.wiring import build_container, build_engine, build_plane, build_shared
from tests.api._support import api_settings

API_DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BASE: Final = "/api/v1"
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")

Endpoint = tuple[str, str]
"""(method, full path), e.g. ("POST", "/api/v1/workflows/{workflow_id}/execute")."""

_METHOD = "|".join(METHODS)
_MENTION = re.compile(rf"^((?:{_METHOD})(?:\\?\|(?:{_METHOD}))*)\s+(/[^\s?]*)")
_CODE_SPAN = re.compile(r"`([^`]+)`")
_PREFIX = re.compile(rf"^{re.escape(BASE)}(?:/\S*)?$")


def documented_endpoints(markdown: str) -> set[Endpoint]:
    """The endpoints `markdown` lists, read by the convention of the module docstring."""
    found: set[Endpoint] = set()
    for heading, body in _sections(markdown):
        prefixes = [span for span in _CODE_SPAN.findall(heading) if _PREFIX.match(span)]
        prefix = prefixes[0] if prefixes else None
        for span in _CODE_SPAN.findall(" ".join([heading, *body])):
            mention = _MENTION.match(span.strip())
            if mention is None:
                continue
            path = mention[2]
            if not path.startswith(BASE):
                if prefix is None:
                    continue  # shorthand outside an endpoint section (Conventions)
                path = prefix if path == "/" else prefix + path
            for method in mention[1].replace("\\", "").split("|"):
                found.add((method, path))
    return found


def _sections(markdown: str) -> list[tuple[str, list[str]]]:
    """(`## ` heading, its lines up to the next one), fenced blocks left out; the text
    before the first `## ` heading has the heading ""."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("## "):
            sections.append((line, []))
        else:
            sections[-1][1].append(line)
    return sections


def _listing(endpoints: set[Endpoint]) -> str:
    return "\n".join(f"  {method} {path}" for path, method in sorted((p, m) for m, p in endpoints))


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[set[Endpoint]]:
    """Every (method, path) under /api/v1 in the OpenAPI document of the app with its
    execution plane; nothing is started, nothing listens."""
    data_dir = tmp_path_factory.mktemp("api-docs")
    settings = api_settings(data_dir, f"sqlite+aiosqlite:///{data_dir / 'linkflow.db'}")
    container = build_container(settings)
    shared = build_shared(settings, container.database, runs_worker=False)
    try:
        app = create_app(container, plane=build_plane(shared, build_engine(shared, code=None)))
        paths = app.openapi()["paths"]
        yield {
            (method.upper(), path)
            for path, operations in paths.items()
            if path.startswith(BASE)
            for method in operations
            if method.upper() in METHODS
        }
    finally:
        await shared.aclose()
        await container.aclose()


def test_every_served_endpoint_is_in_the_api_doc(served: set[Endpoint]) -> None:
    """An endpoint of the app that docs/api.md does not list fails, naming it."""
    missing = served - documented_endpoints(API_DOC.read_text(encoding="utf-8"))
    assert not missing, (
        "docs/api.md does not list these endpoints (write `METHOD /rest` in the section "
        "whose heading names its prefix, or `METHOD /api/v1/...` in full):\n" + _listing(missing)
    )


def test_the_api_doc_lists_no_endpoint_the_app_does_not_serve(served: set[Endpoint]) -> None:
    """A listed endpoint the app does not serve (removed, renamed, or a path parameter
    named otherwise than in OpenAPI) fails, naming it."""
    stale = documented_endpoints(API_DOC.read_text(encoding="utf-8")) - served
    assert not stale, "docs/api.md lists endpoints the app does not serve:\n" + _listing(stale)


def test_the_plane_is_among_the_endpoints_checked(served: set[Endpoint]) -> None:
    """The app checked is the one with the execution plane, not the control plane alone."""
    assert ("POST", "/api/v1/workflows/{workflow_id}/execute") in served
    assert ("GET", "/api/v1/executions/{execution_id}/events") in served
    assert ("GET", "/api/v1/audit-logs") in served


class TestDocumentedEndpoints:
    def test_relative_paths_join_the_prefix_their_heading_names(self) -> None:
        """`GET /` is the prefix itself, `POST /{id}/run` follows it; a body after the
        path and a description after the span do not matter."""
        doc = "## Things: `/api/v1/things`\n\n`GET /`, `POST /{thing_id}/run {input?}` (runs)\n"
        assert documented_endpoints(doc) == {
            ("GET", "/api/v1/things"),
            ("POST", "/api/v1/things/{thing_id}/run"),
        }

    def test_joined_methods_are_each_an_endpoint_escaped_in_tables_or_not(self) -> None:
        """`GET|PUT /x` in prose and `GET\\|DELETE /y` in a table cell."""
        doc = "## T: `/api/v1/t`\n\n`GET|PUT /{a}`\n\n| `GET\\|DELETE /{b}` | |\n"
        assert documented_endpoints(doc) == {
            ("GET", "/api/v1/t/{a}"),
            ("PUT", "/api/v1/t/{a}"),
            ("GET", "/api/v1/t/{b}"),
            ("DELETE", "/api/v1/t/{b}"),
        }

    def test_full_paths_count_anywhere_and_shorthand_only_in_a_prefixed_section(self) -> None:
        """Conventions' `GET /executions/{id}` is no endpoint; a heading's or a
        paragraph's `GET /api/v1/...` is, wherever it is."""
        doc = (
            "## Conventions\n\n`GET /executions/{id}` and `POST /api/v1/a?x=1`\n\n"
            "## Audit: `GET /api/v1/audit-logs`\n\n`GET /other`\n"
        )
        assert documented_endpoints(doc) == {("POST", "/api/v1/a"), ("GET", "/api/v1/audit-logs")}

    def test_fenced_code_is_not_read(self) -> None:
        """An example request in a code block documents nothing."""
        doc = "## T: `/api/v1/t`\n\n```bash\n`GET /hidden`\n```\n`GET /shown`\n"
        assert documented_endpoints(doc) == {("GET", "/api/v1/t/shown")}

    def test_an_endpoint_taken_out_of_the_doc_is_missing(self) -> None:
        """Removing the row of `POST /{workflow_id}/execute` from docs/api.md loses it."""
        doc = API_DOC.read_text(encoding="utf-8")
        row = next(
            line for line in doc.splitlines() if line.startswith("| `POST /{workflow_id}/execute")
        )
        execute = ("POST", "/api/v1/workflows/{workflow_id}/execute")
        assert execute in documented_endpoints(doc)
        assert execute not in documented_endpoints(doc.replace(row + "\n", ""))
