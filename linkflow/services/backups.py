"""`linkflow backup` and `linkflow restore` of an embedded installation, in one file.

A backup is a gzip-compressed tar archive whose members are, in this order:
- ``manifest.json``: ``{"format": "linkflow-backup", "version": 1, "created_at",
  "linkflow_version", "schema_revision", "counts", "key_ids", "blobs"}``, first, so
  a restore says what a file is before it unpacks anything;
- ``linkflow.db``: the SQLite database as of one moment (`store.sqlite_backup.snapshot`,
  taken while the server runs and writes);
- ``blobs/<aa>/<bb>/<sha256>``: every blob of a filesystem blob store. Blobs are
  content-addressed, written before the event that refers to them and never deleted,
  so copying them after the snapshot carries every blob the snapshot names. An S3
  store is named in the manifest, not copied (its bucket's own versioning or
  replication keeps it).

Not in it, on purpose: the keys. The encryption key opens every credential; kept in
the same file, whoever gets the backup gets the secrets. The manifest names the ids
of the keys the sealed values need (`key_ids`), and a restore refuses to go on when
the keys it would run with do not include them, unless told the secrets are lost.

Invariants:
- a backup is written to ``FILE.partial`` and renamed once complete: a file named
  FILE is always a whole backup;
- a restore checks the whole archive and the database in it before it touches the
  target, and replaces the database with one rename; the database it replaces is kept
  aside, never deleted;
- a file that is not a LinkFlow backup, a damaged one, or one from a newer schema is
  refused with a one-line reason (`InvalidBackup`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import orjson

from linkflow.services.errors import Conflict, Invalid
from linkflow.store.sqlite_backup import (
    NotALinkFlowDatabase,
    install,
    read_facts,
    snapshot,
)

__all__ = [
    "BackupManifest",
    "InvalidBackup",
    "MissingKeys",
    "Restored",
    "create_backup",
    "read_manifest",
    "restore_backup",
]

FORMAT: Final = "linkflow-backup"
VERSION: Final = 1
MANIFEST: Final = "manifest.json"
DATABASE: Final = "linkflow.db"
BLOBS: Final = "blobs/"
# What a blob member is called: the store's fan-out of a SHA-256 hex digest, nothing else
# (no member of a crafted archive can land outside the blob directory).
_BLOB_MEMBER: Final = re.compile(r"blobs/([0-9a-f]{2})/([0-9a-f]{2})/(\1\2[0-9a-f]{60})")
_MANIFEST_MAX_BYTES: Final = 1024 * 1024
_COPY_CHUNK: Final = 1024 * 1024


class InvalidBackup(Invalid):
    """The file is not a LinkFlow backup, is damaged, or cannot be restored by this
    version of LinkFlow."""

    default_code = "invalid_backup"


class MissingKeys(Conflict):
    """The keys a restore would run with cannot open the backup's sealed values."""

    default_code = "backup_keys_missing"


@dataclass(frozen=True)
class BackupManifest:
    created_at: str
    linkflow_version: str
    schema_revision: str
    counts: dict[str, int]
    key_ids: frozenset[str]
    blobs_carried: int
    blob_store: str
    """``filesystem`` or where the blobs stayed (an ``s3://`` URL)."""

    def as_json(self) -> bytes:
        return orjson.dumps({
            "format": FORMAT, "version": VERSION, "created_at": self.created_at,
            "linkflow_version": self.linkflow_version, "schema_revision": self.schema_revision,
            "counts": self.counts, "key_ids": sorted(self.key_ids),
            "blobs": {"store": self.blob_store, "carried": self.blobs_carried},
        }, option=orjson.OPT_INDENT_2)  # fmt: skip


@dataclass(frozen=True)
class Restored:
    manifest: BackupManifest
    replaced: Path | None
    """Where the database that was there before now is (None: there was none)."""
    blobs_written: int
    unopenable_key_ids: frozenset[str] = field(default_factory=frozenset)
    """Key ids the backup needs that the restore was told to do without."""


