"""The Google Sheets integration: the `google_sheets` node (append, read, update and
look up rows, create a sheet) on the Sheets API v4, called with httpx through
`ctx.http()`, with a `google_oauth2` or `google_service_account` credential.

Decisions:
- No SDK: google-api-python-client is synchronous and brings its own HTTP
  stack (httplib2), which would not pass the SSRF guard; each operation is one
  or two REST calls (`spreadsheets.values.get`, `.append`, `.batchUpdate`,
  `spreadsheets.batchUpdate`).
- Rows are objects keyed by the sheet's header row (its first row, or the
  first row of `range`), as n8n users know them, with `row_number` (the row in
  the sheet) added. Sheets leaves trailing empty cells out of its answers: they
  read as "". Appending or updating an object writes its fields under the
  matching columns; a field the header does not have is refused (naming it),
  not dropped, and an empty sheet gets the first item's keys as its header.
- Values written are sent as they are when they are strings, numbers or
  booleans, JSON text otherwise, with `value_input` USER_ENTERED (parsed as if
  typed: formulas, dates) or RAW.
- Google's errors are `{"error": {"code", "message", "status", "details"}}`:
  the message is quoted; a 429 (RESOURCE_EXHAUSTED) is retryable after the
  Retry-After header or the RetryInfo detail's `retryDelay`.
- The header row is read once per activation and sheet, not once per item.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote

from linkflow.nodes.builtin._common import Params, canonical_json
from linkflow.nodes.integrations._google import (
    GOOGLE_CREDENTIAL_TYPES,
    GOOGLE_OAUTH2,
    GOOGLE_SERVICE_ACCOUNT,
    access_token,
)
from linkflow.nodes.integrations._rest import (
    TIMEOUT_PARAMETER,
    Answer,
    Rest,
    Service,
    default_detail,
    header_retry_after,
)
from linkflow.nodes.sdk import (
    CredentialType,
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeGroup,
    NodeResult,
    amap_items,
)

__all__ = ["CREDENTIALS", "NODES", "GoogleSheets"]

BASE_URL: Final = "https://sheets.googleapis.com"
SCOPES: Final = ("https://www.googleapis.com/auth/spreadsheets",)
OPERATIONS: Final = ("append", "read", "update", "lookup", "create_sheet")
ROW_NUMBER: Final = "row_number"
_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "lookup": ("lookup_column", "lookup_value"), "create_sheet": ("title",),
}  # fmt: skip
_FIRST_ROW = re.compile(r"![A-Za-z]*(\d+)")
_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _retry_after(answer: Answer, now: datetime) -> float | None:
    """Retry-After, else the `retryDelay` of Google's RetryInfo detail ("30s")."""
    header = header_retry_after(answer, now)
    if header is not None:
        return header
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _rate_limited(answer: Answer) -> bool:
    return answer.status == 429


SERVICE: Final = Service("google_sheets", detail=default_detail, rate_limited=_rate_limited,
                         retry_after=_retry_after)  # fmt: skip


def _a1(sheet: str, cells: str | None = None) -> str:
    """An A1 range on `sheet` (quoted, with quotes doubled, as Sheets wants)."""
    name = "'" + sheet.replace("'", "''") + "'"
    return f"{name}!{cells}" if cells else name


def _path_range(a1: str) -> str:
    return quote(a1, safe="")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return value
    return canonical_json(value)


def _first_row(answered_range: str) -> int:
    """The sheet row where an answered range (`'Sheet1'!A2:D9`) starts."""
    match = _FIRST_ROW.search(answered_range)
    return int(match.group(1)) if match else 1


