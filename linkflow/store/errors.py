"""Exceptions raised by the store.

The store sits at the bottom of the dependency graph and imports nothing above
it, so it cannot raise the application's `LinkFlowError` family itself. Its
errors are a small hierarchy of their own, rooted at `StoreError`; the service
layer maps them once (`StoreConflict` to `Conflict`, `StoreUnavailable` to
`Unavailable`, ...). Every message is one line that names what failed and
never contains a password from a database URL.
"""

from __future__ import annotations

__all__ = [
    "InvalidCursor",
    "StoreConfigError",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
]


class StoreError(Exception):
    """Root of every exception the store raises on purpose."""


class StoreConfigError(StoreError, ValueError):
    """A database URL that cannot be parsed or names an unsupported engine.

    A `ValueError` as well, because it is a bad value handed in by the caller
    (usually `LINKFLOW_DATABASE_URL`), not a failure of the database.
    """


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened.

    The message is one line, for example
    ``cannot connect to PostgreSQL at 127.0.0.1:5999: connection refused``.
    Retrying later may succeed, which is why the API maps it to 503.
    """


class StoreConflict(StoreError):
    """A write collided with a uniqueness rule, e.g. an event `seq` already taken.

    The transaction is still usable: the store detects conflicts with
    ``ON CONFLICT DO NOTHING`` rather than by letting the statement fail.
    """


class InvalidCursor(StoreError, ValueError):
    """A pagination cursor that this store did not produce (or was tampered with)."""
