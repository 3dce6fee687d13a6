"""Configuration: one `Settings` object read from `LINKFLOW_*` variables and `.env`.

Nothing else in LinkFlow reads the environment. `load_settings()` is called once
per process (by the CLI) and its result is handed to `wiring.py`.

Invariants:
- embedded mode (the default) works with no configuration at all: SQLite under
  the data dir, no Redis, and secret keys generated once and kept in the data
  dir with mode 0600;
- production mode (`LINKFLOW_ENV=production`) never invents secrets: a missing or
  weak key stops start-up with a `ConfigError` naming the variable.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "ConfigError",
    "Environment",
    "LogFormat",
    "OAuth2Client",
    "OAuthProvider",
    "Settings",
    "load_settings",
]

# A secret key shorter than this is guessable offline (JWTs are HS256-signed with it).
MIN_SECRET_KEY_LENGTH = 32
# AES-256-GCM needs exactly 32 key bytes.
ENCRYPTION_KEY_BYTES = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
ENCRYPTION_KEY_FILE = "encryption_key"


class ConfigError(Exception):
    """A configuration problem, worded as one line for the person starting LinkFlow."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    AUTO = "auto"  # JSON in production, readable console otherwise
    JSON = "json"
    CONSOLE = "console"


class OAuthProvider(BaseModel):
    """One OAuth login provider. `github` and `google` know their endpoints; any other
    name is an OpenID Connect provider found through `issuer`'s discovery document.
    The endpoint fields override what is known or discovered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    client_secret: SecretStr
    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    emails_url: str | None = None
    scopes: list[str] | None = None


class OAuth2Client(BaseModel):
    """The instance's OAuth client at one provider, for credentials connected through it
    (keyed by credential type, e.g. `google_oauth2`). The URLs and scopes override
    those the credential type declares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    client_secret: SecretStr | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    scopes: list[str] | None = None

    @field_validator("authorize_url", "token_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class Settings(BaseSettings):
    """Every setting of a LinkFlow process; env name = `LINKFLOW_` + field name."""

    model_config = SettingsConfigDict(
        env_prefix="LINKFLOW_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path(".linkflow")
    database_url: str | None = None
    """Default: a SQLite file `linkflow.db` inside `data_dir`."""
    database_pool_size: Annotated[int, Field(ge=1, le=500)] = 20
    """PostgreSQL connections a process keeps open (as many again under a burst): every
    process counts against the server's `max_connections`."""
    sqlite_synchronous: Literal["normal", "full", "extra"] = "normal"
    """SQLite's durability (WAL mode): `normal` survives a crash of the process, while
    the last commits may be lost on power loss; `full` makes every commit survive power
    loss too (an fsync per commit). Carried in the URL as `?synchronous=`."""
    writer_connections: Annotated[int, Field(ge=1, le=32)] = 2
    """PostgreSQL connections a process's group-commit writer writes on at once (an
    execution's writes always take the same one); opened beside the pool's."""
    redis_url: str | None = None
    """Unset: in-process queue and pub/sub (embedded mode). Set: the queue (Redis Streams),
    the bus (Pub/Sub), rate limits and the scheduler's leader lock live in Redis, shared
    by `linkflow api`, `linkflow worker` and `linkflow scheduler` processes."""
    redis_prefix: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    ] = "linkflow"
    """First part of every Redis key and channel: installations sharing one Redis differ here."""
    queue_visibility_s: Annotated[float, Field(ge=5, le=86400)] = 60.0
    """A job handed to a worker that neither settled it nor got it back within this time
    is handed out again (its worker vanished before taking the execution's lease; once the
    lease is taken, the lease decides who runs it)."""
    worker_shutdown_grace_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    """On SIGTERM a worker takes no new job and lets running executions go on this long;
    then it stops them at their next durable point and hands them back to the queue."""
    schedule_catch_up_s: Annotated[float, Field(ge=0, le=86400)] = 60.0
    """Ticks a schedule missed for less than this (no scheduler ran, a leader died) still
    fire, each with its own time; older ones fire once for all, then it goes on from now."""
    scheduler_lock_ttl_s: Annotated[float, Field(ge=3, le=600)] = 30.0
    """The scheduler leader's lock lasts this long unless renewed (every third of it);
    followers try to take it every sixth. A SIGKILLed leader is replaced within about this."""
    secret_key: SecretStr | None = None
    """Signs tokens. At least 32 characters."""
    encryption_key: SecretStr | None = None
    """Encrypts credentials at rest: 32 bytes, base64 (standard or URL-safe) encoded."""
    secret_keys_previous: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Old secret keys, comma-separated: what they signed (access tokens, API keys, resume
    links, MFA challenges) still verifies; nothing new is signed with them."""
    encryption_keys_previous: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Old encryption keys, comma-separated: what they sealed still opens; nothing new is
    sealed with them (`linkflow rotate-keys` re-seals it under the current key)."""
    log_level: str = "info"
    log_format: LogFormat = LogFormat.AUTO
    otlp_endpoint: str | None = None
    """Where spans go, OTLP over HTTP (`http://collector:4318`: `/v1/traces` is added
    unless the URL ends with it); unset: tracing is off, and costs nothing."""
    otlp_headers: SecretStr | None = None
    """Headers of every export, `name=value,name2=value2` (values URL-encoded): an API key."""
    service_name: str | None = None
    """The traces' `service.name`; unset: `linkflow-<command>` (api, worker, scheduler, serve)."""
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    http_allow_private: bool = False
    """Let nodes' HTTP requests reach private, loopback and link-local addresses."""
    code_sandbox: Literal["auto", "bubblewrap", "none"] = "auto"
    """How code nodes are isolated; `none` runs them with rlimits only."""
    code_allow_unsandboxed: bool = False
    """Allow code nodes to run when bubblewrap is unavailable (rlimits only)."""
    code_workers: Annotated[int, Field(ge=1, le=64)] = 2
    code_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    code_memory_mb: Annotated[int, Field(ge=64, le=65536)] = 512
    blob_threshold_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    """Node outputs larger than this (as JSON) go to the blob store."""
    blob_url: str | None = None
    """Where blobs live: `s3://bucket/prefix`, `file:///abs/path` or a path; unset:
    `blobs` inside `data_dir`. Processes on several machines need a shared store (S3)."""
    blob_s3_endpoint: str | None = None
    """An S3-compatible server (`http://minio:9000`); unset: AWS S3."""
    blob_s3_region: str = "us-east-1"
    blob_s3_access_key_id: str | None = None
    """Unset together with the secret: boto3's default chain (AWS_* variables, instance role)."""
    blob_s3_secret_access_key: SecretStr | None = None

    @field_validator("blob_url")
    @classmethod
    def _parseable_blob_url(cls, value: str | None) -> str | None:
        # Imported here: loading settings need not load the blob stores' modules.
        from linkflow.blobs import parse_blob_url

        if value is not None:
            parse_blob_url(value)
        return value

    @field_validator("blob_s3_endpoint")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _otlp_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (OTLP over HTTP)")
        return value

    @field_validator("otlp_headers")
    @classmethod
    def _otlp_header_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for part in value.get_secret_value().split(","):
                name, equals, _ = part.partition("=")
                if part.strip() and (not equals or not name.strip()):
                    raise ValueError("must be name=value pairs separated by commas")
        return value

    webhook_answer_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """A webhook in last_node/respond_node mode waits this long, then answers 202."""
    webhook_delivery_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    """An outgoing webhook delivery (a subscription's POST) fails after this long."""
    delivery_backoff_s: Annotated[float, Field(ge=0, le=3600)] = 1.0
    """First retry delay of a failed outgoing webhook delivery or notification e-mail;
    doubled at each further attempt (1, 2, 4, 8 s before the 5th and last by default)."""
    lease_ttl_s: Annotated[float, Field(ge=1, le=3600)] = 30.0
    """How long a worker's hold on an execution lasts unless renewed (every third of
    it); after a worker dies, its executions are resumed elsewhere once this passed."""

    # --- HTTP API (control plane) ---
    public_url: str | None = None
    """Where users reach the API (e-mail links, OAuth redirects); default: from host and port."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed to call the API from a browser: comma-separated, or `*`."""
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Proxy addresses whose X-Forwarded-For/-Proto are believed: comma-separated, or `*`."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    """Largest request body the API accepts (413 beyond)."""
    rate_limit_enabled: bool = True
    rate_limit_per_ip: str = "600/minute"
    """Requests per client address (limits' notation: `N/second|minute|hour|day`)."""
    rate_limit_per_principal: str = "1200/minute"
    """Requests per authenticated user or API key."""
    rate_limit_auth: str = "20/minute"
    """Login, registration and password-reset attempts per client address."""
    webhook_rate_limit: str | None = None
    """Calls per webhook endpoint (all callers together) when its node sets no
    `rate_limit`; unset: no limit. Webhooks do not count against `rate_limit_per_ip`."""

    @field_validator("webhook_rate_limit")
    @classmethod
    def _parseable_rate(cls, value: str | None) -> str | None:
        # Imported here: loading settings need not load the rate limiter's library.
        from limits import parse

        if value is not None:
            try:
                parse(value)
            except ValueError:
                raise ValueError("must be a rate like 100/second or 6000/minute") from None
        return value
    access_token_ttl_s: Annotated[int, Field(ge=60, le=86400)] = 900
    auth_cache_ttl_s: Annotated[float, Field(ge=0, le=60)] = 5.0
    """How long a process reuses a checked credential; another process sees a revocation
    within this time (0: check every request)."""
    refresh_token_ttl_s: Annotated[int, Field(ge=3600)] = 30 * 86400
    jwt_algorithm: Literal["HS256", "RS256", "EdDSA"] = "HS256"
    """HS256 signs with the secret key; RS256 and EdDSA need the two key files below."""
    jwt_private_key_file: Path | None = None
    """PEM private key for RS256/EdDSA access tokens."""
    jwt_public_key_file: Path | None = None
    """PEM public key matching `jwt_private_key_file`."""
    login_max_failures: Annotated[int, Field(ge=1)] = 5
    """Failed logins in a row that lock an account for `login_lockout_s`."""
    login_lockout_s: Annotated[int, Field(ge=1)] = 900
    password_reset_ttl_s: Annotated[int, Field(ge=60)] = 3600
    invitation_ttl_s: Annotated[int, Field(ge=60)] = 7 * 86400
    mfa_issuer: str = "LinkFlow"
    password_hash_time_cost: Annotated[int, Field(ge=1, le=20)] = 3
    password_hash_memory_kib: Annotated[int, Field(ge=1024, le=4 * 1024 * 1024)] = 64 * 1024
    """Argon2id memory per hash; the defaults are RFC 9106's low-memory recommendation."""
    password_hash_parallelism: Annotated[int, Field(ge=1, le=16)] = 4
    smtp_host: str | None = None
    """Unset: e-mails are written to the log instead of sent."""
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "LinkFlow <noreply@localhost>"
    smtp_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    oauth_providers: dict[str, OAuthProvider] = Field(default_factory=dict)
    """OAuth/OIDC login, JSON: `{"github": {"client_id": ..., "client_secret": ...},
    "google": {...}, "corp": {"issuer": "https://id.example.com", ...}}`."""
    oauth2_clients: dict[str, OAuth2Client] = Field(default_factory=dict)
    """OAuth clients for connecting credentials, by credential type, JSON:
    `{"google_oauth2": {"client_id": ..., "client_secret": ...}}`; optional
    `authorize_url`, `token_url` and `scopes` override the type's. Register
    `<public_url>/api/v1/credentials/oauth2/callback` as the redirect URI."""
    oauth2_connect_redirect_url: str | None = None
    """Where the browser goes after connecting a credential (the UI's page), with
    `credential_id` added to the query; unset: the callback answers JSON."""
    oauth2_state_ttl_s: Annotated[int, Field(ge=60, le=3600)] = 600
    """How long a started connection may take: the consent screen's `state` expires then."""
    stripe_api_key: SecretStr | None = None
    """A Stripe secret key: subscriptions, Checkout and invoices through Stripe. Unset:
    self-hosted, an instance admin assigns plans and nothing calls Stripe."""
    stripe_webhook_secret: SecretStr | None = None
    """The `whsec_...` signing secret of the Stripe webhook endpoint (/api/v1/billing/webhook)."""
    stripe_api_base: str = "https://api.stripe.com"
    """Where Stripe's API is (a Stripe-compatible server in tests)."""
    default_plan: Literal["free", "pro", "business", "enterprise"] | None = None
    """The plan of a workspace without a subscription; unset: `free` with Stripe, else
    `enterprise` (no limits)."""

    @property
    def effective_default_plan(self) -> str:
        if self.default_plan is not None:
            return self.default_plan
        return "free" if self.stripe_api_key is not None else "enterprise"

    @field_validator(
        "cors_origins", "trusted_proxies", "secret_keys_previous", "encryption_keys_previous",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("secret_keys_previous")
    @classmethod
    def _long_secret_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for position, key in enumerate(value, 1):
            if not _secret_key_ok(key):
                raise ValueError(
                    f"key {position} is shorter than {MIN_SECRET_KEY_LENGTH} characters"
                )
        return value

    @field_validator("encryption_keys_previous")
    @classmethod
    def _decodable_encryption_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for position, key in enumerate(value, 1):
            if not _encryption_key_ok(key):
                raise ValueError(f"key {position} is not 32 base64-encoded bytes")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("must be one of debug, info, warning, error, critical")
        return level

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def effective_database_url(self) -> str:
        default = f"sqlite+aiosqlite:///{(self.data_dir / 'linkflow.db').resolve()}"
        url = self.database_url or default
        if (self.sqlite_synchronous == "normal" or not url.startswith("sqlite")
                or "synchronous=" in url):  # fmt: skip
            return url
        return f"{url}{'&' if '?' in url else '?'}synchronous={self.sqlite_synchronous}"

    @property
    def json_logs(self) -> bool:
        if self.log_format is LogFormat.AUTO:
            return self.is_production
        return self.log_format is LogFormat.JSON

    def encryption_key_bytes(self) -> bytes:
        """The 32-byte credential key; only valid after `load_settings()`."""
        if self.encryption_key is None:
            raise ConfigError("LINKFLOW_ENCRYPTION_KEY is not set")
        key = decode_encryption_key(self.encryption_key.get_secret_value())
        if key is None:
            raise ConfigError("LINKFLOW_ENCRYPTION_KEY is not 32 base64-encoded bytes")
        return key

    def previous_encryption_key_bytes(self) -> list[bytes]:
        """The old credential keys (`LINKFLOW_ENCRYPTION_KEYS_PREVIOUS`), checked when read."""
        return [
            key
            for text in self.encryption_keys_previous
            if (key := decode_encryption_key(text.get_secret_value())) is not None
        ]

    def secret_keys(self) -> list[str]:
        """The secret key, then the previous ones: sign with the first, verify with any."""
        if self.secret_key is None:
            raise ConfigError("LINKFLOW_SECRET_KEY is not set")
        keys = [self.secret_key.get_secret_value()]
        keys.extend(key.get_secret_value() for key in self.secret_keys_previous)
        return list(dict.fromkeys(keys))


def decode_encryption_key(text: str) -> bytes | None:
    """Decode a base64 (standard or URL-safe) key; None unless it is exactly 32 bytes."""
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            key = decode(padded)
        except (binascii.Error, ValueError):
            continue
        if len(key) == ENCRYPTION_KEY_BYTES:
            return key
    return None


def _secret_key_ok(value: SecretStr | None) -> bool:
    return value is not None and len(value.get_secret_value()) >= MIN_SECRET_KEY_LENGTH


def _encryption_key_ok(value: SecretStr | None) -> bool:
    return value is not None and decode_encryption_key(value.get_secret_value()) is not None


def _kept_secret(data_dir: Path, name: str, make: str) -> str:
    """Read the key file `name` in the data dir, creating it (mode 0600) on first use."""
    path = data_dir / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(make + "\n")
    return make


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    name = "LINKFLOW_" + "_".join(str(part) for part in first["loc"]).upper()
    return f"{name}: {first['msg']}"


def load_settings(*, settle_keys: bool = True, **overrides: object) -> Settings:
    """Read settings from the environment and `.env`, then settle the secret keys.

    `settle_keys=False` is for commands that need no keys (`linkflow run`): they
    neither check nor generate them. Raises `ConfigError` with one readable line
    when anything is wrong.
    """
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    if (settings.blob_s3_access_key_id is None) != (settings.blob_s3_secret_access_key is None):
        raise ConfigError(
            "LINKFLOW_BLOB_S3_ACCESS_KEY_ID and LINKFLOW_BLOB_S3_SECRET_ACCESS_KEY: "
            "set both or neither"
        )
    if not settle_keys:
        return settings
    secret_ok = _secret_key_ok(settings.secret_key)
    encryption_ok = _encryption_key_ok(settings.encryption_key)
    if settings.is_production:
        if not secret_ok:
            raise ConfigError(
                "LINKFLOW_SECRET_KEY must be set to at least "
                f"{MIN_SECRET_KEY_LENGTH} characters in production"
            )
        if not encryption_ok:
            raise ConfigError(
                "LINKFLOW_ENCRYPTION_KEY must be set to 32 base64-encoded bytes in production"
            )
        return settings
    updates: dict[str, SecretStr] = {}
    try:
        if not secret_ok:
            updates["secret_key"] = SecretStr(
                _kept_secret(settings.data_dir, SECRET_KEY_FILE, secrets.token_urlsafe(48))
            )
        if not encryption_ok:
            fresh = base64.urlsafe_b64encode(secrets.token_bytes(ENCRYPTION_KEY_BYTES)).decode()
            updates["encryption_key"] = SecretStr(
                _kept_secret(settings.data_dir, ENCRYPTION_KEY_FILE, fresh)
            )
    except OSError as error:
        raise ConfigError(
            f"LINKFLOW_DATA_DIR: cannot keep generated keys in {settings.data_dir}: "
            f"{error.strerror}"
        ) from None
    return settings.model_copy(update=updates) if updates else settings
