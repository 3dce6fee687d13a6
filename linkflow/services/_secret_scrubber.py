"""The secret values an execution has used, and the scrubbing of text that may quote them.

A node's error message is written to the history, where every viewer of the
workspace reads it. A remote server that echoes the request it received (a
400 whose body quotes the Authorization header, a URL with its query) puts
the credential the node sent into that message. So the resolver registers
every secret value it hands out for an execution (`SecretValues.add`), with
the forms a request carries it in (URL-encoded, base64, HTTP Basic's
``user:password`` in base64), and the engine scrubs node errors with
`SecretValues.scrub` before they are stored.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote, quote_plus

from linkflow.services.credential_types import CredentialTypes

__all__ = ["MIN_SCRUBBED_LENGTH", "REDACTED", "SecretValues", "secret_forms"]

REDACTED: Final = "[redacted]"
MIN_SCRUBBED_LENGTH: Final = 4
"""Shorter values are not scrubbed: replacing every "ab" in a message would make it
unreadable and hide little (a secret that short is no secret)."""


def secret_forms(value: str) -> set[str]:
    """`value` and the encodings a request may carry it in."""
    raw = value.encode()
    return {
        value,
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
    }


def _secret_values(
    types: CredentialTypes, type_name: str, data: Mapping[str, Any]
) -> Iterable[str]:
    known = types.get(type_name)
    # A type this server does not describe: every string field may be a secret.
    secret = known.secret_fields if known is not None else frozenset(data)
    for name in secret:
        value = data.get(name)
        if isinstance(value, str):
            yield value
    password, user = data.get("password"), data.get("username", data.get("user"))
    if isinstance(password, str) and isinstance(user, str):
        # Basic auth sends base64("user:password"), in which the password's own base64
        # does not appear.
        yield f"{user}:{password}"


class SecretValues:
    """The secret strings of one execution's credentials (see the module docstring)."""

    def __init__(self, types: CredentialTypes) -> None:
        """`types` say which fields of each credential type are secret."""
        self._types = types
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, type_name: str, data: Mapping[str, Any]) -> None:
        """Register the secret fields of a credential of type `type_name`."""
        before = len(self._values)
        for value in _secret_values(self._types, type_name, data):
            if len(value) >= MIN_SCRUBBED_LENGTH:
                self._values |= secret_forms(value)
        if len(self._values) != before:
            self._pattern = None

    def scrub(self, text: str) -> str:
        """`text` with every registered value replaced by `REDACTED`."""
        if not self._values or not text:
            return text
        if self._pattern is None:
            # Longest first, so a value containing another is replaced whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(value) for value in ordered))
        return self._pattern.sub(REDACTED, text)
