"""The `Idempotency-Key` header on POST: replay the first response for 24 hours.

Applies to authenticated POSTs only (the key is scoped by the principal, see
`linkflow.services.idempotency`); without a valid credential the request
passes through untouched and the endpoint decides (401, or a public
endpoint such as login, where a replay would hand out tokens twice).
The principal found here is left in the request state, so the endpoint's
authentication dependency does not look it up again.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linkflow.api.errors import render_error
from linkflow.services.authentication import Authenticator
from linkflow.services.errors import FieldProblem, Invalid, LinkFlowError
from linkflow.services.idempotency import Idempotency, fingerprint

__all__ = ["IdempotencyMiddleware", "bearer_credential"]

MAX_KEY_LENGTH: Final = 255
# Response headers worth replaying; per-request ones (X-Request-ID, dates) are not.
_KEPT_HEADERS: Final = frozenset({"content-type", "location", "retry-after"})


def bearer_credential(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = str(value.decode("latin-1")).partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip()
            return None
    return None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class IdempotencyMiddleware:
    def __init__(
        self, app: ASGIApp, *, idempotency: Idempotency, authenticator: Authenticator
    ) -> None:
        self.app = app
        self.idempotency = idempotency
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY_LENGTH:
            problem = Invalid(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
                errors=[FieldProblem("header.Idempotency-Key", "bad length")],
            )
            await render_error(problem)(scope, receive, send)
            return
        credential = bearer_credential(scope)
        try:
            principal = await self.authenticator.authenticate(credential) if credential else None
        except LinkFlowError:
            principal = None
        if principal is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        body = await _read_body(receive)
        request_hash = fingerprint(
            "POST", scope["path"] + "?" + scope["query_string"].decode("latin-1"), body
        )
        owner = principal.rate_key
        try:
            stored = await self.idempotency.begin(owner, key, request_hash)
        except LinkFlowError as error:
            await render_error(error)(scope, receive, send)
            return
        if stored is not None:
            headers = [(name.encode(), value.encode()) for name, value in stored.headers]
            headers.append((b"idempotent-replayed", b"true"))
            await send({"type": "http.response.start", "status": stored.status, "headers": headers})
            await send({"type": "http.response.body", "body": stored.body})
            return
        await self._handle(scope, body, send, owner, key)

    async def _handle(self, scope: Scope, body: bytes, send: Send, owner: str, key: str) -> None:
        status = 500
        headers: dict[str, str] = {}
        parts: list[bytes] = []
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    text = name.decode("latin-1").lower()
                    if text in _KEPT_HEADERS:
                        headers[text] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay, capture)
        except Exception:
            # A cancelled request leaves its claim to go stale (`STALE_CLAIM`) instead.
            await self.idempotency.abandon(owner, key)
            raise
        await self.idempotency.complete(owner, key, status, dict(headers), b"".join(parts))


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
