"""SQLAlchemy models of LinkFlow's schema, one module per area.

Importing this package registers every table on `Base.metadata`, which is
what the migrations are compared against: a model that is not imported here
is invisible to `linkflow.store.migrate.check`.
"""

from __future__ import annotations

from linkflow.store.models._base import (
    NAMING_CONVENTION,
    Base,
    SoftDeletable,
    Timestamped,
    WorkspaceScoped,
    exists_on,
    postgresql_only,
)
from linkflow.store.models.audit import AuditLog, IdempotencyKey
from linkflow.store.models.billing import BillingEvent, Plan, Subscription, Usage
from linkflow.store.models.executions import (
    Execution,
    ExecutionEvent,
    ExecutionLease,
    NodeExecution,
)
from linkflow.store.models.identity import (
    ApiKey,
    OAuthConnection,
    PasswordResetToken,
    User,
    UserSession,
)
from linkflow.store.models.oauth2 import CredentialRefreshLease, OAuth2ConnectState
from linkflow.store.models.outgoing import WebhookDelivery, WebhookSubscription
from linkflow.store.models.workflows import (
    Credential,
    Schedule,
    Webhook,
    WebhookSignature,
    Workflow,
    WorkflowVersion,
)
from linkflow.store.models.workspaces import Variable, Workspace, WorkspaceMember

__all__ = [
    "NAMING_CONVENTION",
    "ApiKey",
    "AuditLog",
    "Base",
    "BillingEvent",
    "Credential",
    "CredentialRefreshLease",
    "Execution",
    "ExecutionEvent",
    "ExecutionLease",
    "IdempotencyKey",
    "NodeExecution",
    "OAuth2ConnectState",
    "OAuthConnection",
    "PasswordResetToken",
    "Plan",
    "Schedule",
    "SoftDeletable",
    "Subscription",
    "Timestamped",
    "Usage",
    "User",
    "UserSession",
    "Variable",
    "Webhook",
    "WebhookDelivery",
    "WebhookSignature",
    "WebhookSubscription",
    "Workflow",
    "WorkflowVersion",
    "Workspace",
    "WorkspaceMember",
    "WorkspaceScoped",
    "exists_on",
    "postgresql_only",
]
