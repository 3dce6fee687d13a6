"""`linkflow admin`: a self-hoster's administration commands (`create-user`, `set-plan`).

`linkflow.cli` adds this Typer app as `admin`; the logic is in
`linkflow.services.instance_admin`, on the objects the API is built from, so a change
made here is the one the API would make (audited, password rules, plan assignment).
A refusal is one line on stderr and exit code 2, like every command's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from linkflow.api.container import Container

T = TypeVar("T")

__all__ = ["admin"]

admin = typer.Typer(
    name="admin", help="Instance administration: accounts and plans.", no_args_is_help=True
)


def _run_with_container(work: Callable[[Container], Awaitable[T]]) -> T:
    """Run `work(container)` on the API's objects, a refusal as a one-line failure."""
    import asyncio

    from linkflow.cli import _fail, _prepare_database, _settings
    from linkflow.services.errors import LinkFlowError
    from linkflow.wiring import build_container

    settings = _settings()
    _prepare_database(settings)
    container = build_container(settings)

    async def run() -> T:
        try:
            return await work(container)
        finally:
            await container.aclose()

    try:
        return asyncio.run(run())
    except LinkFlowError as error:
        raise _fail(f"{error.detail} ({error.code})") from None


@admin.command("create-user")
def create_user(
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="Asked for when not given."
        ),
    ],
    name: Annotated[str, typer.Option(help="A display name.")] = "",
    is_admin: Annotated[bool, typer.Option("--admin", help="Make it an instance admin.")] = False,
) -> None:
    """Create an account with its personal workspace (an instance admin with --admin)."""
    from linkflow.services.instance_admin import create_user as create

    user = _run_with_container(
        lambda container: create(
            container.accounts,
            container.database,
            email=email,
            password=password,
            name=name,
            admin=is_admin,
        )
    )
    role = " (instance admin)" if user.is_admin else ""
    typer.echo(f"created {user.email}{role}: {user.id}")


@admin.command("set-plan")
def set_plan(
    workspace: Annotated[str, typer.Argument(help="The workspace's id or slug.")],
    plan: Annotated[str, typer.Argument(help="free, pro, business or enterprise.")],
) -> None:
    """Put a workspace on a plan, with no end (self-hosted: no payment provider)."""
    from linkflow.services.instance_admin import set_plan as assign

    found, _ = _run_with_container(
        lambda container: assign(container.database, container.subscriptions, workspace, plan)
    )
    typer.echo(f"workspace {found.slug} ({found.id}) is on {plan}")
