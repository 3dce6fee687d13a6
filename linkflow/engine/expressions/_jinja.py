"""The Jinja2 dialect: `{{ ... }}` blocks evaluated by Jinja's sandbox.

A source is split into literal text and blocks (`_template`); each block is
compiled on its own, so errors carry the offset of their block. A source that
is exactly one block yields the block's native value; otherwise the values are
rendered into text. Blocks that only read a path (`json.a["b"][0]`) skip Jinja
and index the scope directly with the sandbox's own access rules. Compiled
sources are kept in a bounded LRU cache.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from itertools import chain
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.lexer import Token, TokenStream, ignored_tokens
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.runtime import Context

from linkflow.engine.expressions._budget import enter, leave, spend_text
from linkflow.engine.expressions._convert import render_text, to_json_value
from linkflow.engine.expressions._errors import translate
from linkflow.engine.expressions._limits import MAX_TEXT, check_text
from linkflow.engine.expressions._protocol import (
    Expression,
    ExpressionError,
    ExpressionSyntaxError,
)
from linkflow.engine.expressions._registry import build_sandbox
from linkflow.engine.expressions._sandbox import Sandbox
from linkflow.engine.expressions._template import Block, Lookup, parse_lookup, split_template

__all__ = ["JinjaDialect"]

_RESULT = "_result"
#: Names Jinja treats specially in templates; meaningless in a parameter.
_RESERVED = frozenset({"self", "loop", "caller", "varargs", "kwargs"})


def _failure(exc: Exception, position: int) -> ExpressionError | None:
    error = translate(exc)
    return None if error is None else error.at(position)


class _ExpressionContext(Context):
    """`Context` without what an expression never uses (blocks, exports, template name).

    Jinja's own constructor costs about as much as evaluating a simple
    expression; this one sets the same attributes and shares a read-only
    `EvalContext` (only `{% autoescape %}` would change it, and there are no
    statements here).
    """

    def __init__(self, environment: Sandbox, parent: dict[str, Any], eval_ctx: EvalContext) -> None:
        self.parent = parent
        self.vars = {}
        self.environment = environment
        self.eval_ctx = eval_ctx
        self.exported_vars = set()
        self.name = None
        self.globals_keys = set()
        self.blocks = {}


class _JinjaBlock:
    """A block compiled by Jinja; `names` are the names it reads."""

    __slots__ = ("_env", "_eval_ctx", "_globals", "_names", "_root", "position")

    def __init__(self, env: Sandbox, root: Callable[[Context], Any], names: tuple[str, ...],
                 position: int) -> None:  # fmt: skip
        self._env = env
        self._eval_ctx = EvalContext(env, None)
        self._globals = env.globals
        self._root = root
        self._names = names
        self.position = position

    def raw(self, scope: Mapping[str, object]) -> object:
        # The context holds only the names the block reads (scope first, then
        # globals), plus `_rng` for the functions that draw randomness: far
        # cheaper than merging the whole scope with every global.
        names: dict[str, Any] = {}
        for name in self._names:
            if name in scope:
                names[name] = scope[name]
            elif name in self._globals:
                names[name] = self._globals[name]
            else:
                raise ExpressionError(f"unknown name '{name}'", position=self.position)
        if "_rng" in scope:
            names["_rng"] = scope["_rng"]
        context = _ExpressionContext(self._env, names, self._eval_ctx)
        budget = enter()
        try:
            for _ in self._root(context):
                pass
        except Exception as exc:
            error = _failure(exc, self.position)
            if error is None:
                raise
            raise error from exc
        finally:
            leave(budget)
        return context.vars[_RESULT]


class _LookupBlock:
    """A plain path look-up, evaluated without Jinja (falls back to it for globals)."""

    __slots__ = ("_compile", "_fallback", "_getattr", "_getitem", "_lookup", "position")

    def __init__(self, env: Sandbox, lookup: Lookup, position: int,
                 compile_fallback: Callable[[], _JinjaBlock]) -> None:  # fmt: skip
        self._lookup = lookup
        self._getattr = env.getattr
        self._getitem = env.getitem
        self._compile = compile_fallback
        self._fallback: _JinjaBlock | None = None
        self.position = position

    def raw(self, scope: Mapping[str, object]) -> object:
        lookup = self._lookup
        if lookup.root not in scope:
            if self._fallback is None:  # a benign race: both threads compile the same block
                self._fallback = self._compile()
            return self._fallback.raw(scope)
        value: Any = scope[lookup.root]
        try:
            for is_attribute, key in lookup.steps:
                # an attribute step's key is always a str (see `parse_lookup`)
                value = self._getattr(value, key) if is_attribute else self._getitem(value, key)  # type: ignore[arg-type]
                if isinstance(value, Undefined):
                    return value
        except Exception as exc:
            error = _failure(exc, self.position)
            if error is None:
                raise
            raise error from exc
        return value


_BlockEval = _JinjaBlock | _LookupBlock


def _finish(value: object, position: int) -> object:
    try:
        result = to_json_value(value)
    except ExpressionError as error:
        raise error.at(position) from None
    if isinstance(result, str):
        check_text(len(result), "the result")
    return result


class _Static:
    """A source without `{{`: evaluates to itself."""

    __slots__ = ("source",)

    is_static = True

    def __init__(self, source: str) -> None:
        self.source = source

    def evaluate(self, scope: Mapping[str, object]) -> object:
        return self.source


class _Native:
    """Exactly one block: its native value (number, list, object, null...)."""

    __slots__ = ("_block", "source")

    is_static = False

    def __init__(self, source: str, block: _BlockEval) -> None:
        self.source = source
        self._block = block

    def evaluate(self, scope: Mapping[str, object]) -> object:
        return _finish(self._block.raw(scope), self._block.position)


class _Text:
    """Text with blocks: each value rendered (null → "", lists and objects as JSON)."""

    __slots__ = ("_parts", "source")

    is_static = False

    def __init__(self, source: str, parts: tuple[str | _BlockEval, ...]) -> None:
        self.source = source
        self._parts = parts

    def evaluate(self, scope: Mapping[str, object]) -> object:
        out: list[str] = []
        size = 0
        for part in self._parts:
            if isinstance(part, str):
                text = part
            else:
                try:
                    text = render_text(part.raw(scope))
                except ExpressionError as error:
                    raise error.at(part.position) from None
            size += len(text)
            if size > MAX_TEXT:
                check_text(size, "the rendered text")  # raises: over the limit
            out.append(text)
        spend_text(size)
        return "".join(out)


_UNEXPECTED_CHAR = re.compile(r"unexpected char (.+?) at (\d+)")


def _syntax_message(message: str) -> str:
    escape = re.search(r"invalid escape sequence '(.+?)'", message)
    if escape:
        return f"invalid escape sequence '{escape[1]}' in a string: write a backslash as \\\\"
    message = _UNEXPECTED_CHAR.sub(r"unexpected character \1", message)
    message = message.replace("end of print statement", "end of expression")
    message = message.replace("end of template", "end of expression").rstrip(".")
    found = re.fullmatch(r"expected token 'end of expression', got '(.+)'", message)
    if found:
        return f"unexpected '{found[1]}'"
    if message == "unexpected 'end of expression'":
        return "unexpected end of expression"
    return message[:1].lower() + message[1:]


def _syntax_position(block: Block, lineno: int, message: str, token_offset: int = -1) -> int:
    """The lexer names the offset of a bad character; else the failing token's, else its line's."""
    found = _UNEXPECTED_CHAR.search(message)
    if found:
        return block.code_offset + int(found[2])
    if token_offset >= 0:
        return block.code_offset + token_offset
    lines = block.code.split("\n")[: max(lineno - 1, 0)]
    return block.code_offset + sum(len(line) + 1 for line in lines)


class JinjaDialect:
    """The Jinja2 sandbox dialect. Construct once per process; thread-safe."""

    name = "jinja"

    def __init__(self, *, cache_size: int = 4096) -> None:
        self._env = build_sandbox()
        self._compile_cached: Callable[[str], Expression] = lru_cache(maxsize=cache_size)(
            self._compile
        )

    @property
    def filter_names(self) -> frozenset[str]:
        """Every filter available in expressions (Jinja's kept built-ins and the library)."""
        return frozenset(self._env.filters)

    @property
    def function_names(self) -> frozenset[str]:
        """Every global function available in expressions."""
        return frozenset(self._env.globals)

    def is_expression(self, value: str) -> bool:
        """True when `value` holds `{{` (or `{%`/`{#`, which compile refuses)."""
        return "{{" in value or "{%" in value or "{#" in value

    def compile(self, source: str) -> Expression:
        """Compile `source` (cached); raises `ExpressionSyntaxError`."""
        return self._compile_cached(source)

    def _compile(self, source: str) -> Expression:
        if not self.is_expression(source):
            return _Static(source)
        parts = split_template(source)
        blocks = [p for p in parts if isinstance(p, Block)]
        evaluators = {id(b): self._compile_block(b) for b in blocks}
        if len(blocks) == 1 and all(isinstance(p, Block) or p.isspace() for p in parts):
            return _Native(source, evaluators[id(blocks[0])])
        return _Text(source, tuple(p if isinstance(p, str) else evaluators[id(p)] for p in parts))

    def _compile_block(self, block: Block) -> _BlockEval:
        lookup = parse_lookup(block.code)
        if lookup is None:
            return self._compile_jinja(block)
        return _LookupBlock(self._env, lookup, block.start, lambda: self._compile_jinja(block))

    def _parser(self, code: str) -> tuple[Parser, dict[int, int]]:
        """A parser over `code` that remembers where each token starts."""
        lexer = self._env.lexer
        starts: list[int] = []
        offsets: dict[int, int] = {}

        def significant() -> Iterator[tuple[int, str, str]]:
            pos = 0
            for lineno, kind, value in lexer.tokeniter(code, None, None, "variable"):
                if kind not in ignored_tokens:
                    starts.append(pos)
                    yield lineno, kind, value
                pos += len(value)

        def tracked() -> Iterator[Token]:
            for index, token in enumerate(lexer.wrap(significant())):
                offsets[id(token)] = starts[index]
                yield token

        parser = Parser(self._env, "", state="variable")
        parser.stream = TokenStream(tracked(), None, None)
        return parser, offsets

    def _parse(self, block: Block) -> nodes.Expr:
        if not block.code.strip():
            raise ExpressionSyntaxError("empty expression", position=block.start)
        parser, offsets = self._parser(block.code)
        try:
            expr = parser.parse_expression()
            if not parser.stream.eos:
                token = parser.stream.current
                raise TemplateSyntaxError(f"unexpected '{token.value}'", token.lineno)
        except TemplateSyntaxError as error:
            message = error.message or "invalid syntax"
            current = parser.stream.current
            offset = offsets.get(id(current), len(block.code) if current.type == "eof" else -1)
            position = _syntax_position(block, error.lineno, message, offset)
            raise ExpressionSyntaxError(_syntax_message(message), position=position) from None
        except RecursionError:
            raise ExpressionSyntaxError(
                "the expression is nested too deeply", position=block.start
            ) from None
        return expr

    def _check(self, expr: nodes.Expr, block: Block) -> tuple[str, ...]:
        """Refuse unknown filters and tests and reserved names; return the names read."""
        names: list[str] = []
        for node in chain([expr], expr.find_all((nodes.Name, nodes.Filter, nodes.Test))):
            if isinstance(node, nodes.Name):
                if node.name.startswith("_") or node.name in _RESERVED:
                    raise ExpressionSyntaxError(
                        f"'{node.name}' is not available in expressions", position=block.start
                    )
                if node.name not in names:
                    names.append(node.name)
            elif isinstance(node, nodes.Filter) and node.name not in self._env.filters:
                raise self._unknown("filter", node.name, self._env.filters, block)
            elif isinstance(node, nodes.Test) and node.name not in self._env.tests:
                raise self._unknown("test", node.name, self._env.tests, block)
        return tuple(names)

    @staticmethod
    def _unknown(kind: str, name: str, known: Mapping[str, object], block: Block) -> Exception:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        marker = r"\|\s*" if kind == "filter" else r"\bis\s+(?:not\s+)?"
        found = re.search(rf"{marker}{re.escape(name)}\b", block.code)
        position = block.code_offset + found.start() if found else block.start
        return ExpressionSyntaxError(f"unknown {kind} '{name}'{hint}", position=position)

    def _compile_jinja(self, block: Block) -> _JinjaBlock:
        expr = self._parse(block)
        names = self._check(expr, block)
        body: list[nodes.Node] = [nodes.Assign(nodes.Name(_RESULT, "store"), expr, lineno=1)]
        try:
            template = self._env.from_string(nodes.Template(body, lineno=1))
        except TemplateSyntaxError as error:
            message = _syntax_message(error.message or "invalid syntax")
            raise ExpressionSyntaxError(message, position=block.start) from None
        except (RecursionError, SyntaxError, MemoryError):
            raise ExpressionSyntaxError(
                "the expression is nested too deeply", position=block.start
            ) from None
        return _JinjaBlock(self._env, template.root_render_func, names, block.start)
