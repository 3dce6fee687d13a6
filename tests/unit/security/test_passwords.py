"""Password rules (offline) and Argon2id hashing."""

from __future__ import annotations

import pytest

from linkflow.security.passwords import Passwords, password_problems

CHEAP = Passwords(time_cost=1, memory_kib=1024, parallelism=1)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short1!", "at least 10"),
        ("x" * 257, "at most 256"),
        ("password123", "most common"),
        ("Password123!", "most common"),
        ("qwertyuiop", "most common"),
        ("1234567890", "most common"),
        ("abcdefghijk", "keyboard sequence"),
        ("aaaaaaaaaaaa", "repeated character"),
        ("zzzzyyzzzzyy", "repeated character"),
        ("welcome2024!!", "common word"),
        ("linkflow2025", "most common"),
        ("dragonfly77", "common word"),
    ],
)
def test_weak_passwords_are_named(password: str, problem: str) -> None:
    """Each weak pattern is refused with a reason."""
    problems = password_problems(password)
    assert any(problem in text for text in problems), problems


def test_personal_words_are_refused() -> None:
    """The e-mail's local part or the name inside the password."""
    assert password_problems("grace.hopper-1906", email="grace.hopper@example.com")
    assert password_problems("my-name-is-ada!", email="x@example.com", name="Ada Lovelace") == []
    assert password_problems("lovelace-rules-1843", name="Ada Lovelace")


def test_a_long_unusual_password_passes() -> None:
    """No problems for a passphrase."""
    assert password_problems("plum-orbit-candle-42", email="user@example.com") == []


async def test_hashes_are_argon2id_and_verify() -> None:
    """PHC string with the configured parameters; right password True, wrong False."""
    hashed = await CHEAP.hash("plum-orbit-candle-42")
    assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert await CHEAP.verify(hashed, "plum-orbit-candle-42")
    assert not await CHEAP.verify(hashed, "plum-orbit-candle-43")


async def test_verify_never_raises() -> None:
    """A malformed hash or no hash at all: False."""
    assert not await CHEAP.verify("not-a-hash", "anything")
    assert not await CHEAP.verify(None, "anything")


async def test_weaker_parameters_need_a_rehash() -> None:
    """A hash made with cheaper parameters than today's is flagged."""
    stronger = Passwords(time_cost=2, memory_kib=2048, parallelism=1)
    old = await CHEAP.hash("plum-orbit-candle-42")
    assert stronger.needs_rehash(old)
    assert not CHEAP.needs_rehash(old)


def test_the_defaults_are_rfc_9106_low_memory() -> None:
    """t=3, m=64 MiB, p=4 unless configured otherwise."""
    hashed = Passwords()._hasher.hash("x")
    assert "$m=65536,t=3,p=4$" in hashed
