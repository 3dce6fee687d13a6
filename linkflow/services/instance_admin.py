"""A self-hoster's administration from the command line (`linkflow admin ...`): make an
account, make it an instance admin, put a workspace on a plan.

The same use cases as the API's (registration, `Subscriptions.assign`), so an account
made here is like one registered (a personal workspace, the password rules), and every
change is audited; the actor is the command line (no user, no key).
"""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select, update

from linkflow.services.accounts import Accounts
from linkflow.services.audit import record
from linkflow.services.context import Actor, RequestInfo
from linkflow.services.errors import NotFound
from linkflow.services.subscriptions import Subscriptions
from linkflow.store import Database, Subscription, User, Workspace

__all__ = ["COMMAND_LINE", "create_user", "set_plan"]

COMMAND_LINE = Actor(
    user_id=None, api_key_id=None, request=RequestInfo(user_agent="linkflow admin")
)


async def create_user(
    accounts: Accounts,
    database: Database,
    *,
    email: str,
    password: str,
    name: str,
    admin: bool,
) -> User:
    """A new account (and its personal workspace); an instance admin with `admin`."""
    registered = await accounts.register(email, password, name, COMMAND_LINE.request)
    user = registered.user
    if admin and not user.is_admin:
        async with database.transaction() as session:
            await session.execute(update(User).where(User.id == user.id).values(is_admin=True))
            await record(
                session,
                COMMAND_LINE,
                "user.admin_granted",
                "user",
                user.id,
                old={"is_admin": False},
                new={"is_admin": True},
            )
        user.is_admin = True
    return user


async def set_plan(
    database: Database, subscriptions: Subscriptions, workspace: str, plan: str
) -> tuple[Workspace, Subscription]:
    """Put the workspace named by `workspace` (its id or slug) on `plan`."""
    try:
        by_id = Workspace.id == uuid.UUID(workspace)
    except ValueError:
        by_id = None
    match = (
        Workspace.slug == workspace if by_id is None else or_(by_id, Workspace.slug == workspace)
    )
    async with database.session() as session:
        found = await session.scalar(select(Workspace).where(match, Workspace.deleted_at.is_(None)))
    if found is None:
        raise NotFound(
            f"there is no workspace {workspace!r} (give its id or slug)", code="workspace_not_found"
        )
    return found, await subscriptions.assign(found.id, plan, COMMAND_LINE)
