"""Where an installation's parts are, found from `Settings` without creating any: its
blob directory and its keys (`linkflow backup`, `restore` and `doctor` say what they
found; the processes themselves create what is missing, see `config.load_settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from linkflow.blobs import parse_blob_url
from linkflow.config import (
    ENCRYPTION_KEY_FILE,
    SECRET_KEY_FILE,
    Settings,
    decode_encryption_key,
)
from linkflow.security.secretbox import key_id_for

__all__ = ["KeyInventory", "blob_directory", "key_inventory"]


def blob_directory(settings: Settings) -> Path | None:
    """The directory of a filesystem blob store (default: `blobs` in the data dir, as
    `wiring.engine.build_blob_store` has it); None when `LINKFLOW_BLOB_URL` names S3."""
    if settings.blob_url is None:
        return settings.data_dir / "blobs"
    location = parse_blob_url(settings.blob_url)
    if location.scheme == "s3":
        return None
    assert location.path is not None
    return location.path if location.path.is_absolute() else settings.data_dir / location.path


@dataclass(frozen=True)
class KeyInventory:
    """Where a process's keys would come from, found without generating any."""

    secret_key: str | None
    """``LINKFLOW_SECRET_KEY``, the data dir's key file, or None (none yet)."""
    encryption_key: str | None
    """Likewise for the encryption key."""
    encryption_key_ids: frozenset[str]
    """The ids of the encryption keys it would open with: current and previous."""
    previous_secret_keys: int
    previous_encryption_keys: int


def key_inventory(settings: Settings) -> KeyInventory:
    """The keys of `settings` (loaded with ``settle_keys=False``): from the environment,
    else (not in production) from the files `load_settings` keeps in the data dir."""
    secret_from: str | None = None
    if settings.secret_key is not None:
        secret_from = "LINKFLOW_SECRET_KEY"  # noqa: S105 - where it comes from, not the key
    elif not settings.is_production and _read(settings.data_dir / SECRET_KEY_FILE):
        secret_from = str(settings.data_dir / SECRET_KEY_FILE)
    current: bytes | None = None
    encryption_from: str | None = None
    if settings.encryption_key is not None:
        current = decode_encryption_key(settings.encryption_key.get_secret_value())
        encryption_from = "LINKFLOW_ENCRYPTION_KEY"
    elif not settings.is_production:
        text = _read(settings.data_dir / ENCRYPTION_KEY_FILE)
        current = decode_encryption_key(text) if text else None
        encryption_from = str(settings.data_dir / ENCRYPTION_KEY_FILE) if current else None
    keys = settings.previous_encryption_key_bytes() + ([current] if current else [])
    return KeyInventory(
        secret_key=secret_from, encryption_key=encryption_from,
        encryption_key_ids=frozenset(key_id_for(key) for key in keys),
        previous_secret_keys=len(settings.secret_keys_previous),
        previous_encryption_keys=len(settings.encryption_keys_previous),
    )  # fmt: skip


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
