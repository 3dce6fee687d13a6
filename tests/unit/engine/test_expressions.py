"""Semantics of the Jinja dialect: native vs rendered results, missing values,
the fast path for look-ups, caching, errors and determinism."""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

import linkflow.engine.expressions as expressions
from linkflow.engine.expressions import (
    Dialect,
    Expression,
    ExpressionError,
    ExpressionSyntaxError,
    JinjaDialect,
)
from linkflow.engine.expressions._sandbox import Sandbox

NOW = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)


class FixedRng:
    """An `_rng` that replays a fixed sequence."""

    def __init__(self) -> None:
        self.uuids = iter(
            ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"]
        )

    def uuid4(self) -> str:
        return next(self.uuids)

    def random(self) -> float:
        return 0.99


class LineageProblem(Exception):
    """Stands in for an engine error raised by a scope object."""


class NodeView:
    """Like the engine's `node["x"]`: attributes, one of which may fail."""

    def __init__(self, items: list[dict[str, object]]) -> None:
        self.items = items

    @property
    def json(self) -> dict[str, object]:
        return self.items[0]

    @property
    def item(self) -> dict[str, object]:
        raise LineageProblem("item 0 of node 'b' does not descend from node 'a'")


class NodeLookup:
    """Like the engine's `node`: item and attribute access, not a Mapping."""

    def __getitem__(self, name: str) -> NodeView:
        if name != "fetch":
            raise LineageProblem(f"there is no node {name!r}")
        return NodeView([{"status": 200}, {"status": 404}])

    def __getattr__(self, name: str) -> NodeView:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]


def make_scope(**json: object) -> dict[str, object]:
    item = json or {
        "name": "Ada",
        "age": 36,
        "zip": "123",
        "tags": ["a", "b"],
        "address": {"city": "London"},
        "items": [{"id": 7}],
        "note": None,
    }
    return {
        "json": item,
        "item_index": 0,
        "items": [item],
        "node": NodeLookup(),
        "trigger": [],
        "vars": {"x": 1},
        "execution": {"id": "e1", "mode": "manual", "attempt": 1},
        "workflow": {"id": "w1", "name": "W", "version": 1},
        "now": NOW,
        "today": NOW.date(),
    }


@pytest.fixture(scope="module")
def dialect() -> JinjaDialect:
    return JinjaDialect()


def evaluate(dialect: JinjaDialect, source: str, scope: dict[str, object] | None = None) -> object:
    return dialect.compile(source).evaluate(make_scope() if scope is None else scope)


def failure(
    dialect: JinjaDialect, source: str, scope: dict[str, object] | None = None
) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        evaluate(dialect, source, scope)
    return caught.value


class TestPublicSurface:
    def test_public_names_are_pinned(self) -> None:
        """The package exports exactly the interface the engine uses."""
        assert expressions.__all__ == [
            "Dialect",
            "Expression",
            "ExpressionError",
            "ExpressionSyntaxError",
            "JinjaDialect",
            "end_run",
            "start_run",
        ]

    def test_jinja_dialect_satisfies_the_protocols(self) -> None:
        """JinjaDialect and its compiled expressions fit `Dialect` and `Expression`."""
        dialect: Dialect = JinjaDialect()
        expression: Expression = dialect.compile("{{ 1 }}")
        assert dialect.name == "jinja"
        assert expression.source == "{{ 1 }}"
        assert expression.is_static is False

    def test_syntax_error_is_an_expression_error(self) -> None:
        """Catching ExpressionError also catches syntax errors."""
        assert issubclass(ExpressionSyntaxError, ExpressionError)


class TestStaticStrings:
    def test_string_without_braces_is_static_and_returns_itself(
        self, dialect: JinjaDialect
    ) -> None:
        """A source without `{{` evaluates to itself, whatever the scope."""
        expression = dialect.compile("plain text with } and {")
        assert expression.is_static is True
        assert expression.evaluate({}) == "plain text with } and {"

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("{{ x }}", True),
            ("a {{x}} b", True),
            ("{% if %}", True),
            ("{# c #}", True),
            ("a { b }", False),
        ],
    )
    def test_is_expression_detects_blocks(
        self, dialect: JinjaDialect, value: str, expected: bool
    ) -> None:
        """is_expression is true exactly when the string needs compiling."""
        assert dialect.is_expression(value) is expected


