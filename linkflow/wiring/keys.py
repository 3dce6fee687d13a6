"""The keys of a process from `Settings`: the current one signs and seals, the previous
ones (`LINKFLOW_*_KEYS_PREVIOUS`, a rotation in progress) still verify and open."""

from __future__ import annotations

from linkflow.config import Settings
from linkflow.security.secretbox import SecretBox

__all__ = ["previous_secrets", "secret_box"]


def secret_box(settings: Settings) -> SecretBox:
    """Seals with `LINKFLOW_ENCRYPTION_KEY`, opens with it or a previous key."""
    return SecretBox.from_keys(
        settings.encryption_key_bytes(), settings.previous_encryption_key_bytes()
    )


def previous_secrets(settings: Settings) -> list[str]:
    """The previous secret keys, without the current one."""
    return settings.secret_keys()[1:]
