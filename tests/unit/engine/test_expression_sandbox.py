"""The sandbox: escapes are refused with an error, and resource limits hold."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from linkflow.engine import Engine
from linkflow.engine.expressions import ExpressionError, ExpressionSyntaxError, JinjaDialect
from linkflow.engine.expressions._budget import (
    EVALUATION_TEXT,
    EVALUATION_TIME_S,
    EXECUTION_TEXT,
    Budget,
)
from linkflow.engine.expressions._limits import MAX_TEXT


@pytest.fixture(scope="module")
def dialect() -> JinjaDialect:
    return JinjaDialect()


def scope() -> dict[str, object]:
    return {
        "json": {"name": "Ada", "tags": ["a", "b"], "address": {"city": "London"}},
        "items": [],
        "vars": {"token": "s3cret"},
        "now": datetime(2026, 1, 15, 10, 30, tzinfo=UTC),
        "item_index": 0,
    }


def refusal(dialect: JinjaDialect, source: str) -> ExpressionError:
    """The error `source` fails with, at compile time or when evaluated."""
    with pytest.raises(ExpressionError) as caught:
        dialect.compile(source).evaluate(scope())
    return caught.value


ESCAPES = [
    "{{ json.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ joiner() }}",
    "{{ namespace(a=1) }}",
    "{{ self }}",
    "{{ self._TemplateReference__context }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request }}",
    "{{ '{0.__class__}'.format(json) }}",
    "{{ '{0.__class__.__mro__}'.format_map({'0': json}) }}",
    "{{ '{x.__init__.__globals__}'.format(x=uuid) }}",
    "{{ json.__init__ }}",
    "{{ json['__class__'] }}",
    "{{ json.tags.__len__() }}",
    "{{ json.tags._private }}",
    "{{ now.__class__ }}",
    "{{ now._private }}",
    "{{ item_index.__class__.__base__ }}",
    "{{ range.__self__ }}",
    "{{ uuid.__globals__ }}",
    "{{ uuid.__wrapped__ }}",
    "{{ dict.mro() }}",
    "{{ json.get.__self__ }}",
    "{{ json | attr('__class__') }}",
    "{{ json.tags | map(attribute='__class__') | list }}",
    "{{ json.tags | map('attr', '__class__') | list }}",
    "{{ json.tags | selectattr('__class__') | list }}",
    "{{ json.tags | sort(attribute='__class__') }}",
    "{{ _rng }}",
    "{{ __builtins__ }}",
    "{{ json.tags.append('x') }}",
    "{{ json.address.update({'city': 'Paris'}) }}",
    "{{ json.address.pop('city') }}",
    "{{ json.tags.clear() }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escape_is_an_error_never_data(dialect: JinjaDialect, source: str) -> None:
    """Private attributes, template internals and mutation all fail with an ExpressionError."""
    error = refusal(dialect, source)
    assert error.message
    assert "jinja" not in error.message.lower()


def test_refused_mutation_leaves_the_scope_untouched(dialect: JinjaDialect) -> None:
    """Values are read-only: a refused append changes nothing."""
    data = scope()
    with pytest.raises(ExpressionError, match="read-only"):
        dialect.compile("{{ json.tags.append('x') }}").evaluate(data)
    assert data["json"] == {"name": "Ada", "tags": ["a", "b"], "address": {"city": "London"}}


def test_format_string_attribute_access_is_blocked(dialect: JinjaDialect) -> None:
    """str.format is sandboxed: fields cannot reach private attributes."""
    assert refusal(dialect, "{{ '{0.__class__}'.format(json) }}").message == (
        "access to '__class__' is not allowed"
    )
    assert dialect.compile("{{ '{0[name]}!'.format(json) }}").evaluate(scope()) == "Ada!"


@pytest.mark.parametrize("name", ["pprint", "safe"])
def test_removed_filters_are_unknown(dialect: JinjaDialect, name: str) -> None:
    """Filters that print Python reprs or mark markup safe are not available."""
    with pytest.raises(ExpressionSyntaxError, match=f"unknown filter '{name}'"):
        dialect.compile(f"{{{{ json | {name} }}}}")


@pytest.mark.parametrize("name", ["lipsum", "cycler", "joiner", "namespace"])
def test_removed_globals_are_unknown_names(dialect: JinjaDialect, name: str) -> None:
    """Jinja's statement-oriented globals are gone."""
    assert refusal(dialect, f"{{{{ {name} }}}}").message == f"unknown name '{name}'"


