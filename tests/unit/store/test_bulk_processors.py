"""The writer's direct SQLite processors store exactly what SQLAlchemy's would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from sqlalchemy import Uuid
from sqlalchemy.dialects import sqlite

from linkflow.store import ExecutionStatus
from linkflow.store.bulk import processor_for
from linkflow.store.database import _json_dumps
from linkflow.store.types import JSONDocument, StrEnumType, UTCDateTime

DIALECT = sqlite.dialect(json_serializer=_json_dumps)
SAMPLES: list[tuple[Any, list[Any]]] = [
    (UTCDateTime(), [
        datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 7, 0, 1, 5, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))),
    ]),
    (JSONDocument(), [{}, {"a": [1, 2.5, "é", None, True]}, [], "text", 3]),
    (StrEnumType(ExecutionStatus), [ExecutionStatus.RUNNING, "completed"]),
    (Uuid(), [uuid.uuid4(), uuid.UUID(int=0)]),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "values"), SAMPLES, ids=lambda v: type(v).__name__)
def test_the_same_text_as_sqlalchemy(type_: Any, values: list[Any]) -> None:
    fast = processor_for(type_, DIALECT)
    general = type_.dialect_impl(DIALECT).bind_processor(DIALECT)
    assert fast is not general
    for value in values:
        assert fast is not None
        assert general is not None
        assert fast(value) == general(value), value


def test_naive_datetimes_and_unknown_enum_values_are_refused_alike() -> None:
    with pytest.raises(ValueError, match="naive"):
        processor_for(UTCDateTime(), DIALECT)(datetime(2026, 1, 1))  # type: ignore[misc]  # noqa: DTZ001
    with pytest.raises(ValueError, match="exploded"):
        processor_for(StrEnumType(ExecutionStatus), DIALECT)("exploded")  # type: ignore[misc]


@pytest.mark.parametrize(("type_", "values"), SAMPLES, ids=lambda v: type(v).__name__)
def test_the_text_of_the_writer_channel_is_stored_as_the_object(
    type_: Any, values: list[Any]
) -> None:
    """The SQLite writer process receives ids and times as orjson's text of them."""
    fast = processor_for(type_, DIALECT)
    assert fast is not None
    for value in values:
        assert fast(orjson.loads(orjson.dumps(value))) == fast(value), value