class TestNativeResults:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("{{ json.age }}", 36),
            ("{{ json.age > 18 }}", True),
            ("{{ json.tags }}", ["a", "b"]),
            ("{{ json.address }}", {"city": "London"}),
            ("{{ json.note }}", None),
            ("{{ 1.5 }}", 1.5),
            ("{{ {'a': [1, none]} }}", {"a": [1, None]}),
        ],
    )
    def test_single_expression_keeps_native_type(
        self, dialect: JinjaDialect, source: str, expected: object
    ) -> None:
        """A source that is exactly one block yields the value, not its text."""
        result = evaluate(dialect, source)
        assert result == expected
        assert type(result) is type(expected)

    def test_surrounding_whitespace_still_yields_native_value(self, dialect: JinjaDialect) -> None:
        """Whitespace around the only block does not turn the result into text."""
        assert evaluate(dialect, "  \n {{ json.age }}\t ") == 36

    def test_numeric_text_stays_text(self, dialect: JinjaDialect) -> None:
        """A string that looks like a number is not converted (unlike jinja2.nativetypes)."""
        assert evaluate(dialect, "{{ json.zip }}") == "123"
        assert evaluate(dialect, "{{ '[1, 2]' }}") == "[1, 2]"

    def test_datetime_and_date_become_iso_text(self, dialect: JinjaDialect) -> None:
        """Datetimes and dates are ISO 8601 in results, with Z for UTC."""
        assert evaluate(dialect, "{{ now }}") == "2026-01-15T10:30:00Z"
        assert evaluate(dialect, "{{ today }}") == "2026-01-15"

    def test_rich_values_are_converted_only_in_the_final_result(
        self, dialect: JinjaDialect
    ) -> None:
        """Tuples, sets and Decimals from the scope come out as JSON values."""
        scope = make_scope(pair=(1, 2), bag={"b", "a"}, price=Decimal("2.50"), count=Decimal("3"))
        assert evaluate(dialect, "{{ json.pair }}", scope) == [1, 2]
        assert evaluate(dialect, "{{ json.bag }}", scope) == ["a", "b"]
        assert evaluate(dialect, "{{ json.price }}", scope) == 2.5
        assert evaluate(dialect, "{{ json.count }}", scope) == 3
        assert evaluate(dialect, "{{ now | add_days(1) }}") == "2026-01-16T10:30:00Z"

    def test_iterators_become_lists(self, dialect: JinjaDialect) -> None:
        """Jinja's lazy filters (map, select) give lists as results."""
        assert evaluate(dialect, "{{ json.tags | map('upper') }}") == ["A", "B"]
        assert evaluate(dialect, "{{ json.address.keys() }}") == ["city"]

    def test_function_result_is_an_error(self, dialect: JinjaDialect) -> None:
        """A function that was not called is not silently turned into text."""
        assert failure(dialect, "{{ json.address.keys }}").message == (
            "the result is a function; call it with ()"
        )

    def test_long_text_is_shortened_in_messages(self, dialect: JinjaDialect) -> None:
        """A message quotes at most 40 characters of the offending text."""
        assert (
            failure(dialect, "{{ ('9' * 5000) | to_int }}").message
            == f"'{'9' * 39}…' is not a number"
        )

    def test_non_finite_numbers_become_null(self, dialect: JinjaDialect) -> None:
        """inf and nan have no JSON form; they become null."""
        assert evaluate(dialect, "{{ 'inf' | float }}") is None
        assert evaluate(dialect, "{{ json.x * 2 }}", make_scope(x=float("nan"))) is None


