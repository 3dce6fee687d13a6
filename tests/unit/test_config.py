"""Settings: embedded defaults, generated keys, production refusals, readable errors."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from linkflow.config import ConfigError, load_settings

STRONG_SECRET = "s" * 40
STRONG_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LINKFLOW_* from the outer environment, and no stray .env: start from nothing."""
    import os

    for name in [n for n in os.environ if n.startswith("LINKFLOW_")]:  # noqa: TID251
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_embedded_defaults_need_no_configuration(tmp_path: Path) -> None:
    """With nothing set: SQLite under ./.linkflow, no Redis, development mode."""
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.effective_database_url == (
        f"sqlite+aiosqlite:///{tmp_path / '.linkflow' / 'linkflow.db'}"
    )
    assert not settings.json_logs


def test_missing_keys_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    """Keys are created with mode 0600 and the same keys come back on the next start."""
    first = load_settings()
    second = load_settings()
    assert first.secret_key is not None
    assert second.secret_key is not None
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    assert len(first.encryption_key_bytes()) == 32
    for name in ("secret_key", "encryption_key"):
        mode = stat.S_IMODE((tmp_path / ".linkflow" / name).stat().st_mode)
        assert mode == 0o600


def test_a_weak_secret_key_is_replaced_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short LINKFLOW_SECRET_KEY is not used to sign anything."""
    monkeypatch.setenv("LINKFLOW_SECRET_KEY", "short")
    settings = load_settings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() != "short"


def test_given_strong_keys_are_used_and_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Strong keys from the environment win; the data dir stays untouched."""
    monkeypatch.setenv("LINKFLOW_SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("LINKFLOW_ENCRYPTION_KEY", STRONG_KEY)
    settings = load_settings()
    assert settings.encryption_key_bytes() == b"k" * 32
    assert not (tmp_path / ".linkflow").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "LINKFLOW_SECRET_KEY must be set"),
        ({"LINKFLOW_SECRET_KEY": "weak"}, "LINKFLOW_SECRET_KEY must be set"),
        ({"LINKFLOW_SECRET_KEY": STRONG_SECRET}, "LINKFLOW_ENCRYPTION_KEY must be set"),
        ({"LINKFLOW_SECRET_KEY": STRONG_SECRET, "LINKFLOW_ENCRYPTION_KEY": "bm90MzJieXRlcw=="},
         "LINKFLOW_ENCRYPTION_KEY must be set"),
    ],
)  # fmt: skip
def test_production_refuses_missing_or_weak_keys(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    """In production nothing is invented: the error names the variable."""
    monkeypatch.setenv("LINKFLOW_ENV", "production")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_production_logs_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` log format means JSON in production."""
    monkeypatch.setenv("LINKFLOW_ENV", "production")
    monkeypatch.setenv("LINKFLOW_SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("LINKFLOW_ENCRYPTION_KEY", STRONG_KEY)
    assert load_settings().json_logs


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unparseable port is one readable line naming LINKFLOW_PORT."""
    monkeypatch.setenv("LINKFLOW_PORT", "eighty")
    with pytest.raises(ConfigError, match=r"^LINKFLOW_PORT: "):
        load_settings()


def test_previous_keys_are_comma_separated_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """LINKFLOW_*_KEYS_PREVIOUS: a list after the current key; a bad entry names its
    variable and its position (issue 14, item 5)."""
    old_key = base64.urlsafe_b64encode(b"o" * 32).decode()
    monkeypatch.setenv("LINKFLOW_SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("LINKFLOW_SECRET_KEYS_PREVIOUS", f"{'p' * 40}, {'q' * 40}")
    monkeypatch.setenv("LINKFLOW_ENCRYPTION_KEY", STRONG_KEY)
    monkeypatch.setenv("LINKFLOW_ENCRYPTION_KEYS_PREVIOUS", old_key)
    settings = load_settings()
    assert settings.secret_keys() == [STRONG_SECRET, "p" * 40, "q" * 40]
    assert settings.previous_encryption_key_bytes() == [b"o" * 32]
    monkeypatch.setenv("LINKFLOW_ENCRYPTION_KEYS_PREVIOUS", f"{old_key},short")
    with pytest.raises(ConfigError, match=r"^LINKFLOW_ENCRYPTION_KEYS_PREVIOUS: .*key 2 is not"):
        load_settings()
    monkeypatch.delenv("LINKFLOW_ENCRYPTION_KEYS_PREVIOUS")
    monkeypatch.setenv("LINKFLOW_SECRET_KEYS_PREVIOUS", "short")
    with pytest.raises(ConfigError, match=r"^LINKFLOW_SECRET_KEYS_PREVIOUS: .*key 1 is shorter"):
        load_settings()


def test_the_webhook_rate_limit_is_off_unless_set_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LINKFLOW_WEBHOOK_RATE_LIMIT: unset by default; a value that is no rate is named."""
    assert load_settings().webhook_rate_limit is None
    monkeypatch.setenv("LINKFLOW_WEBHOOK_RATE_LIMIT", "100/second")
    assert load_settings().webhook_rate_limit == "100/second"
    monkeypatch.setenv("LINKFLOW_WEBHOOK_RATE_LIMIT", "lots")
    with pytest.raises(ConfigError, match=r"^LINKFLOW_WEBHOOK_RATE_LIMIT: .*100/second"):
        load_settings()


def test_tracing_is_off_unless_an_otlp_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """LINKFLOW_OTLP_ENDPOINT: unset by default; not an http(s) URL, or headers that are no
    name=value pairs, stop start-up naming the variable (and not quoting the headers)."""
    settings = load_settings()
    assert settings.otlp_endpoint is None
    assert settings.service_name is None
    monkeypatch.setenv("LINKFLOW_OTLP_ENDPOINT", "collector:4318")
    with pytest.raises(ConfigError, match=r"^LINKFLOW_OTLP_ENDPOINT: .*http://"):
        load_settings()
    monkeypatch.setenv("LINKFLOW_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("LINKFLOW_OTLP_HEADERS", "x-api-key=s3cret,authorization=Basic%20e30")
    assert load_settings().otlp_endpoint == "http://collector:4318"
    monkeypatch.setenv("LINKFLOW_OTLP_HEADERS", "s3cret")
    with pytest.raises(ConfigError, match=r"^LINKFLOW_OTLP_HEADERS: .*name=value") as error:
        load_settings()
    assert "s3cret" not in str(error.value)


def test_dot_env_is_read(tmp_path: Path) -> None:
    """Settings come from a .env file in the working directory too."""
    (tmp_path / ".env").write_text("LINKFLOW_REDIS_URL=redis://127.0.0.1:6399/0\n")
    assert load_settings().redis_url == "redis://127.0.0.1:6399/0"


def test_every_setting_is_documented() -> None:
    """docs/configuration.md names every LINKFLOW_* variable Settings reads."""
    from linkflow.config import Settings

    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        variable = f"LINKFLOW_{name.upper()}"
        suffix = "_" + name.upper().split("_", 2)[-1]
        assert variable in docs or suffix in docs, f"{variable} is not in docs/configuration.md"