class GoogleSheets(Node):
    type = "google_sheets"
    display_name = "Google Sheets"
    group = NodeGroup.ACTION
    description = (
        "Per item, rows of a Google spreadsheet (credential slot `google`: a connected "
        "`google_oauth2` account or a `google_service_account` key): `append` a row (the "
        "item's fields under the header row's columns, or `values` as they are), `read` the "
        "rows of `sheet` (or `range`) as objects keyed by the header row, each with "
        "`row_number`; `update` the row `row_number`, or every row whose `match_column` "
        "holds `match_value`, with `fields` (default: the item); `lookup` the rows whose "
        "`lookup_column` holds `lookup_value`; `create_sheet` a sheet (tab) called `title`. "
        "Google's errors fail the item with Google's message; a 429 is retryable after "
        "Google's Retry-After or RetryInfo."
    )
    lineage = Lineage.ONE_TO_MANY
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "google": GOOGLE_CREDENTIAL_TYPES
    }
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "read",
                          "description": "What to do."},
            "spreadsheet_id": {"type": "string", "minLength": 1,
                               "description": "The spreadsheet's id (in its URL, after /d/)."},
            "sheet": {"type": "string", "minLength": 1, "default": "Sheet1",
                      "description": "The sheet's (tab's) title."},
            "range": {"type": "string", "minLength": 1,
                      "description": "read, lookup: A1 cells of the sheet, e.g. `A1:D100` "
                                     "(default: all of it); its first row is the header."},
            "header_row": {"type": "boolean", "default": True,
                           "description": "read, lookup: the first row holds the keys "
                                          "(false: keys are the column letters' positions, "
                                          "`col_1`, `col_2`...)."},
            "values": {"type": "array",
                       "description": "append: the row's cells as they are (default: the "
                                      "item's fields under the header's columns)."},
            "fields": {"type": "object", "additionalProperties": True,
                       "description": "update: column → new value (default: the item's "
                                      "fields, without row_number)."},
            "row_number": {"type": "integer", "minimum": 2,
                           "description": "update: the row to change."},
            "match_column": {"type": "string", "minLength": 1,
                             "description": "update: change the rows whose this column..."},
            "match_value": {"description": "update: ...holds this value."},
            "lookup_column": {"type": "string", "minLength": 1,
                              "description": "lookup: the column to search."},
            "lookup_value": {"description": "lookup: the value to find (compared as text)."},
            "first_match_only": {"type": "boolean", "default": False,
                                 "description": "lookup: only the first matching row."},
            "title": {"type": "string", "minLength": 1, "maxLength": 100,
                      "description": "create_sheet: the new sheet's title."},
            "value_input": {"type": "string", "enum": ["USER_ENTERED", "RAW"],
                            "default": "USER_ENTERED",
                            "description": "append, update: parse values as if typed "
                                           "(formulas, dates) or store them as they are."},
            "value_render": {"type": "string",
                             "enum": ["FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"],
                             "default": "FORMATTED_VALUE",
                             "description": "read, lookup, update: how cells are read."},
            "base_url": {"type": "string", "format": "uri", "default": BASE_URL,
                         "description": "The Sheets API's address (another one for tests)."},
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["operation", "spreadsheet_id"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "read")
        problems = [
            f"{name} is required for {operation}"
            for name in _REQUIRED.get(operation, ())
            if parameters.get(name) is None
        ]
        if operation == "update" and parameters.get("row_number") is None and (
            parameters.get("match_column") is None or parameters.get("match_value") is None
        ):
            problems.append("update needs row_number, or match_column and match_value")
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        sheets: _Sheets | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal sheets
            operation = params.text("operation", index)
            if sheets is None:
                sheets = await _connect(ctx, params, index, operation)
            rows = await _OPERATIONS[operation](sheets, params, item, index)
            return [item.derive(row, index) for row in rows]

        return await amap_items(ctx, apply)


async def _connect(ctx: NodeContext, params: Params, index: int, operation: str) -> _Sheets:
    credential = await ctx.credential("google")
    timeout_s = params.number("timeout_s", index)
    http = ctx.http()
    token = await access_token(http, credential, SCOPES, now=ctx.now, timeout_s=timeout_s,
                               operation=f"google_sheets {operation}")  # fmt: skip
    rest = Rest(
        http, SERVICE, params.text("base_url", index).rstrip("/"), now=ctx.now,
        timeout_s=timeout_s, headers={"Authorization": f"Bearer {token}"}, secrets=(token,),
    )  # fmt: skip
    return _Sheets(rest)


