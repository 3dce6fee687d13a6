"""Where blobs live, parsed from a URL: `s3://bucket/prefix` or `file:///abs/path`.

Parsing is pure (no I/O, no SDK import), so settings can check a URL at start-up
and `wiring.py` can pick the store from the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

__all__ = ["BlobLocation", "parse_blob_url"]

# S3's rules for bucket names: 3-63 lowercase letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_EXAMPLES = "expected s3://bucket/prefix, file:///absolute/path or a plain path"


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """A parsed blob URL: `bucket` and `prefix` for `s3`, `path` for `file`."""

    scheme: Literal["file", "s3"]
    bucket: str = ""
    """The S3 bucket; empty for `file`."""
    prefix: str = ""
    """Key prefix inside the bucket without leading or trailing `/`; empty: the bucket root."""
    path: Path | None = None
    """The directory of a `file` location, as given (a plain relative path stays relative);
    None for `s3`."""


def parse_blob_url(url: str) -> BlobLocation:
    """Parse `s3://bucket/prefix/parts`, `file:///abs/path` or a plain path.

    Raises `ValueError` with a one-line message for anything else: another
    scheme, a file URL with a host, an invalid bucket name, credentials, a port,
    a query or a fragment in the URL.
    """
    text = url.strip()
    if not text:
        raise ValueError(f"empty blob URL; {_EXAMPLES}")
    scheme = _SCHEME.match(text)
    if scheme is None:
        return BlobLocation(scheme="file", path=Path(text))
    name = scheme.group(1).lower()
    if name == "s3":
        return _parse_s3(text)
    if name == "file":
        return _parse_file(text)
    raise ValueError(f"unsupported blob URL scheme {name!r}; {_EXAMPLES}")


def _parse_s3(text: str) -> BlobLocation:
    parts = urlsplit(text)
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("an s3:// blob URL takes no query or fragment")
    if "@" in parts.netloc or ":" in parts.netloc:
        # Keys belong in the settings (a secret in a URL ends up in logs), the
        # endpoint in its own setting.
        raise ValueError(
            "an s3:// blob URL names only the bucket: credentials and endpoint are separate "
            "settings"
        )
    bucket = parts.netloc
    if not bucket:
        raise ValueError(f"no bucket in blob URL {text!r}; expected s3://bucket/prefix")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(f"invalid S3 bucket name {bucket!r}")
    prefix = parts.path.strip("/")
    if "//" in prefix:
        raise ValueError(f"empty segment in S3 prefix {prefix!r}")
    return BlobLocation(scheme="s3", bucket=bucket, prefix=prefix)


def _parse_file(text: str) -> BlobLocation:
    parts = urlsplit(text)
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("a file:// blob URL takes no query or fragment")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"a file:// blob URL must be absolute, file:///absolute/path, not {text!r}"
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"a file:// blob URL must be absolute, not {text!r}")
    return BlobLocation(scheme="file", path=Path(path))
