"""A fake of Airtable's Web API (https://airtable.com/developers/web/api) on loopback.

What it speaks, as Airtable does: `Authorization: Bearer <token>`; records at
`/v0/{baseId}/{table}` (POST creates with `fields` and `typecast`, GET lists with
`pageSize` at most 100, `offset`, `maxRecords`, `view`, `filterByFormula`, `fields[]`
and `sort[i][field|direction]`), `/v0/{baseId}/{table}/{recordId}` (PATCH keeps the
fields not sent, DELETE answers `{"id", "deleted": true}`); `GET /v0/meta/whoami`;
errors as `{"error": {"type", "message"}}` or `{"error": "NOT_FOUND"}`. Formulas are
understood only in the form the tests use, `{Field}='value'`. A 429 is staged by a
test (`fail_next(RATE_LIMITED)`): Airtable's body, with no Retry-After.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["BASE", "RATE_LIMITED", "TOKEN", "FakeAirtable", "fake_airtable"]

TOKEN: Final = "patLoopback0000000.0123456789abcdef0123456789abcdef"
BASE: Final = "appLoopback000001"
TABLE: Final = "Tasks"
RATE_LIMITED: Final = Reply.json({"errors": [{"error": "RATE_LIMIT_REACHED",
                                              "message": "Rate limit exceeded. Please try "
                                                         "again later"}]}, 429)  # fmt: skip
_FIELDS: Final = {"Name", "Status", "Points"}
_FORMULA = re.compile(r"\{([^}]+)\}\s*=\s*'([^']*)'")


def _error(status: int, kind: str, message: str) -> Reply:
    return Reply.json({"error": {"type": kind, "message": message}}, status)


class FakeAirtable(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, dict[str, Any]] = {}
        self.views: dict[str, list[str]] = {"Open": []}
        self.statuses: set[str] = {"Todo", "Doing", "Done"}
        """The Status field's select options (typecast adds to them)."""
        self._ids = itertools.count(1)

    def add(self, **fields: Any) -> dict[str, Any]:
        record_id = f"rec{next(self._ids):014d}"
        record = {"id": record_id, "createdTime": "2026-01-01T12:00:00.000Z",
                  "fields": dict(fields)}  # fmt: skip
        self.records[record_id] = record
        return record

    # -- the API ----------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _error(401, "AUTHENTICATION_REQUIRED", "Authentication required")
        parts = request.path.removeprefix("/v0/").split("/")
        if parts == ["meta", "whoami"]:
            return Reply.json({"id": "usrLoopback000001", "email": "ada@example.com",
                               "scopes": ["data.records:read", "data.records:write"]})  # fmt: skip
        if len(parts) not in (2, 3) or parts[0] != BASE or parts[1] != TABLE:
            return _error(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                          "Invalid permissions, or the requested model was not found. Check "
                          "that both your user and your token have the required permissions, "
                          "and that the model names and/or ids are correct.")  # fmt: skip
        if len(parts) == 2:
            if request.method == "GET":
                return self._list(request)
            if request.method == "POST":
                return self._write(self.add(), body_json(request) or {}, created=True)
        record = self.records.get(parts[2])
        if record is None:
            return Reply.json({"error": "NOT_FOUND"}, 404)
        if request.method == "PATCH":
            return self._write(record, body_json(request) or {})
        if request.method == "DELETE":
            del self.records[record["id"]]
            return Reply.json({"id": record["id"], "deleted": True})
        return Reply.json({"error": "NOT_FOUND"}, 404)

    def _write(self, record: dict[str, Any], body: dict[str, Any], created: bool = False) -> Reply:
        fields = body.get("fields") or {}
        problem = self._invalid(fields, bool(body.get("typecast")))
        if problem is not None:
            if created:
                del self.records[record["id"]]
            return problem
        record["fields"].update(fields)
        return Reply.json(record)

    def _invalid(self, fields: dict[str, Any], typecast: bool) -> Reply | None:
        unknown = [name for name in fields if name not in _FIELDS]
        if unknown:
            return _error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{unknown[0]}"')
        status = fields.get("Status")
        if status is not None and status not in self.statuses:
            if not typecast:
                return _error(422, "INVALID_MULTIPLE_CHOICE_OPTIONS",
                              f'Insufficient permissions to create new select option '
                              f'""{status}""')  # fmt: skip
            self.statuses.add(status)
        return None

    def _list(self, request: Recorded) -> Reply:
        query = {key: values[-1] for key, values in request.query.items()}
        size = int(query.get("pageSize", 100))
        if not 1 <= size <= 100:
            return _error(422, "INVALID_PAGE_SIZE", "The pageSize must be at most 100")
        found = list(self.records.values())
        if "view" in query:
            if query["view"] not in self.views:
                return _error(422, "VIEW_NAME_NOT_FOUND", f'Could not find view "{query["view"]}"')
            found = [r for r in found if r["fields"].get("Status") != "Done"]
        if "filterByFormula" in query:
            match = _FORMULA.fullmatch(query["filterByFormula"].strip())
            if match is None:
                return _error(422, "INVALID_FILTER_BY_FORMULA",
                              "The formula for filtering records is invalid")  # fmt: skip
            found = [r for r in found if str(r["fields"].get(match.group(1))) == match.group(2)]
        for position in reversed(range(10)):
            field = query.get(f"sort[{position}][field]")
            if field is not None:
                descending = query.get(f"sort[{position}][direction]") == "desc"
                found.sort(key=_by(field), reverse=descending)
        if "maxRecords" in query:
            found = found[: int(query["maxRecords"])]
        start = int(query["offset"].split("/")[0].removeprefix("itr")) if "offset" in query else 0
        chunk = found[start : start + size]
        wanted = request.query.get("fields[]")
        if wanted:
            chunk = [{**r, "fields": {k: v for k, v in r["fields"].items() if k in wanted}}
                     for r in chunk]  # fmt: skip
        answer: dict[str, Any] = {"records": chunk}
        if start + size < len(found):
            answer["offset"] = f"itr{start + size}/{found[start + size]['id']}"
        return Reply.json(answer)


def _by(field: str) -> Callable[[dict[str, Any]], str]:
    return lambda record: str(record["fields"].get(field, ""))


@contextmanager
def fake_airtable() -> Iterator[FakeAirtable]:
    with run_fake(FakeAirtable()) as fake:
        yield fake
