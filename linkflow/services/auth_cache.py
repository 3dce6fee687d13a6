"""A short-lived, in-process cache of authenticated principals.

Checking a credential costs a database round trip; the busiest endpoints
would spend most of their time on it. A principal found for a credential is
therefore kept for `ttl` (a few seconds, `LINKFLOW_AUTH_CACHE_TTL_S`; 0
turns the cache off), never past the credential's own expiry.

Invariants:
- Any change in this process that can end or narrow someone's access
  (logout, refresh-token reuse, password change or reset, MFA change, key
  revocation, role change, removal, workspace deletion) calls `clear`, so
  within one process revocation is immediate. Other API processes see it
  within `ttl`: that is the price, and why `ttl` is short.
- The cache is bounded: at `MAX_ENTRIES` it is emptied rather than grown.
- Cached principals are shared between requests and must not be mutated.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Final

from linkflow.services.context import Principal

__all__ = ["AuthCache"]

MAX_ENTRIES: Final = 10_000


class AuthCache:
    def __init__(self, ttl: timedelta) -> None:
        self.ttl_s: Final = ttl.total_seconds()
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, credential: str) -> Principal | None:
        entry = self._entries.get(credential)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._entries.pop(credential, None)
            return None
        return entry[1]

    def put(self, credential: str, principal: Principal, *, valid_for_s: float | None) -> None:
        """Keep `principal` for the TTL, or less when the credential expires sooner."""
        if self.ttl_s <= 0:
            return
        keep = self.ttl_s if valid_for_s is None else min(self.ttl_s, valid_for_s)
        if keep <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[credential] = (time.monotonic() + keep, principal)

    def clear(self) -> None:
        self._entries.clear()
