"""Blob refs shared by every blob store: `sha256:<64 lowercase hex digits>` of the bytes.

The ref depends on the content alone, never on the store, so a ref written by
one store (or one machine) names the same blob in any other.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["InvalidBlobRef", "digest_of", "ref_for"]

_REF = re.compile(r"^sha256:([0-9a-f]{64})$")


class InvalidBlobRef(LookupError):
    """The ref is malformed or names no stored blob."""


def ref_for(data: bytes) -> str:
    """The ref of `data`."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def digest_of(ref: str) -> str:
    """The hex digest inside `ref`; raises `InvalidBlobRef` when it is not a blob ref."""
    match = _REF.match(ref)
    if match is None:
        raise InvalidBlobRef(f"not a blob reference: {ref[:80]!r}")
    return match.group(1)