class _Sheets:
    """One activation's calls to the Sheets API, with the header rows it read."""

    def __init__(self, rest: Rest) -> None:
        self.rest = rest
        self._headers: dict[tuple[str, str], list[str]] = {}

    def values_path(self, spreadsheet: str, a1: str, suffix: str = "") -> str:
        return f"/v4/spreadsheets/{quote(spreadsheet, safe='')}/values/{_path_range(a1)}{suffix}"

    async def get_values(
        self, operation: str, spreadsheet: str, a1: str, render: str
    ) -> tuple[int, list[list[Any]]]:
        """The rows of `a1` and the sheet row the first one is."""
        answer = await self.rest.call(
            operation, "GET", self.values_path(spreadsheet, a1),
            params={"majorDimension": "ROWS", "valueRenderOption": render},
        )  # fmt: skip
        body = answer.body
        if not isinstance(body, dict):
            raise self.rest.error(operation, "the answer is not a JSON object")
        values = body.get("values") or []
        if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
            raise self.rest.error(operation, "the answer's values are not rows")
        return _first_row(str(body.get("range") or a1)), values

    async def header(self, operation: str, spreadsheet: str, sheet: str) -> list[str]:
        key = (spreadsheet, sheet)
        if key not in self._headers:
            _, rows = await self.get_values(operation, spreadsheet, _a1(sheet, "1:1"),
                                            "FORMATTED_VALUE")  # fmt: skip
            self._headers[key] = [str(cell) for cell in rows[0]] if rows else []
        return self._headers[key]


def _keys(header: Sequence[Any], width: int, use_header: bool) -> list[str]:
    if not use_header:
        return [f"col_{position}" for position in range(1, width + 1)]
    keys = [str(cell) for cell in header]
    return keys + [f"col_{position}" for position in range(len(keys) + 1, width + 1)]


def _objects(first_row: int, rows: list[list[Any]], use_header: bool) -> list[JsonObject]:
    """Rows as objects by the header (the first row when `use_header`)."""
    header: list[Any] = rows[0] if use_header and rows else []
    data = rows[1:] if use_header else rows
    start = first_row + (1 if use_header else 0)
    width = max([len(header), *(len(row) for row in data)], default=0)
    keys = _keys(header, width, use_header)
    out: list[JsonObject] = []
    for offset, row in enumerate(data):
        cells = list(row) + [""] * (width - len(row))
        obj: JsonObject = dict(zip(keys, cells, strict=True))
        obj[ROW_NUMBER] = start + offset
        out.append(obj)
    return out


def _target(params: Params, index: int) -> tuple[str, str]:
    return params.text("spreadsheet_id", index), params.text("sheet", index)


async def _read_rows(
    sheets: _Sheets, params: Params, index: int, operation: str
) -> list[JsonObject]:
    spreadsheet, sheet = _target(params, index)
    cells = params.optional_text("range", index)
    first, rows = await sheets.get_values(operation, spreadsheet, _a1(sheet, cells),
                                          params.text("value_render", index))  # fmt: skip
    return _objects(first, rows, params.flag("header_row", index))


async def _read(sheets: _Sheets, params: Params, _item: Item, index: int) -> list[JsonObject]:
    return await _read_rows(sheets, params, index, "read")


async def _lookup(sheets: _Sheets, params: Params, _item: Item, index: int) -> list[JsonObject]:
    column = params.text("lookup_column", index)
    wanted = _text(params.required("lookup_value", index))
    rows = await _read_rows(sheets, params, index, "lookup")
    if rows and column not in rows[0]:
        raise sheets.rest.error("lookup", f"the sheet has no column {column!r}",
                                item_index=index)  # fmt: skip
    found = [row for row in rows if _text(row.get(column)) == wanted]
    return found[:1] if params.flag("first_match_only", index) else found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else canonical_json(_cell(value))


def _row_of(header: Sequence[str], fields: Mapping[str, Any], operation: str,
            rest: Rest, index: int) -> list[Any]:  # fmt: skip
    unknown = [name for name in fields if name not in header]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown[:5])
        raise rest.error(operation, f"the sheet's header has no column {listed}",
                         item_index=index)  # fmt: skip
    return [_cell(fields.get(name)) for name in header]


