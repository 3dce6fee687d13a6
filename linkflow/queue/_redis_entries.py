"""Stream entries of the Redis queue (`queue.redis_streams`) as jobs, and back.

An entry holds a job when its `job` field is the seed envelope as JSON (an object with
every field, a known type and a known priority) and its `attempt` field a positive
integer. Anything else (garbage bytes, half an envelope, a type or priority this
version does not know, an entry with no `job` field) is undecodable: `decode` says why
(`Undecodable`), and the queue moves the entry to the dead letters at once with that
reason and the entry's raw text (a retry would decode it no better), never handing it
to a consumer. Dead letters are read back as leniently: one whose job cannot be decoded
is listed with `job` None and its `raw` text.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import orjson

from linkflow.queue.delivery import DeadLetter
from linkflow.queue.job import PRIORITY_ORDER, Job, JobType, Priority

__all__ = [
    "Bad",
    "Held",
    "Undecodable",
    "dead_letter_of",
    "decode",
    "decode_job",
    "encode",
    "entry_fields",
    "fields_text",
    "member",
    "raw_text",
    "read_entry",
    "text",
]

_FIELDS: Final = ("id", "type", "queue", "payload", "max_attempts", "timeout", "created_at")
"""The envelope's fields a job cannot be read without (`attempts` is the queue's)."""
_TYPES: Final = frozenset(kind.value for kind in JobType)
_PRIORITIES: Final = frozenset(priority.value for priority in Priority)


class Undecodable(Exception):
    """A stream entry that holds no job this version can run; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Held(NamedTuple):
    """An entry read and decoded, not handed out yet."""

    stream: str
    entry_id: str
    job: Job
    attempt: int
    raw: bytes
    """The job as stored: what `close` queues again, unchanged."""


class Bad(NamedTuple):
    """An entry read that holds no job: what its dead letter keeps."""

    stream: str
    entry_id: str
    raw: bytes
    attempt: int
    """The entry's attempt, 0 when it has none that can be read."""
    reason: str


def read_entry(stream: str, entry_id: str, job: bytes | None, attempt: bytes | None) -> Held | Bad:
    """An entry's `job` and `attempt` fields, decoded or not. When the entry has no `job`,
    `attempt` holds its fields as JSON (`entry_fields`; the read script does the same)."""
    try:
        decoded, number = decode(job, attempt)
    except Undecodable as error:
        known = 0
        if job is not None and attempt is not None:
            with contextlib.suppress(ValueError):
                known = max(int(attempt), 0)
        raw = job if job is not None else attempt or b""
        return Bad(stream, entry_id, raw, known, error.reason)
    assert job is not None
    return Held(stream, entry_id, decoded, number, job)


def entry_fields(fields: dict[Any, Any]) -> tuple[bytes | None, bytes | None]:
    """An entry's `job` and `attempt` fields, or (None, all its fields as JSON) without
    a `job` (see `read_entry`)."""
    field = {text(key): value for key, value in fields.items()}
    job = field.get("job")
    return (job, field.get("attempt")) if job is not None else (None, fields_text(fields))


def decode(job: bytes | None, attempt: bytes | None) -> tuple[Job, int]:
    """The job and attempt of an entry's `job` and `attempt` fields, or `Undecodable`."""
    decoded = decode_job(job)
    try:
        number = int(attempt) if attempt is not None else 0
    except ValueError:
        number = 0
    if number < 1:
        raise Undecodable("the entry's attempt is not a positive integer")
    return decoded, number


def decode_job(job: bytes | None) -> Job:
    """The job of an envelope, or `Undecodable` naming what is wrong with it."""
    if job is None:
        raise Undecodable("the entry has no job field")
    try:
        raw = orjson.loads(job)
    except orjson.JSONDecodeError as error:
        raise Undecodable(f"the job is not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise Undecodable("the job is not a JSON object")
    missing = [name for name in _FIELDS if name not in raw]
    if missing:
        raise Undecodable(f"the job lacks {', '.join(missing)}")
    if not isinstance(raw["type"], str) or raw["type"] not in _TYPES:
        raise Undecodable(f"unknown job type {raw['type']!r}")
    if not isinstance(raw["queue"], str) or raw["queue"] not in _PRIORITIES:
        raise Undecodable(f"unknown priority {raw['queue']!r}")
    if not isinstance(raw["payload"], dict):
        raise Undecodable("the job's payload is not a JSON object")
    try:
        return Job.from_json(raw)
    except (TypeError, ValueError, OverflowError) as error:
        raise Undecodable(f"the job's fields cannot be read ({error})") from None


def encode(job: Job, attempt: int) -> bytes:
    return orjson.dumps(job.to_json(attempts=attempt))


def member(job: Job, encoded: bytes, attempt: int) -> bytes:
    """A delayed job's member: its stream (by priority index), attempt and envelope, and a
    nonce (two delays of one job are two members)."""
    return orjson.dumps({"p": PRIORITY_ORDER.index(job.queue) + 1, "a": attempt,
                         "j": encoded.decode(), "n": secrets.token_hex(4)})  # fmt: skip


def fields_text(fields: dict[Any, Any]) -> bytes:
    """An entry's fields as a JSON object of texts: the raw entry, for a dead letter."""
    return orjson.dumps({text(key): raw_text(value) for key, value in fields.items()})


def dead_letter_of(entry_id: Any, fields: dict[Any, Any]) -> DeadLetter:
    """A dead-letter stream entry, read whatever it holds (a foreign or damaged entry is
    listed too, with what can be made of it)."""
    field = {text(key): value for key, value in fields.items()}
    raw = field.get("job")
    try:
        job: Job | None = decode_job(raw)
        kept = None
    except Undecodable:
        job, kept = None, raw_text(raw) if raw is not None else fields_text(fields).decode()
    try:
        attempts = int(field.get("attempts", 0))
    except ValueError:
        attempts = 0
    reason = raw_text(field["reason"]) if "reason" in field else "no reason was recorded"
    return DeadLetter(job=job, attempts=attempts, reason=reason,
                      at=_at(field.get("at"), text(entry_id)), raw=kept,
                      id=text(entry_id))  # fmt: skip


def _at(value: Any, entry_id: str) -> datetime:
    """When it was dead-lettered: its `at` field, else its entry id's milliseconds."""
    try:
        at = datetime.fromisoformat(text(value))
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromtimestamp(int(entry_id.partition("-")[0]) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)


def raw_text(value: Any) -> str:
    """Bytes as text, whatever they hold (invalid UTF-8 kept as backslash escapes)."""
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else str(value)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