def _blob_files(root: Path | None) -> Iterator[tuple[str, Path]]:
    """(member name, path) of every blob under `root`, in a stable order."""
    if root is None or not root.is_dir():
        return
    for path in sorted(root.glob("*/*/*")):
        name = f"{BLOBS}{path.relative_to(root).as_posix()}"
        if path.is_file() and _BLOB_MEMBER.fullmatch(name):
            yield name, path  # a `.partial-` file of a write in progress is skipped


def create_backup(
    target: Path, *, database: Path, blobs: Path | None, blob_store: str = "filesystem"
) -> BackupManifest:
    """Write a backup of the SQLite `database` (and of the blob directory `blobs`, when the
    store is a filesystem) to `target`. Safe while a server runs on them."""
    if target.exists() and target.is_dir():
        raise Invalid(f"{target} is a directory: name the backup file to write")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".linkflow-backup-") as work:
        copy = Path(work) / DATABASE
        snapshot(database, copy)
        facts = read_facts(copy)
        members = list(_blob_files(blobs))
        manifest = BackupManifest(
            created_at=datetime.now(UTC).isoformat(), linkflow_version=version("linkflow"),
            schema_revision=facts.revision, counts=facts.counts, key_ids=facts.key_ids,
            blobs_carried=len(members), blob_store=blob_store,
        )  # fmt: skip
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as raw, \
                    tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as archive:  # fmt: skip
                _add_bytes(archive, MANIFEST, manifest.as_json())
                archive.add(copy, arcname=DATABASE, recursive=False, filter=_plain)
                for name, path in members:
                    archive.add(path, arcname=name, recursive=False, filter=_plain)
                raw.flush()
                os.fsync(raw.fileno())
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return manifest


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """A member without its owner's names and ids (they mean nothing where it is restored)."""
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mode = 0o600
    return member


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    archive.addfile(info, io.BytesIO(data))


def _open_archive(file: Path) -> tarfile.TarFile:
    if not file.is_file():
        raise InvalidBackup(f"{file} does not exist or is not a file")
    try:
        return tarfile.open(file, mode="r:gz")
    except (tarfile.TarError, OSError, EOFError):
        raise InvalidBackup(
            f"{file} is not a LinkFlow backup (not an archive `linkflow backup` wrote)"
        ) from None


def _parse_manifest(file: Path, data: bytes) -> BackupManifest:
    try:
        body: Any = orjson.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("format")
        if body.get("version") != VERSION:
            raise InvalidBackup(
                f"{file} is a LinkFlow backup of format version {body.get('version')}, which "
                f"this LinkFlow ({version('linkflow')}) cannot read: restore it with the "
                f"version that wrote it ({body.get('linkflow_version')}) or a newer one"
            )
        blobs = body["blobs"]
        return BackupManifest(
            created_at=str(body["created_at"]), linkflow_version=str(body["linkflow_version"]),
            schema_revision=str(body["schema_revision"]),
            counts={str(k): int(v) for k, v in body["counts"].items()},
            key_ids=frozenset(str(k) for k in body["key_ids"]),
            blobs_carried=int(blobs["carried"]), blob_store=str(blobs["store"]),
        )  # fmt: skip
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise InvalidBackup(f"{file} is not a LinkFlow backup (its manifest is not one)") from None


def read_manifest(file: Path) -> BackupManifest:
    """The manifest of the backup `file`; `InvalidBackup` if it is not one."""
    with _open_archive(file) as archive:
        return _first_manifest(file, archive)


def _first_manifest(file: Path, archive: tarfile.TarFile) -> BackupManifest:
    try:
        first = archive.next()
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        first = None
    if first is None or first.name != MANIFEST or not first.isfile() \
            or first.size > _MANIFEST_MAX_BYTES:  # fmt: skip
        raise InvalidBackup(f"{file} is not a LinkFlow backup (no manifest at its start)")
    handle = archive.extractfile(first)
    assert handle is not None  # a regular file's member
    return _parse_manifest(file, handle.read())