def test_statements_and_loops_are_refused(dialect: JinjaDialect) -> None:
    """`{% for %}` cannot run: statements do not compile at all."""
    with pytest.raises(ExpressionSyntaxError, match="statements"):
        dialect.compile("{% for i in range(10**9) %}x{% endfor %}")


LIMITS = [
    ("{{ 'a' * 10**10 }}", "the repeated text would be too long"),
    ("{{ 10**10 * 'a' }}", "the repeated text would be too long"),
    ("{{ [1] * 10**9 }}", "the repeated list would be too long"),
    ("{{ (1, 2) * 10**9 }}", "the repeated list would be too long"),
    ("{{ 2 ** 100000 }}", "the power is too large"),
    ("{{ 9 ** (9 ** 9) }}", "the power is too large"),
    ("{{ (2 ** 4000) * (2 ** 4000) }}", "the product is too large"),
    ("{{ range(10**9) | list }}", "range() is too large"),
    ("{{ range(10**9) }}", "range() is too large"),
    ("{{ 'x'.ljust(10**9) }}", "the result of ljust would be too long"),
    ("{{ 'x'.center(10**9) }}", "the result of center would be too long"),
    ("{{ 'x'.zfill(10**9) }}", "the result of zfill would be too long"),
    ("{{ '\\t'.expandtabs(10**9) }}", "the expanded text would be too long"),
    ("{{ ('a' * 10**6).replace('a', 'a' * 20) }}", "the replaced text would be too long"),
    ("{{ ('x' * 10**6).join(['a'] * 20) }}", "the joined text would be too long"),
    ("{{ '%999999999s' % 'a' }}", "a formatted field would be too long"),
    ("{{ '%*s' % (10**9, 'a') }}", "'*' widths are not supported"),
    ("{{ ('%s' * 100000) % ((('x' * 1000),) * 100000) }}", "the formatted text would be too long"),
    ("{{ '{:999999999}'.format(1) }}", "a formatted field would be too long"),
    ("{{ '{:{}}'.format(1, 10**9) }}", "nested fields are not supported"),
    ("{{ 'a' | center(10**9) }}", "the centered text would be too long"),
    ("{{ ('a\\n' * 10**6) | indent(100) }}", "the indented text would be too long"),
    ("{{ ('a' * 10**6) | replace('a', 'b' * 20) }}", "the replaced text would be too long"),
    ("{{ range(100000) | join('x' * 1000) }}", "the joined text would be too long"),
    ("{{ ('a ' * 10**6) | wordwrap(1, wrapstring='x' * 99) }}", "the wrapped text would be"),
    ("{{ '%999999999s' | format('a') }}", "a formatted field would be too long"),
    ("{{ [1] | batch(10**9, 0) | list }}", "the count is too large"),
    ("{{ [1] | slice(10**7) | list }}", "the count is too large"),
    ("{{ 'a' | pad_start(10**9) }}", "the padded text would be too long"),
    ("{{ 'a' * 6000000 }}{{ 'b' * 6000000 }}", "the rendered text would be too long"),
    ("{{ 'a' * 6000000 ~ 'b' * 6000000 }}", "the result would be too long"),
    ("{{ ('a' * 200000) | regex_match('a') }}", "the text is too long for a regex"),
    ("{{ 'aa' | regex_match('(a)\\\\1') }}", "invalid regex '(a)\\1': invalid escape sequence"),
    ("{{ 'ab' | regex_match('a(?=b)') }}", "invalid regex 'a(?=b)': invalid perl operator"),
    ("{{ 'a' | regex_match('a', 'x') }}", "the regex flag 'x' (verbose) is not supported"),
    ("{{ ('a' * 1000) | regex_replace('a', 'b' * 10**5) }}", "the replaced text would be"),
]


@pytest.mark.parametrize(("source", "message"), LIMITS)
def test_resource_limit_is_enforced_before_computing(
    dialect: JinjaDialect, source: str, message: str
) -> None:
    """Amplifying operations are refused with a message instead of exhausting memory."""
    assert refusal(dialect, source).message.startswith(message)