class TestRenderedText:
    def test_mixed_template_renders_each_value_as_text(self, dialect: JinjaDialect) -> None:
        """null renders empty, booleans lower-case, objects as compact JSON, datetimes ISO."""
        source = "{{ json.name }}|{{ json.note }}|{{ true }}|{{ json.address }}|{{ now }}|{{ 2.5 }}"
        assert evaluate(dialect, source) == 'Ada||true|{"city":"London"}|2026-01-15T10:30:00Z|2.5'

    def test_whitespace_control_trims_around_blocks(self, dialect: JinjaDialect) -> None:
        """`{{-` and `-}}` remove the whitespace next to the block, as in Jinja."""
        assert evaluate(dialect, "a   {{- json.age -}}   b") == "a36b"

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ('{{ "}}" }}', "}}"),
            ("x{{ {'a': {'b': 1}} }}y", 'x{"a":{"b":1}}y'),
            ("{{ '{{' }} literal", "{{ literal"),
            ("{{ json.name }} } and }}", "Ada } and }}"),
        ],
    )
    def test_block_boundaries_follow_strings_and_brackets(
        self, dialect: JinjaDialect, source: str, expected: object
    ) -> None:
        """A block ends at the first `}}` outside strings and brackets."""
        assert evaluate(dialect, source) == expected


class TestMissingValues:
    def test_missing_key_chains_to_null(self, dialect: JinjaDialect) -> None:
        """Reading through a missing key is null, not an error."""
        assert evaluate(dialect, "{{ json.a.b.c }}") is None
        assert evaluate(dialect, "{{ json['a']['b'] }}") is None
        assert evaluate(dialect, "{{ json.tags[10] }}") is None
        assert evaluate(dialect, "{{ json.note.x }}") is None

    def test_missing_key_renders_as_nothing(self, dialect: JinjaDialect) -> None:
        """In text a missing value is empty."""
        assert evaluate(dialect, "[{{ json.a.b }}]") == "[]"

    def test_missing_value_equals_none_and_takes_defaults(self, dialect: JinjaDialect) -> None:
        """A missing value equals none, is not defined, and `default` replaces it."""
        assert evaluate(dialect, "{{ json.x == none }}") is True
        assert evaluate(dialect, "{{ json.x is defined }}") is False
        assert evaluate(dialect, "{{ json.x | default('d') }}") == "d"
        assert evaluate(dialect, "{{ json.x | coalesce('c') }}") == "c"

    def test_unknown_top_level_name_is_an_error(self, dialect: JinjaDialect) -> None:
        """A typo in a scope name fails instead of silently producing null."""
        assert failure(dialect, "{{ jsn.name }}").message == "unknown name 'jsn'"
        assert failure(dialect, "{{ jsn.name | upper }}").message == "unknown name 'jsn'"

    def test_calling_a_missing_function_is_an_error(self, dialect: JinjaDialect) -> None:
        """Calling something undefined names it."""
        assert failure(dialect, "{{ json.nothing() }}").message == (
            "'nothing' is undefined, so it cannot be called"
        )
        assert failure(dialect, "{{ nofunc() }}").message == "unknown name 'nofunc'"

    def test_arithmetic_and_ordering_on_a_missing_value_name_it(
        self, dialect: JinjaDialect
    ) -> None:
        """Using a missing value in an operation says which value was missing."""
        assert (
            failure(dialect, "{{ json.price * 2 }}").message
            == "cannot use '*': 'price' is undefined"
        )
        assert failure(dialect, "{{ json.price > 2 }}").message == (
            "cannot compare using '>': 'price' is undefined"
        )


class TestKeysAndAttributes:
    def test_dict_keys_read_as_attributes_and_items(self, dialect: JinjaDialect) -> None:
        """`json.a` and `json["a"]` read the same key."""
        assert evaluate(dialect, "{{ json.address.city }}") == "London"
        assert evaluate(dialect, "{{ json['address']['city'] }}") == "London"

    def test_key_wins_over_a_dict_method_of_the_same_name(self, dialect: JinjaDialect) -> None:
        """`json.items` is the item's "items" key, not dict.items."""
        assert evaluate(dialect, "{{ json.items[0].id }}") == 7
        assert evaluate(dialect, "{{ (json.items)[0].id }}") == 7

    def test_dict_methods_work_when_no_key_shadows_them(self, dialect: JinjaDialect) -> None:
        """`json.get(...)` and `.keys()` remain usable."""
        assert evaluate(dialect, "{{ json.get('name') }}") == "Ada"
        assert evaluate(dialect, "{{ json.address.keys() | list }}") == ["city"]

    def test_underscore_keys_are_data(self, dialect: JinjaDialect) -> None:
        """Keys such as `_id` and `__typename` are readable like any key."""
        scope = make_scope(_id="x1", __typename="User")
        assert evaluate(dialect, "{{ json._id }}", scope) == "x1"
        assert evaluate(dialect, "{{ json.__typename }}", scope) == "User"
        assert evaluate(dialect, "{{ (json.__typename) }}", scope) == "User"

    def test_node_objects_expose_their_attributes(self, dialect: JinjaDialect) -> None:
        """`node["x"].json`, `node.x.items` read attributes of engine objects."""
        assert evaluate(dialect, "{{ node['fetch'].json.status }}") == 200
        assert evaluate(dialect, "{{ node.fetch.items | map(attribute='status') | list }}") == [
            200,
            404,
        ]
        assert evaluate(dialect, "{{ (node.fetch.items)[1].status }}") == 404

    def test_engine_errors_from_scope_objects_propagate(self, dialect: JinjaDialect) -> None:
        """An engine error raised by a scope object is not rewritten or swallowed."""
        with pytest.raises(LineageProblem):
            evaluate(dialect, "{{ node.fetch.item }}")
        with pytest.raises(LineageProblem):
            evaluate(dialect, "{{ node['other'].json | length }}")


