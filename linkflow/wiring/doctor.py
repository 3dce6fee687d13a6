"""`linkflow doctor`: what a process with these settings would connect to, and whether each
part answers.

It reads the settings the way every command does and looks at each part a process
would use: the data dir, the database (reachable, its schema revision against this
LinkFlow's, whether the configured keys open the credentials stored there), Redis, the
blob store, the OTLP endpoint, the keys. It creates nothing (no data dir, no SQLite
file, no key) and changes nothing; every probe has a short timeout.

Each finding is `ok`, `failed` (a required part that does not answer: the command
exits non-zero), `warning` (the process would start, but something a user would miss
does not work: spans not exported, credentials that do not open) or `not set`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from linkflow.config import Settings
from linkflow.wiring.inventory import blob_directory, key_inventory

__all__ = ["Finding", "State", "examine"]

_PROTOBUF: Final = {"Content-Type": "application/x-protobuf"}
TIMEOUT_S: Final = 3.0
"""Each probe's limit: a part that does not answer in this is as good as down."""


class State(StrEnum):
    OK = "ok"
    FAILED = "failed"
    WARNING = "warning"
    UNSET = "not set"


@dataclass(frozen=True)
class Finding:
    part: str
    target: str
    """What the process would use (URLs without their passwords)."""
    state: State
    detail: str


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL that does not parse is shown as its scheme only
        return url.split(":", 1)[0] + "://..."


async def examine(settings: Settings) -> list[Finding]:
    """Every finding, in the order they are shown."""
    database, redis, blobs, otlp = await asyncio.gather(
        _database(settings), _redis(settings), _blobs(settings), _otlp(settings)
    )
    return [_data_dir(settings), *database, redis, blobs, otlp, *_keys(settings)]