def test_rendered_text_limit_is_ten_million_characters(dialect: JinjaDialect) -> None:
    """Exactly at the limit is allowed; one character more is not."""
    half = MAX_TEXT // 2
    text = dialect.compile(f"{{{{ 'a' * {half} }}}}{{{{ 'b' * {half} }}}}").evaluate(scope())
    assert isinstance(text, str)
    assert len(text) == MAX_TEXT
    with pytest.raises(ExpressionError, match="too long"):
        dialect.compile(f"{{{{ 'a' * {half} }}}}{{{{ 'b' * {half + 1} }}}}").evaluate(scope())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ ('ab' * 1000) | length }}", 2000),
        ("{{ ([0] * 1000) | length }}", 1000),
        ("{{ 2 ** 64 }}", 2**64),
        ("{{ range(1000) | sum }}", 499500),
        ("{{ 'x'.ljust(5, '.') }}", "x...."),
        ("{{ '%05.1f' % 3.14159 }}", "003.1"),
        ("{{ '{:>6}'.format('ab') }}", "    ab"),
        ("{{ 'a-b' | replace('-', '--') }}", "a--b"),
        ("{{ 'aaa' | regex_replace('a', 'bb') }}", "bbbbbb"),
    ],
)
def test_reasonable_sizes_are_allowed(dialect: JinjaDialect, source: str, expected: object) -> None:
    """The limits leave ordinary workloads alone."""
    assert dialect.compile(source).evaluate(scope()) == expected


# -- what one evaluation may spend (`_budget`) ------------------------------------------

CATASTROPHIC_REGEXES = [
    ("{{ ('a' * 30000) | regex_match('(a|a)*b') }}", False),
    ("{{ ('a' * 30000 ~ '!') | regex_match('^(\\\\w+\\\\s?)*$') }}", False),
    ("{{ ('a' * 30000) | regex_match('(a+)+$') }}", True),
]


@pytest.mark.parametrize(("source", "expected"), CATASTROPHIC_REGEXES)
def test_a_backtracking_pattern_answers_at_once(
    dialect: JinjaDialect, source: str, expected: bool
) -> None:
    """Patterns that take Python's `re` exponential time answer in linear time (RE2): the
    result is right, and the evaluation stays far inside its time budget."""
    budget = Budget(seconds=EVALUATION_TIME_S)
    assert dialect.compile(source).evaluate(scope()) is expected
    assert time.perf_counter() < budget.deadline


def test_many_values_each_under_the_limit_are_refused_in_total(dialect: JinjaDialect) -> None:
    """150 strings of ten million characters each: every one passes the size check, their
    total does not; refused before the memory is taken."""
    source = "{{ range(150) | map('string') | map('center', 9999999) | list | length }}"
    assert refusal(dialect, source).message.startswith(
        f"the expression would build more than {EVALUATION_TEXT:,} characters in total"
    )


def test_the_total_is_per_evaluation(dialect: JinjaDialect) -> None:
    """The budget starts afresh at each evaluation: two evaluations each near the total
    both succeed."""
    source = "{{ range(15) | map('string') | map('center', 1000000) | list | length }}"
    expression = dialect.compile(source)
    assert [expression.evaluate(scope()) for _ in range(3)] == [15, 15, 15]


def test_a_long_chain_of_work_is_stopped_at_the_time_budget(dialect: JinjaDialect) -> None:
    """Work that is bounded step by step but long in total ends with the time limit's error,
    a little after the limit (checked at every filter call), not whenever it finishes."""
    replace = "map('regex_replace', '(\\\\d)', '\\\\1\\\\1')"
    chain = " | ".join([replace] * 12)
    source = "{{ range(100000) | map('string') | " + chain + " | join | length }}"
    started = time.perf_counter()
    error = refusal(dialect, source)
    took = time.perf_counter() - started
    # Which budget stops it first depends on the machine's speed: its time, or (a fast
    # core gets there within the 0.5 s) the 20M characters it builds; either way promptly.
    assert error.message.startswith((
        f"the expression ran longer than its limit of {EVALUATION_TIME_S:g} s",
        "the expression would build more than",
    ))  # fmt: skip
    assert took < EVALUATION_TIME_S * 4


async def test_an_execution_runs_out_of_text_across_many_items() -> None:
    """Each item's evaluation stays within its own budget, but the run's expressions
    together may not build more than `EXECUTION_TEXT`: the set node fails with that
    limit instead of holding hundreds of megabytes of outputs."""
    engine = Engine()
    workflow = engine.compile({
        "name": "many",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "shape", "type": "set",
             "parameters": {"fields": {"big": "{{ 'x' * 9000000 }}"}}},
        ],
        "connections": [{"from": "start", "to": "shape"}],
    })  # fmt: skip
    items = [{"n": n} for n in range(EXECUTION_TEXT // 9_000_000 + 2)]
    result = await engine.run(workflow, input=items)
    assert result.state.status.value == "failed"
    assert result.state.error is not None
    assert "this execution's expressions would build more than" in result.state.error["message"]