def restore_backup(
    file: Path, *, database: Path, blobs: Path | None, known_revision: Callable[[str], bool],
    key_ids: frozenset[str], without_keys: bool = False, replace: bool = False,
) -> Restored:  # fmt: skip
    """Restore the backup `file` into the SQLite `database` and the blob directory `blobs`
    (None: the store is not a filesystem, and the backup must carry no blob).

    The caller holds the database's exclusive lock (`store.sqlite_lock`). `known_revision`
    says whether this LinkFlow knows a schema revision (a newer backup's is unknown);
    `key_ids` are the ids of the encryption keys the restored installation will run with.
    A database that already holds data is replaced only with `replace`.
    """
    with _open_archive(file) as archive:
        manifest = _first_manifest(file, archive)
        if not known_revision(manifest.schema_revision):
            raise InvalidBackup(
                f"{file} is from a newer LinkFlow ({manifest.linkflow_version}, schema "
                f"revision {manifest.schema_revision}) than this one ({version('linkflow')}): "
                "upgrade LinkFlow, then restore"
            )
        unopenable = manifest.key_ids - key_ids
        if unopenable and not without_keys:
            raise MissingKeys(_missing_keys_message(unopenable, key_ids))
        if not replace and _holds_data(database):
            raise Conflict(
                f"{database} already holds a LinkFlow database: pass --replace to replace it "
                "(it is kept aside, not deleted), or restore into an empty data dir",
                code="database_exists",
            )
        if manifest.blobs_carried and blobs is None:
            raise Invalid(
                f"the backup carries {manifest.blobs_carried} blob(s) and LINKFLOW_BLOB_URL "
                "names no directory: restore with a filesystem blob store, then copy them"
            )
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=database.parent, prefix=".linkflow-restore-") as work:
            copy = Path(work) / DATABASE
            written = _unpack(file, archive, copy, blobs)
            _verify(file, copy, manifest)
            replaced = install(copy, database)
    return Restored(manifest=manifest, replaced=replaced, blobs_written=written,
                    unopenable_key_ids=unopenable)  # fmt: skip


def _missing_keys_message(missing: frozenset[str], present: frozenset[str]) -> str:
    have = f"the configured key(s) are {', '.join(sorted(present))}" if present else \
        "no encryption key is configured"  # fmt: skip
    return (
        f"the backup's secrets are sealed with key id(s) {', '.join(sorted(missing))} and "
        f"{have}: put the old installation's `encryption_key` file in the data dir, or set "
        "LINKFLOW_ENCRYPTION_KEY (and LINKFLOW_ENCRYPTION_KEYS_PREVIOUS) to the old key(s); "
        "--without-keys restores anyway, its credentials then do not open"
    )


def _holds_data(database: Path) -> bool:
    if not database.exists() or database.stat().st_size == 0:
        return False
    try:
        facts = read_facts(database, live=True)
    except NotALinkFlowDatabase:
        return True  # something else is there: never overwrite it unasked
    return any(facts.counts.values())


def _unpack(file: Path, archive: tarfile.TarFile, copy: Path, blobs: Path | None) -> int:
    """Write the database member to `copy` and new blobs under `blobs`; the blobs written."""
    found_database = False
    written = 0
    try:
        for member in archive:
            if member.name == MANIFEST and member.offset == 0:
                continue  # read already
            if member.name == DATABASE and member.isfile() and not found_database:
                _write_member(archive, member, copy)
                found_database = True
            elif member.isfile() and (match := _BLOB_MEMBER.fullmatch(member.name)):
                assert blobs is not None  # checked against the manifest before
                path = blobs.joinpath(*match.groups())
                if not path.exists():  # content-addressed: same name, same bytes
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _write_member(archive, member, path)
                    written += 1
            else:
                raise InvalidBackup(f"{file} holds {member.name!r}, which no LinkFlow backup has")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise InvalidBackup(f"{file} is damaged: {error}") from None
    if not found_database:
        raise InvalidBackup(f"{file} holds no database")
    return written


def _write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    """The member's bytes to `path`, through a temporary name (never half a file there)."""
    source = archive.extractfile(member)
    assert source is not None
    partial = path.with_name(f".partial-{path.name}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _verify(file: Path, copy: Path, manifest: BackupManifest) -> None:
    try:
        facts = read_facts(copy, check=True)
    except NotALinkFlowDatabase as error:
        raise InvalidBackup(f"{file} is damaged: {error}") from None
    if facts.revision != manifest.schema_revision:
        raise InvalidBackup(f"{file} is damaged: its database is not the one its manifest names")
