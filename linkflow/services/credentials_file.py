"""Credentials from a JSON file, for `linkflow run` (no server, no database).

The file maps a credential's name or id to its type and fields:

    {"github": {"type": "bearer", "data": {"token": "ghp_..."}},
     "legacy-api": {"type": "basic", "data": {"username": "u", "password": "p"}}}

A node's `credentials: {"auth": "github"}` then resolves to
`{"type": "bearer", "token": "ghp_..."}`: the fields of `data` plus `type`
(a field named `type` in `data` is overwritten). The file holds secrets in
clear text, so it is meant for local runs; servers keep credentials encrypted
in the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CredentialsFileError", "FileCredentials"]


class CredentialsFileError(ValueError):
    """The credentials file cannot be read or is not shaped as documented."""


class FileCredentials:
    """A `CredentialResolver` over a mapping `{name: {"type": ..., "data": {...}}}`."""

    def __init__(self, mapping: Mapping[str, Mapping[str, Any]]) -> None:
        self._credentials: dict[str, dict[str, Any]] = {}
        for name, entry in mapping.items():
            self._credentials[name] = _checked(name, entry)

    @classmethod
    def from_file(cls, path: Path) -> FileCredentials:
        """Load the JSON file at `path`; raises `CredentialsFileError` naming what is wrong."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise CredentialsFileError(f"{path}: {error.strerror}") from None
        except ValueError as error:
            raise CredentialsFileError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(raw, dict):
            raise CredentialsFileError(f"{path}: must hold a JSON object of credentials")
        try:
            return cls(raw)
        except CredentialsFileError as error:
            raise CredentialsFileError(f"{path}: {error}") from None

    def __contains__(self, reference: object) -> bool:
        return reference in self._credentials

    async def resolve(self, reference: str) -> dict[str, Any]:
        """The credential's `data` fields plus `type`; raises `LookupError` when unknown."""
        try:
            credential = self._credentials[reference]
        except KeyError:
            raise LookupError(reference) from None
        return {**credential["data"], "type": credential["type"]}


def _checked(name: str, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise CredentialsFileError(f"credential {name!r} must be an object with type and data")
    kind = entry.get("type")
    data = entry.get("data", {})
    if not isinstance(kind, str) or not kind:
        raise CredentialsFileError(f"credential {name!r} has no type")
    if not isinstance(data, Mapping):
        raise CredentialsFileError(f"credential {name!r}: data must be an object")
    return {"type": kind, "data": dict(data)}
