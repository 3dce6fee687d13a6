"""The body of a webhook call as its workflow sees it, for the content types other than
JSON (which `webhooks._parse_body` reads itself: it is the hot path).

- `application/x-www-form-urlencoded`: an object of the fields; a name sent more than
  once gets the list of its values, in order (`tag=a&tag=b` → `{"tag": ["a", "b"]}`);
- `multipart/form-data`: the same for its text fields; each file (a part with a
  `filename`, or whose bytes are not UTF-8) is an `Upload` beside the fields, not in
  them: `WebhookService` stores it in the blob store and the trigger item carries it as
  a binary, `binary[<field name>]`, as n8n's webhook does (a name ending in `[]` loses
  it; a name with several files gets `name0`, `name1`... in order). The body limit
  bounds them;
- `text/*`: the text, decoded with the `charset` parameter (UTF-8 by default);
- anything else: the text when the bytes are UTF-8, else `{"base64": ...}`.

A form that cannot be read (bytes that are not its charset, a multipart body without a
boundary or cut short) is `Invalid`, a 422 with its code: never the raw bytes in place of
the fields the workflow expects. What the values may hold (NUL, size) is for
`ExecutionService.create` to check, as for every input.
"""

from __future__ import annotations

import base64
import codecs
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from linkflow.services.errors import Invalid

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["Body", "Upload", "parse_body"]

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Upload:
    """A file of a multipart body, to become the trigger item's `binary[name]`."""

    name: str
    """The binary's name: the part's field name (see the module docstring)."""
    file_name: str | None
    mime_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Body:
    """A body as the workflow gets it: `value` is the item's `body`; `files` its binaries."""

    value: Any
    files: tuple[Upload, ...] = ()


def parse_body(content_type: str, body: bytes) -> Body:
    """`body` (not empty) as the workflow gets it, by `content_type` (the header's value)."""
    media, options = parse_options_header(content_type)
    kind = media.decode("latin-1").lower()
    charset = _charset(options.get(b"charset"))
    if kind == FORM:
        return Body(_form(body, charset))
    if kind == MULTIPART:
        return _multipart(body, options.get(b"boundary"))
    if kind.startswith("text/"):
        try:
            return Body(body.decode(charset))
        except UnicodeDecodeError:
            pass  # a wrong charset parameter: keep the bytes, as below
    try:
        return Body(body.decode("utf-8"))
    except UnicodeDecodeError:
        return Body({"base64": base64.b64encode(body).decode()})


def _charset(raw: bytes | None) -> str:
    """The codec a `charset` parameter names; UTF-8 when absent or unknown."""
    if not raw:
        return "utf-8"
    try:
        return codecs.lookup(raw.decode("latin-1").strip()).name
    except LookupError:
        return "utf-8"


def _collect(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Fields in order; a repeated name gets the list of its values."""
    fields: dict[str, Any] = {}
    repeated: set[str] = set()
    for name, value in pairs:
        if name not in fields:
            fields[name] = value
        elif name in repeated:
            fields[name].append(value)
        else:
            fields[name] = [fields[name], value]
            repeated.add(name)
    return fields


def _form(body: bytes, charset: str) -> dict[str, Any]:
    try:
        text = body.decode(charset)
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise Invalid(f"the form body is not valid {charset}", code="invalid_form") from None
    return _collect(pairs)


class _Parts:
    """The callbacks of python-multipart's parser, keeping each part's headers and bytes."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[bytes, bytes], bytes]] = []
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._data = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin, "on_part_data": self._on_data,
            "on_part_end": self._end_part, "on_header_field": self._on_field,
            "on_header_value": self._on_value, "on_header_end": self._end_header,
            "on_end": self._end,
        }  # fmt: skip

    def _begin(self) -> None:
        self._headers, self._data = {}, bytearray()

    def _on_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def _on_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _end_header(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()

    def _end_part(self) -> None:
        self.parts.append((self._headers, bytes(self._data)))

    def _end(self) -> None:
        self.ended = True


def _multipart(body: bytes, boundary: bytes | None) -> Body:
    if not boundary:
        raise Invalid("the multipart body has no boundary in its Content-Type",
                      code="invalid_multipart")  # fmt: skip
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        parser.write(body)
        parser.finalize()
    except FormParserError as error:
        raise Invalid(f"the multipart body is malformed: {error}",
                      code="invalid_multipart") from None  # fmt: skip
    if not parts.ended:
        # The parser does not check the end itself (`finalize` is a no-op).
        raise Invalid("the multipart body ends before its closing boundary",
                      code="invalid_multipart")  # fmt: skip
    fields: list[tuple[str, Any]] = []
    files: list[Upload] = []
    for headers, data in parts.parts:
        field = _field(headers, data)
        if isinstance(field, Upload):
            files.append(field)
        else:
            fields.append(field)
    return Body(_collect(fields), _named(files))


def _field(headers: dict[bytes, bytes], data: bytes) -> tuple[str, str] | Upload:
    """A part: a (name, text) pair for a field, an `Upload` for a file."""
    disposition, options = parse_options_header(headers.get(b"content-disposition"))
    if disposition.lower() != b"form-data" or b"name" not in options:
        raise Invalid("a multipart part has no Content-Disposition: form-data with a name",
                      code="invalid_multipart")  # fmt: skip
    name = _text(options[b"name"])
    content_type = headers.get(b"content-type")
    if b"filename" not in options:
        try:
            return name, data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # binary data sent as a field: kept as a file without a name
    return Upload(
        name=name,
        file_name=_text(options[b"filename"]) if b"filename" in options else None,
        mime_type=_text(content_type) if content_type else OCTET_STREAM,
        data=data,
    )


def _named(files: list[Upload]) -> tuple[Upload, ...]:
    """The files under the names of their binaries: `doc[]` is `doc`; several files of
    one name are `doc0`, `doc1`... (n8n's names), skipping names another part took."""
    by_name: dict[str, list[Upload]] = {}
    for upload in files:
        by_name.setdefault(upload.name.removesuffix("[]") or upload.name, []).append(upload)
    taken = {name for name, group in by_name.items() if len(group) == 1}
    named: list[Upload] = []
    for name, group in by_name.items():
        if len(group) == 1:
            named.append(_renamed(group[0], name))
            continue
        index = 0
        for upload in group:
            while f"{name}{index}" in taken:
                index += 1
            taken.add(f"{name}{index}")
            named.append(_renamed(upload, f"{name}{index}"))
    return tuple(named)


def _renamed(upload: Upload, name: str) -> Upload:
    return Upload(name, upload.file_name, upload.mime_type, upload.data)


def _text(raw: bytes) -> str:
    """A header parameter: UTF-8 as browsers send it, else Latin-1 (every byte is one)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
