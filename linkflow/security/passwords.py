"""Password hashing (Argon2id) and the rules a new password must pass.

Invariants:
- Hashing and verifying cost tens of milliseconds of CPU and 64 MiB, so the
  async functions run them in a worker thread: the event loop never blocks.
- `verify` never raises for a wrong or malformed hash: it answers False. With
  no hash (no such user), it verifies a dummy hash, so that an unknown
  e-mail takes as long as a wrong password.
- `password_problems` needs no network: length limits, a built-in list of
  breached passwords, and personal patterns (the e-mail's local part, the
  name, repeated characters and keyboard runs).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Final

from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from linkflow.security._common_passwords import COMMON_PASSWORDS, COMMON_WORDS, SEQUENCES

__all__ = [
    "DEFAULT_PARAMETERS",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "Passwords",
    "password_problems",
]

# NIST SP 800-63B asks for at least 8; 10 leaves brute force hopeless at Argon2 speeds.
MIN_PASSWORD_LENGTH: Final = 10
# Argon2 accepts any length, but hashing megabytes per request is a cheap DoS.
MAX_PASSWORD_LENGTH: Final = 256
DEFAULT_PARAMETERS: Final[Parameters] = RFC_9106_LOW_MEMORY

_SEPARATORS = re.compile(r"[^a-z0-9]+")


class Passwords:
    """Argon2id hashing with one set of parameters.

    The defaults are argon2-cffi's, RFC 9106's second recommendation (t=3,
    m=64 MiB, p=4): tens of milliseconds per hash. Smaller machines (and
    tests) may choose cheaper ones; `needs_rehash` then tells which stored
    hashes are weaker than today's parameters, so logins can upgrade them.
    """

    def __init__(
        self,
        *,
        time_cost: int = DEFAULT_PARAMETERS.time_cost,
        memory_kib: int = DEFAULT_PARAMETERS.memory_cost,
        parallelism: int = DEFAULT_PARAMETERS.parallelism,
    ) -> None:
        self._hasher: Final = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verified when there is no user, so an unknown e-mail costs what a wrong password does.
        self._dummy_hash: Final = self._hasher.hash(secrets.token_urlsafe(16))

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def hash(self, password: str) -> str:
        """An Argon2id hash of `password` (PHC string format)."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with no hash, spends the same time and says False."""
        if password_hash is None:
            await asyncio.to_thread(self._verify_sync, self._dummy_hash, password)
            return False
        return await asyncio.to_thread(self._verify_sync, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than today's."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


def _core(password: str) -> str:
    """The password with digits and symbols stripped from both ends, lower-cased."""
    return password.lower().strip("0123456789!@#$%^&*()-_=+.,?~ ")


def _personal_words(email: str, name: str) -> list[str]:
    local = email.lower().partition("@")[0]
    words = [local, *_SEPARATORS.split(local), *_SEPARATORS.split(name.lower())]
    return [word for word in words if len(word) >= 4]


def _is_sequence(text: str) -> bool:
    return len(text) >= 4 and any(text in run for run in SEQUENCES)


def password_problems(password: str, *, email: str = "", name: str = "") -> list[str]:
    """What is wrong with `password` as a new password; empty when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return [f"must be at least {MIN_PASSWORD_LENGTH} characters"]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [f"must be at most {MAX_PASSWORD_LENGTH} characters"]
    lowered = password.lower()
    core = _core(password)
    problems: list[str] = []
    if lowered in COMMON_PASSWORDS or core in COMMON_PASSWORDS:
        problems.append("is one of the most common passwords")
    elif len(set(lowered)) <= 2 or _is_sequence(lowered) or _is_sequence(core):
        problems.append("is a repeated character or a keyboard sequence")
    elif any(
        core in (word, word + word) or (core.startswith(word) and len(core) - len(word) < 4)
        for word in COMMON_WORDS
    ):
        problems.append("is a common word with a few characters added")
    personal = _personal_words(email, name)
    if any(word in lowered for word in personal):
        problems.append("contains your e-mail address or name")
    return problems
