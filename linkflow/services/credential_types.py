"""Credentials checked, masked and merged by their type.

The types themselves are declared in the nodes layer (`linkflow.nodes.sdk.
CredentialType`), each beside the nodes that use it, and collected by the
node registry; the control plane gets them from there (`CredentialTypes`).
A credential's `data` is checked against its type here, on create and on
every update, so the worker can rely on what it decrypts: required fields
are present, integers are integers, enums hold one of their values.

Invariants:
- Unknown fields are refused. A field the schema does not know could not be
  known to be secret, and would be shown in clear on every read.
- Secret fields are write-only: `masked` shows them as `MASK` (or None when
  unset), and `merged` keeps a stored secret when an update omits it or
  sends `MASK` back, which is what a form that re-submits a read does.
- Problems name the field as ``body.data.<field>`` and never echo a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from linkflow.nodes.sdk import CredentialType
from linkflow.services.errors import FieldProblem, Invalid

__all__ = [
    "MASK",
    "CredentialType",
    "CredentialTypes",
    "credential_type",
    "masked",
    "merged",
    "secret_values",
    "stored_type",
    "validated",
]

CredentialTypes = Mapping[str, CredentialType]
"""The credential types this process knows, by name (`NodeRegistry.credential_types`)."""

MASK: Final = "••••••"
"""What a read shows instead of a secret value."""


def credential_type(types: CredentialTypes, name: str) -> CredentialType:
    """The type called `name`; `Invalid` naming `body.type` when there is none."""
    found = types.get(name)
    if found is None:
        raise Invalid(
            f"there is no credential type {name[:64]!r}",
            code="unknown_credential_type",
            errors=[FieldProblem("body.type", f"must be one of {', '.join(types)}")],
        )
    return found


def stored_type(types: CredentialTypes, name: str) -> CredentialType:
    """The type of a stored credential: one this process does not know (its plugin was
    uninstalled) has no fields, so it shows none rather than failing."""
    return types.get(name) or CredentialType(name, name, "", ())


def validated(kind: CredentialType, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` checked against `kind`, with defaults filled in and None values dropped.

    Raises `Invalid` listing every problem (``body.data.<field>``).
    """
    problems: list[FieldProblem] = []
    out: dict[str, Any] = {}
    for name, value in data.items():
        spec = kind.field(name)
        if spec is None:
            problems.append(FieldProblem(f"body.data.{name}"[:200], "unknown field", "extra"))
        elif value is not None:
            problem = spec.problem(value)
            if problem is None:
                out[name] = value
            else:
                problems.append(FieldProblem(f"body.data.{name}", problem))
    for spec in kind.fields:
        if spec.name in out or any(p.field == f"body.data.{spec.name}" for p in problems):
            continue
        if spec.default is not None:
            out[spec.name] = spec.default
        elif spec.required:
            problems.append(FieldProblem(f"body.data.{spec.name}", "is required", "missing"))
    if problems:
        raise Invalid(f"the {kind.name} credential is not valid", errors=problems)
    return out


def masked(kind: CredentialType, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a read shows: every field of the type, secret ones as `MASK` (None when unset)."""
    out: dict[str, Any] = {}
    for spec in kind.fields:
        value = data.get(spec.name)
        out[spec.name] = MASK if spec.secret and value not in (None, "") else value
    return out


def merged(
    kind: CredentialType, stored: Mapping[str, Any], update: Mapping[str, Any]
) -> dict[str, Any]:
    """`stored` with `update` applied: a field present replaces (None clears it); a field
    absent keeps its stored value; a secret sent back as `MASK` keeps its stored value."""
    out = dict(stored)
    for name, value in update.items():
        spec = kind.field(name)
        if spec is not None and spec.secret and value == MASK:
            continue
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def secret_values(kind: CredentialType, data: Mapping[str, Any]) -> list[str]:
    """The secret values of `data` as text, to scrub from messages that might echo them."""
    values = [str(data[name]) for name in kind.secret_fields if data.get(name)]
    return sorted(values, key=len, reverse=True)