async def _append(sheets: _Sheets, params: Params, item: Item, index: int) -> list[JsonObject]:
    spreadsheet, sheet = _target(params, index)
    given = params.get("values", index)
    rows: list[list[Any]]
    if given is not None:
        rows = [[_cell(value) for value in params.array("values", index)]]
    else:
        fields = {k: v for k, v in item.json.items() if k != ROW_NUMBER}
        header = await sheets.header("append", spreadsheet, sheet)
        if not header:  # an empty sheet: the first item's keys become its header
            header[:] = list(fields)
            rows = [list(header), _row_of(header, fields, "append", sheets.rest, index)]
        else:
            rows = [_row_of(header, fields, "append", sheets.rest, index)]
    answer = await sheets.rest.call(
        "append", "POST", sheets.values_path(spreadsheet, _a1(sheet), ":append"),
        params={"valueInputOption": params.text("value_input", index),
                "insertDataOption": "INSERT_ROWS", "includeValuesInResponse": False},
        json={"majorDimension": "ROWS", "values": rows},
    )  # fmt: skip
    updates = answer.body.get("updates") if isinstance(answer.body, dict) else None
    if not isinstance(updates, dict):
        raise sheets.rest.error("append", "the answer has no updates")
    return [{**item.json, "updated_range": updates.get("updatedRange"),
             ROW_NUMBER: _first_row(str(updates.get("updatedRange") or "")) + len(rows) - 1}]


async def _update(sheets: _Sheets, params: Params, item: Item, index: int) -> list[JsonObject]:
    spreadsheet, sheet = _target(params, index)
    render = params.text("value_render", index)
    first, rows = await sheets.get_values("update", spreadsheet, _a1(sheet), render)
    existing = _objects(first, rows, True)
    header = [str(cell) for cell in rows[0]] if rows else []
    number = params.get("row_number", index)
    if number is not None:
        targets = [row for row in existing if row[ROW_NUMBER] == number]
        if not targets:
            raise sheets.rest.error("update", f"the sheet has no row {number}",
                                    item_index=index)  # fmt: skip
    else:
        column = params.text("match_column", index)
        if column not in header:
            raise sheets.rest.error("update", f"the sheet has no column {column!r}",
                                    item_index=index)  # fmt: skip
        wanted = _text(params.required("match_value", index))
        targets = [row for row in existing if _text(row.get(column)) == wanted]
    given = params.get("fields", index)
    fields = dict(given) if isinstance(given, dict) else dict(item.json)
    fields.pop(ROW_NUMBER, None)
    changed = [{**{k: v for k, v in row.items() if k in header}, **fields} for row in targets]
    data = [
        {"range": _a1(sheet, f"A{row[ROW_NUMBER]}"),
         "values": [_row_of(header, new, "update", sheets.rest, index)]}
        for row, new in zip(targets, changed, strict=True)
    ]  # fmt: skip
    if data:
        await sheets.rest.call(
            "update", "POST",
            f"/v4/spreadsheets/{quote(spreadsheet, safe='')}/values:batchUpdate",
            json={"valueInputOption": params.text("value_input", index), "data": data},
        )  # fmt: skip
    return [{**new, ROW_NUMBER: row[ROW_NUMBER]}
            for row, new in zip(targets, changed, strict=True)]  # fmt: skip


async def _create_sheet(
    sheets: _Sheets, params: Params, _item: Item, index: int
) -> list[JsonObject]:
    spreadsheet = params.text("spreadsheet_id", index)
    title = params.text("title", index)
    answer = await sheets.rest.call(
        "create_sheet", "POST", f"/v4/spreadsheets/{quote(spreadsheet, safe='')}:batchUpdate",
        json={"requests": [{"addSheet": {"properties": {"title": title}}}]},
    )  # fmt: skip
    replies = answer.body.get("replies") if isinstance(answer.body, dict) else None
    try:
        properties = replies[0]["addSheet"]["properties"]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        raise sheets.rest.error("create_sheet", "the answer has no addSheet reply") from None
    if not isinstance(properties, dict):
        raise sheets.rest.error("create_sheet", "the answer has no sheet properties")
    return [properties]


_Operation = Callable[[_Sheets, Params, Item, int], Awaitable[list[JsonObject]]]
_OPERATIONS: Final[Mapping[str, _Operation]] = {
    "append": _append, "read": _read, "update": _update, "lookup": _lookup,
    "create_sheet": _create_sheet,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (GoogleSheets,)
CREDENTIALS: tuple[CredentialType, ...] = (GOOGLE_OAUTH2, GOOGLE_SERVICE_ACCOUNT)