def _data_dir(settings: Settings) -> Finding:
    path = settings.data_dir.resolve()
    if not path.exists():
        return Finding("data dir", str(path), State.OK, "not there yet: made at first start")
    if not path.is_dir():
        return Finding("data dir", str(path), State.FAILED, "is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        return Finding("data dir", str(path), State.FAILED, "not writable by this user")
    return Finding("data dir", str(path), State.OK, "exists, writable")


async def _database(settings: Settings) -> list[Finding]:
    from linkflow.store import StoreConfigError, StoreError
    from linkflow.store import migrate as store_migrate
    from linkflow.store.sqlite_backup import database_file

    url = settings.effective_database_url
    try:
        path = database_file(url)
    except StoreConfigError as error:
        return [Finding("database", _redacted(url), State.FAILED, str(error))]
    target = _redacted(url) if path is None else str(path)
    if path is not None and not path.exists():
        detail = "not there yet: `linkflow serve` creates and migrates it at start"
        return [Finding("database", str(path), State.OK, detail)]
    try:
        async with asyncio.timeout(TIMEOUT_S):
            revision = await store_migrate.current(url)
            key_ids = await _stored_key_ids(url)
    except TimeoutError:
        return [Finding("database", target, State.FAILED, "did not answer in time")]
    except StoreError as error:
        return [Finding("database", target, State.FAILED, str(error))]
    head = store_migrate.head()
    embedded = path is not None and not settings.is_production
    at = revision or "(none)"
    if revision == head:
        state, detail = State.OK, f"answers; schema at {head}, the newest"
    elif revision is not None and not store_migrate.known(revision):
        state, detail = State.FAILED, f"schema at {at}, newer than this LinkFlow knows: upgrade"
    elif embedded:
        state, detail = State.OK, f"answers; schema at {at}, migrated to {head} at start"
    else:
        state, detail = State.FAILED, f"schema at {at}, not {head}: run `linkflow migrate`"
    return [Finding("database", target, state, detail), _credentials(settings, key_ids)]


async def _stored_key_ids(url: str) -> set[str]:
    """The key ids of the stored credentials (none when there is no such table yet)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from linkflow.store import Database

    database = Database(url, pool_size=1)
    try:
        async with database.reader() as session:
            rows = await session.execute(text("SELECT DISTINCT key_id FROM credentials"))
            return {str(row[0]) for row in rows}
    except DBAPIError:
        return set()  # never migrated: nothing sealed
    finally:
        await database.dispose()


def _credentials(settings: Settings, stored: set[str]) -> Finding:
    have = key_inventory(settings).encryption_key_ids
    missing = stored - have
    target = f"key id(s) {', '.join(sorted(stored))}" if stored else "none stored"
    if missing:
        return Finding("credentials", target, State.WARNING,
                       f"sealed with {', '.join(sorted(missing))}, which no configured key is: "
                       "they will not open")  # fmt: skip
    return Finding("credentials", target, State.OK, "the configured keys open them")


async def _redis(settings: Settings) -> Finding:
    if settings.redis_url is None:
        return Finding("redis", "-", State.UNSET,
                       "embedded queue and bus (linkflow serve; api, worker and scheduler "
                       "need it)")  # fmt: skip
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    target = _redacted(settings.redis_url)
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=TIMEOUT_S,
                            socket_timeout=TIMEOUT_S)  # fmt: skip
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await client.ping()
    except TimeoutError:
        return Finding("redis", target, State.FAILED, "did not answer in time")
    except (RedisError, OSError) as error:
        return Finding("redis", target, State.FAILED, f"cannot reach it: {error}")
    finally:
        await client.aclose()
    return Finding("redis", target, State.OK, "answers PING")


async def _blobs(settings: Settings) -> Finding:
    directory = blob_directory(settings)
    if directory is not None:
        path = directory.resolve()
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK | os.X_OK):
            return Finding("blob store", str(path), State.FAILED, "cannot be written here")
        detail = "exists, writable" if existing == path else "made at first blob"
        return Finding("blob store", str(path), State.OK, detail)
    return await asyncio.to_thread(_s3, settings)


def _s3(settings: Settings) -> Finding:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from linkflow.blobs import parse_blob_url

    assert settings.blob_url is not None
    location = parse_blob_url(settings.blob_url)
    where = settings.blob_s3_endpoint or "AWS"
    target = f"{settings.blob_url} on {where}"
    secret = settings.blob_s3_secret_access_key
    session = boto3.session.Session(
        aws_access_key_id=settings.blob_s3_access_key_id,
        aws_secret_access_key=None if secret is None else secret.get_secret_value(),
        region_name=settings.blob_s3_region,
    )
    config = Config(
        connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, retries={"total_max_attempts": 1},
        s3={"addressing_style": "path"} if settings.blob_s3_endpoint else None,
    )  # fmt: skip
    client = session.client("s3", endpoint_url=settings.blob_s3_endpoint, config=config)
    try:
        client.head_bucket(Bucket=location.bucket)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "?")
        return Finding("blob store", target, State.FAILED, f"the bucket answers {code}")
    except BotoCoreError as error:
        return Finding("blob store", target, State.FAILED, f"cannot reach it: {error}")
    return Finding("blob store", target, State.OK, "the bucket answers")


async def _otlp(settings: Settings) -> Finding:
    if settings.otlp_endpoint is None:
        return Finding("otlp", "-", State.UNSET, "tracing is off")
    import httpx

    from linkflow.observability.tracing import TRACES_PATH

    url = settings.otlp_endpoint.rstrip("/")
    url = url if url.endswith(TRACES_PATH) else url + TRACES_PATH
    try:
        # An empty ExportTraceServiceRequest: a collector accepts it and stores nothing.
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            response = await client.post(url, content=b"", headers=_PROTOBUF)
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        return Finding("otlp", url, State.WARNING, f"cannot reach it ({reason}): spans are lost")
    if response.status_code >= 400:
        return Finding("otlp", url, State.WARNING, f"answers HTTP {response.status_code}")
    return Finding("otlp", url, State.OK, f"answers HTTP {response.status_code}")


def _keys(settings: Settings) -> list[Finding]:
    keys = key_inventory(settings)
    later = "generated into the data dir at first start"
    missing = State.FAILED if settings.is_production else State.OK
    findings = []
    for part, source, previous in (
        ("secret key", keys.secret_key, keys.previous_secret_keys),
        ("encryption key", keys.encryption_key, keys.previous_encryption_keys),
    ):
        if source is None:
            detail = "missing: production needs it set" if settings.is_production else later
            findings.append(Finding(part, "-", missing, detail))
            continue
        extra = f", and {previous} previous" if previous else ""
        findings.append(Finding(part, source, State.OK, f"present{extra}"))
    if keys.encryption_key_ids:
        findings[-1] = Finding(findings[-1].part, findings[-1].target, findings[-1].state,
                               f"{findings[-1].detail}; key id(s) "
                               f"{', '.join(sorted(keys.encryption_key_ids))}")  # fmt: skip
    return findings
