"""Splitting a parameter string into literal text and `{{ ... }}` blocks.

The split is ours, not Jinja's, so that each block is compiled on its own: an
error then points at its block, and a plain look-up block (`json.a.b`) can skip
Jinja entirely. The scanner follows Jinja's lexer: a block ends at the first
`}}` outside string literals and brackets, and `{{-` / `-}}` trim whitespace.
Statements (`{% %}`) and comments (`{# #}`) are refused: parameters only hold
values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from linkflow.engine.expressions._protocol import ExpressionSyntaxError

__all__ = ["Block", "Lookup", "parse_lookup", "split_template"]


@dataclass(frozen=True, slots=True)
class Block:
    """One `{{ ... }}`: `start` is the offset of `{{`, `code_offset` that of `code`."""

    start: int
    code: str
    code_offset: int


_OPENING = re.compile(r"\{[{%#]")
_OPENERS = "([{"
_CLOSERS = ")]}"


def _string_end(source: str, pos: int) -> int:
    """Offset just past the string literal opening at `pos`, or -1 when unclosed."""
    quote = source[pos]
    pos += 1
    while pos < len(source):
        char = source[pos]
        if char == "\\":
            pos += 2
            continue
        if char == quote:
            return pos + 1
        pos += 1
    return -1


def _block_end(source: str, start: int) -> int:
    """Offset of the `}}` closing the block whose code starts at `start`, or -1."""
    depth = 0
    fallback = -1
    pos = start
    while pos < len(source):
        char = source[pos]
        if char in "'\"":
            end = _string_end(source, pos)
            if end < 0:
                break
            pos = end
            continue
        if char == "}" and source.startswith("}}", pos):
            if depth == 0:
                return pos
            if fallback < 0:
                fallback = pos  # unbalanced brackets: let the parser explain
        if char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth = max(depth - 1, 0)
        pos += 1
    return fallback


def _refuse_statement(source: str, pos: int) -> ExpressionSyntaxError:
    kind = "statements ({% ... %})" if source[pos + 1] == "%" else "comments ({# ... #})"
    return ExpressionSyntaxError(
        f"{kind} are not supported: parameters hold values only; "
        "use an inline condition such as {{ 'a' if x else 'b' }}, "
        "or write a literal brace as {{ '{' }}",
        position=pos,
    )


def split_template(source: str) -> list[str | Block]:
    """Literal text and blocks, in order; raises `ExpressionSyntaxError`."""
    parts: list[str | Block] = []
    pos = 0
    trim_next = False
    while True:
        match = _OPENING.search(source, pos)
        literal = source[pos : match.start() if match else len(source)]
        if trim_next:
            literal = literal.lstrip()
        if match is None:
            if literal:
                parts.append(literal)
            return parts
        opening = match.start()
        if match.group() != "{{":
            raise _refuse_statement(source, opening)
        code_start = opening + 2
        end = _block_end(source, code_start)
        if end < 0:
            raise ExpressionSyntaxError("'{{' is never closed with '}}'", position=opening)
        code = source[code_start:end]
        if code.startswith("-"):
            literal = literal.rstrip()
            code = code[1:]
            code_start += 1
        trim_next = code.endswith("-")
        if trim_next:
            code = code[:-1]
        if literal:
            parts.append(literal)
        parts.append(Block(opening, code, code_start))
        pos = end + 2


@dataclass(frozen=True, slots=True)
class Lookup:
    """A block that only reads a path: `root` then steps `(is_attribute, key)`."""

    root: str
    steps: tuple[tuple[bool, str | int], ...]


_KEYWORDS = frozenset(
    {"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is",
     "if", "else", "self", "loop", "caller", "varargs", "kwargs"}
)  # fmt: skip
_STEP = r"""\.[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:-?\d+|'[^'\\]*'|"[^"\\]*")\s*\]"""
_LOOKUP = re.compile(rf"\s*([A-Za-z][A-Za-z0-9_]*)((?:{_STEP})*)\s*")
_STEPS = re.compile(
    r"""\.(?P<attr>[A-Za-z_][A-Za-z0-9_]*)|\[\s*(?:(?P<int>-?\d+)|'(?P<sq>[^'\\]*)'|"(?P<dq>[^"\\]*)")\s*\]"""
)


def parse_lookup(code: str) -> Lookup | None:
    """The path when `code` is a plain look-up such as `json.a["b"][0]`, else None."""
    match = _LOOKUP.fullmatch(code)
    if match is None or match.group(1) in _KEYWORDS:
        return None
    steps: list[tuple[bool, str | int]] = []
    for step in _STEPS.finditer(match.group(2)):
        attr, number, single, double = step.group("attr", "int", "sq", "dq")
        if attr is not None:
            steps.append((True, attr))
        elif number is not None:
            steps.append((False, int(number)))
        else:
            steps.append((False, single if single is not None else double))
    return Lookup(match.group(1), tuple(steps))