def random_value(rng: random.Random, depth: int) -> object:
    kind = rng.choice(
        ["int", "str", "none", "dict", "list", "bool"] if depth < 3 else ["int", "str", "none"]
    )
    if kind == "dict":
        return {rng.choice("abcx"): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        "int": rng.randint(-5, 5),
        "str": rng.choice(["", "s", "abc"]),
        "none": None,
        "bool": True,
    }[kind]


def random_path(rng: random.Random) -> str:
    steps = []
    for _ in range(rng.randint(0, 4)):
        choice = rng.randint(0, 3)
        if choice == 0:
            steps.append("." + rng.choice("abcx"))
        elif choice == 1:
            steps.append(f"[{rng.choice('abcx')!r}]")
        elif choice == 2:
            steps.append(f"[{rng.randint(-3, 3)}]")
        else:
            steps.append(".keys" if rng.random() < 0.5 else ".upper")
    return "json" + "".join(steps)


def outcome(dialect: JinjaDialect, source: str, scope: dict[str, object]) -> tuple[str, object]:
    try:
        return ("value", dialect.compile(source).evaluate(scope))
    except ExpressionError as error:
        return ("error", (error.message, error.position))


class TestFastPath:
    def test_plain_lookups_do_not_compile_jinja(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`json.a.b`, `json["a"]`, `json.items[0].id`, `vars.x` never reach Jinja's compiler."""

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("Jinja compiled a plain look-up")

        dialect = JinjaDialect()
        monkeypatch.setattr(Sandbox, "from_string", refuse)
        scope = make_scope()
        for source in ["{{ json.address.city }}", '{{ json["name"] }}', "{{ json.items[0].id }}",
                       "{{ vars.x }}", "Hi {{ json.name }}!"]:  # fmt: skip
            dialect.compile(source).evaluate(scope)

    def test_fast_path_equals_jinja_path(self, dialect: JinjaDialect) -> None:
        """For random data and paths, the look-up path and Jinja agree (values and errors)."""
        rng = random.Random(20260115)  # noqa: S311 - seeded, so the property test is reproducible
        for _ in range(500):
            scope = make_scope()
            scope["json"] = random_value(rng, 0)
            path = random_path(rng)
            fast = outcome(dialect, "{{ " + path + " }}", scope)
            slow = outcome(dialect, "{{ (" + path + ") }}", scope)
            assert fast == slow, path

    def test_lookup_of_a_global_falls_back_to_jinja(self, dialect: JinjaDialect) -> None:
        """A look-up whose root is not in the scope resolves like Jinja would."""
        assert failure(dialect, "{{ uuid }}").message == "the result is a function; call it with ()"
        assert failure(dialect, "x {{ nothing.here }}").position == 2


class TestCaching:
    def test_compiling_twice_returns_the_same_object(self, dialect: JinjaDialect) -> None:
        """Compiled expressions are cached by source."""
        assert dialect.compile("{{ json.name | upper }}") is dialect.compile(
            "{{ json.name | upper }}"
        )

    def test_cache_is_bounded(self) -> None:
        """The least recently used source is evicted when the cache is full."""
        dialect = JinjaDialect(cache_size=2)
        first = dialect.compile("{{ 1 }}")
        dialect.compile("{{ 2 }}")
        dialect.compile("{{ 3 }}")
        assert dialect.compile("{{ 1 }}") is not first

    def test_dialect_is_safe_to_share_between_threads(self) -> None:
        """Concurrent compiles and evaluations give the same results as serial ones."""
        dialect = JinjaDialect(cache_size=8)
        sources = [f"{{{{ json.age + {i} }}}} {{{{ json.name | upper }}}}" for i in range(16)]
        expected = [f"{36 + i} ADA" for i in range(16)]
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(5):
                    for source, result in zip(sources, expected, strict=True):
                        assert dialect.compile(source).evaluate(make_scope()) == result
            except BaseException as error:  # noqa: BLE001 - reported to the main thread below
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


class TestErrors:
    def test_runtime_error_reports_the_offset_of_its_block(self, dialect: JinjaDialect) -> None:
        """The position is that of the failing `{{`, here the second block."""
        error = failure(dialect, "ok {{ json.age }} then {{ json.age / 0 }}")
        assert (error.message, error.position) == ("cannot divide by zero", 23)

    def test_syntax_error_points_at_the_offending_token(self, dialect: JinjaDialect) -> None:
        """A syntax error's position is the token where parsing failed."""
        with pytest.raises(ExpressionSyntaxError) as caught:
            dialect.compile("Hi {{ json.a b }}")
        assert (caught.value.message, caught.value.position) == ("unexpected 'b'", 13)

    def test_syntax_error_on_a_later_line_maps_to_that_line(self, dialect: JinjaDialect) -> None:
        """Multi-line blocks report an offset inside the right line."""
        source = "{{ json.a\n  + $ }}"
        with pytest.raises(ExpressionSyntaxError) as caught:
            dialect.compile(source)
        assert caught.value.message == "unexpected character '$'"
        assert caught.value.position == source.index("$")

    def test_unknown_filter_is_found_at_compile_time_with_a_suggestion(
        self, dialect: JinjaDialect
    ) -> None:
        """A misspelt filter fails when the workflow is compiled, pointing at it."""
        with pytest.raises(ExpressionSyntaxError) as caught:
            dialect.compile("{{ json.name | uper }}")
        assert caught.value.message == "unknown filter 'uper' (did you mean 'upper'?)"
        assert caught.value.position == 13

    def test_unknown_test_is_found_at_compile_time(self, dialect: JinjaDialect) -> None:
        """`is` with an unknown test fails at compile time."""
        with pytest.raises(ExpressionSyntaxError, match="unknown test 'fancy'"):
            dialect.compile("{{ json is fancy }}")

    def test_unknown_filter_passed_by_name_fails_at_evaluation(self, dialect: JinjaDialect) -> None:
        """`map('uper')` can only be checked when it runs; the message is still plain."""
        assert (
            failure(dialect, "{{ json.tags | map('uper') | list }}").message
            == "unknown filter 'uper'"
        )

    @pytest.mark.parametrize(
        ("source", "message", "position"),
        [
            ("{% if x %}a{% endif %}", "statements ({% ... %}) are not supported", 0),
            ("a {# note #}", "comments ({# ... #}) are not supported", 2),
            ("a {{ json.name", "'{{' is never closed with '}}'", 2),
            ("{{ }}", "empty expression", 0),
            ("{{ (1 }}", "unexpected end of expression, expected ')'", 6),
            ("{{ self }}", "'self' is not available in expressions", 0),
            ("{{ loop.index }}", "'loop' is not available in expressions", 0),
            ("{{ _rng }}", "'_rng' is not available in expressions", 0),
        ],
    )
    def test_compile_refuses_what_parameters_cannot_hold(
        self, dialect: JinjaDialect, source: str, message: str, position: int
    ) -> None:
        """Statements, comments, unclosed or empty blocks and reserved names fail to compile."""
        with pytest.raises(ExpressionSyntaxError) as caught:
            dialect.compile(source)
        assert caught.value.message.startswith(message)
        assert caught.value.position == position

    @pytest.mark.parametrize(
        "source",
        [
            "{{ json.age + 'x' }}",
            "{{ json.name - 1 }}",
            "{{ json.name < 1 }}",
            "{{ 5 | join }}",
            "{{ json.age | first }}",
            "{{ json.age() }}",
            "{{ json.name[0][0][0].x.y() }}",
            "{{ json.tags | sort(attribute='x.y') | sum }}",
            "{{ 'abc' | to_int }}",
            "{{ json | pad_start }}",
            "{{ json.address | pad_start(1, 2, 3, 4) }}",
            "{{ json.tags | chunk(0) }}",
            "{{ now | add_days('x') }}",
            "{{ now | to_timezone('Nowhere/Land') }}",
            "{{ 'x' | regex_match('(') }}",
            "{{ range(0, 10, 0) }}",
            "{{ '%d' % 'x' }}",
            "{{ -json.name }}",
            "{{ 'x' in 5 }}",
            "{{ json.tags.upper() }}",
            "{{ json | tojson | from_json | to_datetime }}",
            "{{ 10 ** 5000 }}",
            "{{ ('9' * 5000) | to_int }}",
        ],
    )
    def test_messages_never_show_python_internals(self, dialect: JinjaDialect, source: str) -> None:
        """Whatever fails, the message is plain: no class names, reprs or tracebacks."""
        message = failure(dialect, source).message
        for internal in ("NoneType", "dict object", "'int'", "'str'", "jinja2", "Traceback",
                         "Error", "0x", "<function", "<built-in", "__", "object"):  # fmt: skip
            assert internal not in message, message


class TestDeterminism:
    def test_uuid_draws_from_the_scope_rng(self, dialect: JinjaDialect) -> None:
        """`uuid()` uses the scope's `_rng`, so a replay gets the same ids."""
        scope = make_scope()
        scope["_rng"] = FixedRng()
        expression = dialect.compile("{{ uuid() }}/{{ uuid() }}")
        assert expression.evaluate(scope) == (
            "00000000-0000-4000-8000-000000000001/00000000-0000-4000-8000-000000000002"
        )

    def test_random_functions_draw_from_the_scope_rng(self, dialect: JinjaDialect) -> None:
        """random_int, shuffle and Jinja's random filter all use `_rng.random()`."""
        scope = make_scope()
        scope["_rng"] = FixedRng()
        assert evaluate(dialect, "{{ random_int(1, 6) }}", scope) == 6
        assert evaluate(dialect, "{{ [1, 2, 3] | random }}", scope) == 3
        assert evaluate(dialect, "{{ [1, 2, 3] | shuffle }}", scope) == [1, 2, 3]

    def test_uuid_without_a_scope_rng_is_a_fresh_uuid4(self, dialect: JinjaDialect) -> None:
        """Without `_rng` (previews, tests) the system's randomness is used."""
        first, second = evaluate(dialect, "{{ uuid() }}"), evaluate(dialect, "{{ uuid() }}")
        assert first != second
        assert evaluate(dialect, "{{ uuid() | is_uuid }}") is True

    def test_time_comes_only_from_the_scope(self, dialect: JinjaDialect) -> None:
        """`now` is the scope's; without it the name is unknown rather than the clock."""
        scope = make_scope()
        scope["now"] = datetime(1999, 12, 31, 23, 59, tzinfo=UTC)
        assert evaluate(dialect, "{{ now | add_minutes(1) }}", scope) == "2000-01-01T00:00:00Z"
        del scope["now"]
        assert failure(dialect, "{{ now }}", scope).message == "unknown name 'now'"

    def test_scope_may_be_any_mapping(self, dialect: JinjaDialect) -> None:
        """The engine may pass a read-only mapping instead of a dict."""
        from types import MappingProxyType

        scope = MappingProxyType(make_scope())
        assert (
            dialect.compile("{{ json.name | lower }} {{ today }}").evaluate(scope)
            == "ada 2026-01-15"
        )


def test_date_scope_values_work_with_filters(dialect: JinjaDialect) -> None:
    """`today` is a date and stays one through calendar filters."""
    scope = make_scope()
    scope["today"] = date(2026, 2, 28)
    assert evaluate(dialect, "{{ today | add_days(1) }}", scope) == "2026-03-01"
