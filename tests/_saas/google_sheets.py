"""A fake of the Google Sheets API v4 (https://developers.google.com/sheets/api) on loopback.

What it speaks, as Google does, for the calls the google_sheets node makes:
- `GET /v4/spreadsheets/{id}/values/{range}` (`spreadsheets.values.get`): the rows
  of an A1 range (`'My sheet'!A1:D9`, `Sheet1`, `Sheet1!1:1`), trailing empty cells
  and rows left out, the range answered in A1 (`Sheet1!A1:C3`), no `values` when empty;
- `POST .../values/{range}:append` (`spreadsheets.values.append`): rows after the
  last row of the table, answering `tableRange` and `updates.updatedRange`;
- `POST /v4/spreadsheets/{id}/values:batchUpdate`: each `data[]` range written from
  its top-left cell;
- `POST /v4/spreadsheets/{id}:batchUpdate` with `addSheet` requests;
- `valueInputOption` required on writes; cells read as FORMATTED_VALUE (text,
  booleans as TRUE/FALSE) or UNFORMATTED_VALUE;
- OAuth bearer tokens (`Authorization: Bearer`), checked by `authorize` (default:
  `TOKEN`; a test passes its OAuth provider's `valid`);
- Google's error body, `{"error": {"code", "message", "status", "details"}}`: 401
  UNAUTHENTICATED, 404 NOT_FOUND for an unknown spreadsheet, 400 INVALID_ARGUMENT
  for a range it cannot parse; 429 RESOURCE_EXHAUSTED staged by a test
  (`fail_next(rate_limited(7))`) with the RetryInfo detail.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["TOKEN", "FakeSheets", "fake_sheets", "google_error", "rate_limited"]

TOKEN: Final = "ya29.loopback-sheets-token"
_CELLS = re.compile(r"^([A-Z]*)(\d*)(?::([A-Z]*)(\d*))?$")
_VALUES = re.compile(r"^/v4/spreadsheets/([^/]+)/values/([^/]+?)(:append)?$")
_STATUS: Final = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}  # fmt: skip


def google_error(code: int, message: str, details: list[dict[str, Any]] | None = None,
                 **headers: str) -> Reply:  # fmt: skip
    error: dict[str, Any] = {"code": code, "message": message, "status": _STATUS.get(code, "")}
    if details:
        error["details"] = details
    return Reply.json({"error": error}, code, **headers)


def rate_limited(retry_delay_s: int) -> Reply:
    return google_error(429, "Quota exceeded for quota metric 'Write requests' and limit "
                        "'Write requests per minute per user' of service "
                        "'sheets.googleapis.com' for consumer 'project_number:1'.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
         "domain": "googleapis.com", "metadata": {"service": "sheets.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay_s}s"},
    ])  # fmt: skip


def _letters(column: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    out = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        out = chr(ord("A") + rest) + out
    return out


def _column(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - ord("A") + 1
    return number - 1


def _sheet_name(title: str) -> str:
    return title if re.fullmatch(r"[A-Za-z0-9_]+", title) else "'" + title.replace("'", "''") + "'"


@dataclass
class Sheet:
    sheet_id: int
    title: str
    rows: list[list[Any]] = field(default_factory=list)

    def height(self) -> int:
        """Rows up to the last one with a value."""
        used = [n for n, row in enumerate(self.rows) if any(cell != "" for cell in row)]
        return used[-1] + 1 if used else 0

    def write(self, top: int, left: int, values: list[list[Any]]) -> None:
        for r, row in enumerate(values):
            while len(self.rows) <= top + r:
                self.rows.append([])
            target = self.rows[top + r]
            for c, value in enumerate(row):
                while len(target) <= left + c:
                    target.append("")
                target[left + c] = value


@dataclass(frozen=True)
class _Range:
    sheet: Sheet
    top: int
    left: int
    bottom: int | None
    right: int | None


class FakeSheets(FakeApi):
    def __init__(self, authorize: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.authorize = authorize or (lambda token: token == TOKEN)
        self.spreadsheets: dict[str, dict[str, Sheet]] = {}
        self._sheet_ids = itertools.count(0)

    # -- state ------------------------------------------------------------------------

    def add_spreadsheet(self, spreadsheet_id: str, **sheets: list[list[Any]]) -> None:
        self.spreadsheets[spreadsheet_id] = {}
        for title, rows in (sheets or {"Sheet1": []}).items():
            self.add_sheet(spreadsheet_id, title, rows)

    def add_sheet(self, spreadsheet_id: str, title: str, rows: list[list[Any]]) -> Sheet:
        sheet = Sheet(next(self._sheet_ids), title, [list(row) for row in rows])
        self.spreadsheets[spreadsheet_id][title] = sheet
        return sheet

    def rows(self, spreadsheet_id: str, title: str) -> list[list[Any]]:
        return self.spreadsheets[spreadsheet_id][title].rows

    def calls(self, path_end: str) -> list[Recorded]:
        return [r for r in self.requests if unquote(r.path).endswith(path_end)]

    # -- the API ----------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not self.authorize(auth[7:]):
            return google_error(401, "Request had invalid authentication credentials. Expected "
                                "OAuth 2 access token, login cookie or other valid authentication "
                                "credential.")  # fmt: skip
        path = request.path
        match = _VALUES.match(path)
        try:
            if match and request.method == "GET" and not match.group(3):
                return self._get(match.group(1), unquote(match.group(2)), request)
            if match and request.method == "POST" and match.group(3):
                return self._append(match.group(1), unquote(match.group(2)), request)
            batch = re.match(r"^/v4/spreadsheets/([^/]+)/values:batchUpdate$", path)
            if batch and request.method == "POST":
                return self._batch_values(batch.group(1), request)
            sheets = re.match(r"^/v4/spreadsheets/([^/:]+):batchUpdate$", path)
            if sheets and request.method == "POST":
                return self._batch(sheets.group(1), request)
        except _Refused as refused:
            return refused.reply
        return google_error(404, f"Method not found: {request.method} {path}")

    def _book(self, spreadsheet_id: str) -> dict[str, Sheet]:
        book = self.spreadsheets.get(unquote(spreadsheet_id))
        if book is None:
            raise _Refused(google_error(404, "Requested entity was not found."))
        return book

    def _range(self, book: dict[str, Sheet], a1: str) -> _Range:
        name, bang, cells = a1.rpartition("!")
        if not bang:
            name, cells = a1, ""
        if name.startswith("'") and name.endswith("'") and len(name) >= 2:
            name = name[1:-1].replace("''", "'")
        found = _CELLS.match(cells)
        sheet = book.get(name)
        if sheet is None or found is None:
            raise _Refused(google_error(400, f"Unable to parse range: {a1}"))
        c1, r1, c2, r2 = found.groups()
        top = int(r1) - 1 if r1 else 0
        left = _column(c1) if c1 else 0
        if c2 is None and r2 is None:  # one cell (or one row or column), or the whole sheet
            bottom = top if r1 else None
            right = left if c1 else None
        else:
            bottom = int(r2) - 1 if r2 else None
            right = _column(c2) if c2 else None
        return _Range(sheet, top, left, bottom, right)

    def _get(self, spreadsheet_id: str, a1: str, request: Recorded) -> Reply:
        where = self._range(self._book(spreadsheet_id), a1)
        unformatted = request.query.get("valueRenderOption", [""])[-1] == "UNFORMATTED_VALUE"
        sheet = where.sheet
        last = sheet.height() - 1 if where.bottom is None else min(where.bottom,
                                                                    sheet.height() - 1)
        rows: list[list[Any]] = []
        for row in sheet.rows[where.top:last + 1]:
            cells = row[where.left:None if where.right is None else where.right + 1]
            while cells and cells[-1] == "":
                cells = cells[:-1]
            rows.append([cell if unformatted else _formatted(cell) for cell in cells])
        while rows and not rows[-1]:
            rows.pop()
        width = max((len(row) for row in rows), default=1)
        end_row = where.top + max(len(rows), 1)
        answered = (f"{_sheet_name(sheet.title)}!{_letters(where.left)}{where.top + 1}:"
                    f"{_letters(where.left + width - 1)}{end_row}")  # fmt: skip
        body: dict[str, Any] = {"range": answered, "majorDimension": "ROWS"}
        if rows:
            body["values"] = rows
        return Reply.json(body)

    def _input_option(self, given: str | None) -> None:
        if given not in {"RAW", "USER_ENTERED"}:
            raise _Refused(google_error(400, "'valueInputOption' is required but not specified"))

    def _append(self, spreadsheet_id: str, a1: str, request: Recorded) -> Reply:
        self._input_option(request.query.get("valueInputOption", [None])[-1])
        where = self._range(self._book(spreadsheet_id), a1)
        values = _rows_of(body_json(request))
        sheet = where.sheet
        table_end = sheet.height()
        sheet.write(table_end, where.left, values)
        width = max((len(row) for row in values), default=1)
        name = _sheet_name(sheet.title)
        updated = (f"{name}!{_letters(where.left)}{table_end + 1}:"
                   f"{_letters(where.left + width - 1)}{table_end + len(values)}")  # fmt: skip
        table = f"{name}!A1:{_letters(width - 1)}{table_end}" if table_end else None
        body: dict[str, Any] = {"spreadsheetId": spreadsheet_id, "updates": {
            "spreadsheetId": spreadsheet_id, "updatedRange": updated,
            "updatedRows": len(values), "updatedColumns": width,
            "updatedCells": sum(len(row) for row in values),
        }}  # fmt: skip
        if table:
            body["tableRange"] = table
        return Reply.json(body)

    def _batch_values(self, spreadsheet_id: str, request: Recorded) -> Reply:
        body = body_json(request) or {}
        self._input_option(body.get("valueInputOption"))
        book = self._book(spreadsheet_id)
        responses = []
        for entry in body.get("data") or []:
            where = self._range(book, str(entry.get("range")))
            values = _rows_of(entry)
            where.sheet.write(where.top, where.left, values)
            width = max((len(row) for row in values), default=1)
            responses.append({
                "spreadsheetId": spreadsheet_id,
                "updatedRange": f"{_sheet_name(where.sheet.title)}!{_letters(where.left)}"
                                f"{where.top + 1}:{_letters(where.left + width - 1)}"
                                f"{where.top + len(values)}",
                "updatedRows": len(values), "updatedColumns": width,
                "updatedCells": sum(len(row) for row in values),
            })  # fmt: skip
        return Reply.json({
            "spreadsheetId": spreadsheet_id,
            "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
            "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
            "totalUpdatedSheets": len({r["updatedRange"].split("!")[0] for r in responses}),
            "responses": responses,
        })  # fmt: skip

    def _batch(self, spreadsheet_id: str, request: Recorded) -> Reply:
        book = self._book(spreadsheet_id)
        replies = []
        for position, entry in enumerate((body_json(request) or {}).get("requests") or []):
            add = entry.get("addSheet") if isinstance(entry, dict) else None
            title = (add or {}).get("properties", {}).get("title")
            if not isinstance(title, str) or not title:
                raise _Refused(google_error(400, f"Invalid requests[{position}]: only addSheet "
                                            "with a title is supported here"))  # fmt: skip
            if title in book:
                raise _Refused(google_error(
                    400, f'Invalid requests[{position}].addSheet: A sheet with the name '
                    f'"{title}" already exists. Please enter another name.'))  # fmt: skip
            sheet = self.add_sheet(spreadsheet_id, title, [])
            replies.append({"addSheet": {"properties": {
                "sheetId": sheet.sheet_id, "title": title, "index": len(book) - 1,
                "sheetType": "GRID", "gridProperties": {"rowCount": 1000, "columnCount": 26},
            }}})  # fmt: skip
        return Reply.json({"spreadsheetId": spreadsheet_id, "replies": replies})


class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _formatted(cell: Any) -> str:
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return cell if isinstance(cell, str) else json.dumps(cell)


def _rows_of(body: Any) -> list[list[Any]]:
    values = body.get("values") if isinstance(body, dict) else None
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise _Refused(google_error(400, "Invalid value at 'data.values'"))
    return values


@contextmanager
def fake_sheets(authorize: Callable[[str], bool] | None = None) -> Iterator[FakeSheets]:
    """Serve a Sheets API on 127.0.0.1 for the `with` block."""
    with run_fake(FakeSheets(authorize)) as fake:
        yield fake
