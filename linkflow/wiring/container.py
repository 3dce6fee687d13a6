"""The API's objects (`api.container.Container`) from `Settings`: memory or Redis
rate-limit storage, SMTP or log mail, the JWT algorithm and keys. Nothing here does
I/O when built; `Container.aclose` releases what was opened.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from redis.asyncio import Redis

from linkflow.api.container import Container, public_url
from linkflow.api.ratelimit import RateLimiter, limits_storage
from linkflow.config import ConfigError, Settings
from linkflow.observability.metrics import HttpMetrics
from linkflow.security.passwords import Passwords
from linkflow.security.tokens import AccessTokens, SignedTokens
from linkflow.services.accounts import Accounts, LoginPolicy
from linkflow.services.admin import Admin
from linkflow.services.admin_users import AdminUsers
from linkflow.services.api_keys import ApiKeys
from linkflow.services.audit import AuditLogs
from linkflow.services.auth_cache import AuthCache
from linkflow.services.auth_revocations import AuthRevocations
from linkflow.services.authentication import Authenticator
from linkflow.services.health import Health
from linkflow.services.idempotency import Idempotency
from linkflow.services.mail import LogMailer, Mailer, SmtpMailer
from linkflow.services.members import Members
from linkflow.services.mfa import Mfa, SecondFactor
from linkflow.services.oauth import OAuthLogin
from linkflow.services.password_reset import PasswordReset
from linkflow.services.plans import PlanLimits
from linkflow.services.sessions import Sessions
from linkflow.services.stripe_events import StripeEvents
from linkflow.services.stripe_gateway import StripeGateway
from linkflow.services.subscriptions import Subscriptions
from linkflow.services.users import Users
from linkflow.services.workspaces import Workspaces
from linkflow.store import Database
from linkflow.wiring.keys import previous_secrets, secret_box

__all__ = ["build_container", "build_mailer"]

OAUTH_HTTP_TIMEOUT_S = 10.0
"""Calls to OAuth providers: a provider that takes longer is down for a login."""


def _read_key(path: Path | None, variable: str) -> bytes:
    if path is None:
        raise ConfigError(f"{variable} must be set when LINKFLOW_JWT_ALGORITHM is not HS256")
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{variable}: cannot read {path}: {error.strerror}") from None


def _access_tokens(settings: Settings, secret: str) -> AccessTokens:
    ttl = timedelta(seconds=settings.access_token_ttl_s)
    if settings.jwt_algorithm == "HS256":
        return AccessTokens.hs256(secret, ttl, previous_secrets(settings))
    private = _read_key(settings.jwt_private_key_file, "LINKFLOW_JWT_PRIVATE_KEY_FILE")
    public = _read_key(settings.jwt_public_key_file, "LINKFLOW_JWT_PUBLIC_KEY_FILE")
    tokens = AccessTokens(
        algorithm=settings.jwt_algorithm, signing_key=private, verifying_key=public, ttl=ttl
    )
    try:  # a key that cannot sign, or a pair that does not match, must stop start-up
        tokens.verify(tokens.issue(uuid.uuid4(), uuid.uuid4()))
    except Exception as error:  # noqa: BLE001 - any failure here is a configuration error
        raise ConfigError(
            f"LINKFLOW_JWT_PRIVATE_KEY_FILE / LINKFLOW_JWT_PUBLIC_KEY_FILE: not a matching "
            f"{settings.jwt_algorithm} key pair ({type(error).__name__})"
        ) from None
    return tokens


def build_mailer(settings: Settings) -> Mailer:
    """SMTP with `LINKFLOW_SMTP_HOST` set, else the log."""
    if settings.smtp_host is None:
        return LogMailer()
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        timeout_s=settings.smtp_timeout_s,
    )


def build_stripe(settings: Settings) -> StripeGateway | None:
    """Stripe with `LINKFLOW_STRIPE_API_KEY` set, else None (self-hosted: no call out)."""
    if settings.stripe_api_key is None:
        return None
    return StripeGateway(settings.stripe_api_key.get_secret_value(), settings.stripe_api_base)


def build_container(settings: Settings, *, database: Database | None = None) -> Container:
    """Build a process's API objects; `ConfigError` names a bad setting.

    `settings` must come from `load_settings()` (which settles the keys).
    """
    if settings.secret_key is None:
        raise ConfigError("LINKFLOW_SECRET_KEY is not set")
    secret = settings.secret_key.get_secret_value()
    database = database or Database(settings.effective_database_url,
                                    pool_size=settings.database_pool_size)  # fmt: skip
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    http = httpx.AsyncClient(timeout=OAUTH_HTTP_TIMEOUT_S, follow_redirects=False)
    url = public_url(settings)
    tokens = _access_tokens(settings, secret)
    previous = previous_secrets(settings)
    signed = SignedTokens(secret, previous)
    hmac_key = secret.encode()
    old_hmac_keys = [key.encode() for key in previous]
    passwords = Passwords(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    cache = AuthCache(timedelta(seconds=settings.auth_cache_ttl_s))
    sessions = Sessions(database, tokens, timedelta(seconds=settings.refresh_token_ttl_s), cache)
    second_factor = SecondFactor(secret_box(settings))
    policy = LoginPolicy(settings.login_max_failures, timedelta(seconds=settings.login_lockout_s))
    accounts = Accounts(database, passwords, sessions, second_factor, signed, policy)
    limiter = RateLimiter(
        limits_storage(settings.redis_url, redis),
        enabled=settings.rate_limit_enabled,
        per_ip=settings.rate_limit_per_ip,
        per_principal=settings.rate_limit_per_principal,
        auth=settings.rate_limit_auth,
    )
    plans = PlanLimits(database, settings.effective_default_plan)
    subscriptions = Subscriptions(database, plans, build_stripe(settings), url)
    webhook_secret = settings.stripe_webhook_secret
    revocations = AuthRevocations(cache, redis, settings.redis_prefix)
    return Container(
        settings=settings,
        database=database,
        redis=redis,
        http=http,
        limiter=limiter,
        metrics=HttpMetrics(),
        mailer=build_mailer(settings),
        authenticator=Authenticator(
            database, tokens, hmac_key, cache, previous_api_key_secrets=old_hmac_keys
        ),
        sessions=sessions,
        accounts=accounts,
        mfa=Mfa(database, passwords, second_factor, settings.mfa_issuer, cache),
        password_reset=PasswordReset(
            database, passwords, timedelta(seconds=settings.password_reset_ttl_s), url, cache
        ),
        oauth=OAuthLogin(database, accounts, dict(settings.oauth_providers), http, signed, url),
        users=Users(database, passwords, cache),
        workspaces=Workspaces(database, cache),
        members=Members(database, timedelta(seconds=settings.invitation_ttl_s), url, cache,
                        limits=plans),
        api_keys=ApiKeys(database, hmac_key, cache),
        audit=AuditLogs(database),
        idempotency=Idempotency(database),
        health=Health(database, redis),
        plans=plans,
        subscriptions=subscriptions,
        stripe_events=StripeEvents(
            database, webhook_secret.get_secret_value() if webhook_secret else None),
        admin=Admin(database, plans, subscriptions),
        admin_users=AdminUsers(database, revocations),
        revocations=revocations,
    )
