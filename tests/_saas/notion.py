"""A fake of Notion's API (https://developers.notion.com/reference) on loopback.

What it speaks, as Notion does: `Authorization: Bearer <token>` and a required
`Notion-Version` header; pages at `/v1/pages` (POST creates under a database or page
parent, GET reads, PATCH updates properties and `archived`); `POST
/v1/databases/{id}/query` with `page_size` (at most 100), `start_cursor`, a `filter`
(select/checkbox `equals`, as far as the tests use it) and `sorts`, answering a list
object with `next_cursor` and `has_more`; errors as `{"object": "error", "status",
"code", "message"}` (unauthorized, missing_version, object_not_found,
validation_error). A 429 is staged by a test (`fail_next(rate_limited(2))`): Notion's
`rate_limited` body with Retry-After.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["TOKEN", "VERSION", "FakeNotion", "fake_notion", "rate_limited"]

TOKEN: Final = "ntn_loopback0000000000000000000000000000000000"
VERSION: Final = "2022-06-28"
_PAGE = re.compile(r"/v1/pages/([0-9a-f-]+)")
_QUERY = re.compile(r"/v1/databases/([0-9a-f-]+)/query")


def error(status: int, code: str, message: str) -> Reply:
    return Reply.json({"object": "error", "status": status, "code": code, "message": message},
                      status)  # fmt: skip


def rate_limited(retry_after_s: int) -> Reply:
    reply = error(429, "rate_limited", "You have been rate limited. Please try again in a few "
                                       "minutes.")  # fmt: skip
    return Reply(reply.status, reply.body, {"Retry-After": str(retry_after_s)}, reply.content_type)


class FakeNotion(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)
        self.databases: dict[str, dict[str, str]] = {}
        """Database id → its properties' types (name → type)."""
        self.pages: dict[str, dict[str, Any]] = {}
        self.home = self._id()
        self.pages[self.home] = self._page({"type": "workspace", "workspace": True},
                                           {"title": {"title": _text("Home")}})  # fmt: skip
        self.tasks = self.add_database({"Name": "title", "Status": "select", "Done": "checkbox"})

    def _id(self) -> str:
        return str(uuid.UUID(int=next(self._ids)))

    def add_database(self, properties: dict[str, str]) -> str:
        database_id = self._id()
        self.databases[database_id] = properties
        return database_id

    def add_task(self, name: str, status: str) -> dict[str, Any]:
        properties = {"Name": {"title": _text(name)}, "Status": {"select": {"name": status}}}
        page = self._page({"type": "database_id", "database_id": self.tasks}, properties)
        self.pages[page["id"]] = page
        return page

    def _page(self, parent: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
        page_id = self._id()
        return {"object": "page", "id": page_id, "created_time": "2026-01-01T12:00:00.000Z",
                "last_edited_time": "2026-01-01T12:00:00.000Z", "archived": False,
                "parent": parent, "properties": _typed(properties),
                "url": f"https://www.notion.so/{page_id.replace('-', '')}"}  # fmt: skip

    # -- the API ----------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "unauthorized", "API token is invalid.")
        if not request.headers.get("notion-version"):
            return error(
                400,
                "missing_version",
                "Notion-Version header failed validation: "
                "Notion-Version header should be defined, instead was `undefined`.",
            )
        body = body_json(request) or {}
        if (request.method, request.path) == ("GET", "/v1/users/me"):
            return Reply.json({"object": "user", "id": self.home, "type": "bot",
                               "name": "LinkFlow", "bot": {}})  # fmt: skip
        if (request.method, request.path) == ("POST", "/v1/pages"):
            return self._create(body)
        page = _PAGE.fullmatch(request.path)
        if page is not None and request.method in ("GET", "PATCH"):
            found = self.pages.get(page.group(1))
            if found is None:
                return _not_found("page", page.group(1))
            return Reply.json(found) if request.method == "GET" else self._update(found, body)
        query = _QUERY.fullmatch(request.path)
        if query is not None and request.method == "POST":
            return self._query(query.group(1), body)
        return error(400, "invalid_request_url", "Invalid request URL.")

    def _create(self, body: dict[str, Any]) -> Reply:
        parent = body.get("parent") or {}
        properties = body.get("properties") or {}
        if "database_id" in parent:
            schema = self.databases.get(parent["database_id"])
            if schema is None:
                return _not_found("database", parent["database_id"])
            unknown = [name for name in properties if name not in schema]
            if unknown:
                return error(400, "validation_error",
                             f"{unknown[0]} is not a property that exists.")  # fmt: skip
            parent = {"type": "database_id", "database_id": parent["database_id"]}
        elif "page_id" in parent:
            if parent["page_id"] not in self.pages:
                return _not_found("page", parent["page_id"])
            if set(properties) - {"title"}:
                return error(400, "validation_error", "Only title can be set on a page "
                                                      "whose parent is a page.")  # fmt: skip
            parent = {"type": "page_id", "page_id": parent["page_id"]}
        else:
            return error(
                400,
                "validation_error",
                "body failed validation: body.parent should be defined, instead was `undefined`.",
            )
        page = self._page(parent, properties)
        page["children"] = body.get("children", [])
        self.pages[page["id"]] = page
        return Reply.json(page)

    def _update(self, page: dict[str, Any], body: dict[str, Any]) -> Reply:
        page["properties"].update(_typed(body.get("properties") or {}))
        if "archived" in body:
            page["archived"] = bool(body["archived"])
        return Reply.json(page)

    def _query(self, database_id: str, body: dict[str, Any]) -> Reply:
        if database_id not in self.databases:
            return _not_found("database", database_id)
        size = int(body.get("page_size", 100))
        if not 1 <= size <= 100:
            return error(400, "validation_error", "body.page_size should be ≤ `100`.")
        rows = [p for p in self.pages.values() if p["parent"].get("database_id") == database_id
                and not p["archived"] and _matches(p, body.get("filter"))]  # fmt: skip
        start = 0
        if body.get("start_cursor"):
            ids = [row["id"] for row in rows]
            if body["start_cursor"] not in ids:
                return error(400, "validation_error", "start_cursor provided is invalid.")
            start = ids.index(body["start_cursor"])
        chunk = rows[start : start + size]
        more = start + size < len(rows)
        return Reply.json({"object": "list", "results": chunk,
                           "next_cursor": rows[start + size]["id"] if more else None,
                           "has_more": more, "type": "page_or_database",
                           "page_or_database": {}})  # fmt: skip


def _text(content: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": content}, "plain_text": content}]


def _typed(properties: dict[str, Any]) -> dict[str, Any]:
    """Property values as Notion returns them: with their `type`."""
    return {name: {"type": next(iter(value)), **value} for name, value in properties.items()}


def _matches(page: dict[str, Any], condition: dict[str, Any] | None) -> bool:
    if not condition:
        return True
    value = page["properties"].get(condition["property"], {})
    if "select" in condition:
        return bool((value.get("select") or {}).get("name") == condition["select"]["equals"])
    if "checkbox" in condition:
        return bool(value.get("checkbox")) is bool(condition["checkbox"]["equals"])
    raise AssertionError(f"the fake does not filter by {condition}")


def _not_found(kind: str, object_id: str) -> Reply:
    return error(404, "object_not_found", f"Could not find {kind} with ID: {object_id}. Make sure "
                 "the relevant pages and databases are shared with your integration.")  # fmt: skip


@contextmanager
def fake_notion() -> Iterator[FakeNotion]:
    with run_fake(FakeNotion()) as fake:
        yield fake
