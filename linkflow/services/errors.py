"""The application's error hierarchy: what a use case can refuse, with a stable code.

Services raise these; `linkflow.api.errors` renders them as problem+json by
class (one place), so an endpoint never builds an error response itself.
Each class has an HTTP-independent meaning and a default `code`; a raise
site may pass a more specific code (``Conflict("...", code="last_owner")``).
Codes are part of the public contract: never renamed, only added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError

from linkflow.store.errors import StoreUnavailable

__all__ = [
    "UNAVAILABLE_ERRORS",
    "BadRequest",
    "Conflict",
    "FieldProblem",
    "Forbidden",
    "Invalid",
    "LinkFlowError",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "as_unavailable",
]


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One problem with one input field: `field` is a dotted path (``body.email``)."""

    field: str
    message: str
    type: str = "invalid"


class LinkFlowError(Exception):
    """Root of every error a use case raises on purpose."""

    default_code: ClassVar[str] = "error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: Sequence[FieldProblem] = (),
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.errors = tuple(errors)
        self.extra = extra or {}


class NotFound(LinkFlowError):
    """The resource does not exist, or the caller may not know that it does."""

    default_code = "not_found"


class Conflict(LinkFlowError):
    """The request contradicts the current state (a taken e-mail, the last owner...)."""

    default_code = "conflict"


class Invalid(LinkFlowError):
    """The input is well-formed but unacceptable (a weak password, a bad cursor...)."""

    default_code = "validation_error"


class BadRequest(LinkFlowError):
    """The request cannot be read as what it claims to be (an unverifiable signature)."""

    default_code = "bad_request"


class Forbidden(LinkFlowError):
    """The caller is known but may not do this."""

    default_code = "forbidden"


class Unauthorized(LinkFlowError):
    """The caller is not (or no longer) authenticated."""

    default_code = "unauthorized"


class RateLimited(LinkFlowError):
    """Too many requests; `retry_after_s` says when to try again."""

    default_code = "rate_limited"

    def __init__(self, detail: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after_s = retry_after_s


class PayloadTooLarge(LinkFlowError):
    """The request body exceeds the configured limit."""

    default_code = "payload_too_large"


class MethodNotAllowed(LinkFlowError):
    """The resource exists but does not take this method (a webhook's fixed method)."""

    default_code = "method_not_allowed"


class Unavailable(LinkFlowError):
    """A dependency (database, Redis, SMTP) cannot be reached; retrying may succeed."""

    default_code = "unavailable"


UNAVAILABLE_ERRORS: Final[tuple[type[Exception], ...]] = (
    StoreUnavailable,
    DBAPIError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)
"""Exception classes that may mean a dependency is down (`as_unavailable` decides)."""


def as_unavailable(error: BaseException) -> Unavailable | None:
    """An `Unavailable` for an exception that means a dependency is down, else None.

    Lets the edge answer 503 (retry later) rather than 500 when the database
    or Redis goes away in the middle of a request.
    """
    if isinstance(error, StoreUnavailable):
        return Unavailable(str(error), code="database_unavailable")
    if isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error.orig, OSError | TimeoutError)
    ):
        return Unavailable("the database cannot be reached", code="database_unavailable")
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return Unavailable("Redis cannot be reached", code="redis_unavailable")
    if isinstance(error, ConnectionError | TimeoutError):
        return Unavailable("a dependency cannot be reached")
    return None
