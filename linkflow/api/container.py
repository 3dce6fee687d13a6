"""The objects one API process is built from (`Container`): what the app's endpoints
and middleware use. `linkflow.wiring.build_container` makes it from `Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from linkflow.api.ratelimit import RateLimiter
from linkflow.config import Settings
from linkflow.observability.metrics import HttpMetrics
from linkflow.services.accounts import Accounts
from linkflow.services.admin import Admin
from linkflow.services.admin_users import AdminUsers
from linkflow.services.api_keys import ApiKeys
from linkflow.services.audit import AuditLogs
from linkflow.services.auth_revocations import AuthRevocations
from linkflow.services.authentication import Authenticator
from linkflow.services.health import Health
from linkflow.services.idempotency import Idempotency
from linkflow.services.mail import Mailer
from linkflow.services.members import Members
from linkflow.services.mfa import Mfa
from linkflow.services.oauth import OAuthLogin
from linkflow.services.password_reset import PasswordReset
from linkflow.services.plans import PlanLimits
from linkflow.services.sessions import Sessions
from linkflow.services.stripe_events import StripeEvents
from linkflow.services.subscriptions import Subscriptions
from linkflow.services.users import Users
from linkflow.services.workspaces import Workspaces
from linkflow.store import Database

__all__ = ["Container", "public_url"]


@dataclass(frozen=True)
class Container:
    """Everything the app's endpoints and middleware use."""

    settings: Settings
    database: Database
    redis: Redis | None
    http: httpx.AsyncClient
    limiter: RateLimiter
    metrics: HttpMetrics
    mailer: Mailer
    authenticator: Authenticator
    sessions: Sessions
    accounts: Accounts
    mfa: Mfa
    password_reset: PasswordReset
    oauth: OAuthLogin
    users: Users
    workspaces: Workspaces
    members: Members
    api_keys: ApiKeys
    audit: AuditLogs
    idempotency: Idempotency
    health: Health
    plans: PlanLimits
    subscriptions: Subscriptions
    stripe_events: StripeEvents
    admin: Admin
    admin_users: AdminUsers
    revocations: AuthRevocations

    async def aclose(self) -> None:
        await self.limiter.close()
        await self.http.aclose()
        await self.subscriptions.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.database.dispose()


def public_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"
