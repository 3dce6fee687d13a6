"""What an API-only process (`linkflow api`) answers where the execution plane would be.

Workflows, executions, schedules, variables, credentials, the node catalogue and
webhooks need a process that can run executions: `linkflow serve`, or an API
process handing jobs to `linkflow worker` processes over Redis (`LINKFLOW_REDIS_URL`,
`wiring.build_api`). Rather than a
bare 404 that reads like a wrong URL, every such path answers 503 with a stable
code saying which command serves it.
"""

from __future__ import annotations

from fastapi import APIRouter

from linkflow.services.errors import Unavailable

__all__ = ["PLANE_PREFIXES", "router"]

PLANE_PREFIXES = (
    "/api/v1/workflows", "/api/v1/executions", "/api/v1/schedules", "/api/v1/variables",
    "/api/v1/credentials", "/api/v1/nodes", "/webhooks",
)  # fmt: skip

MESSAGE = (
    "this process (`linkflow api`) serves accounts and workspaces only: workflows, "
    "executions, webhooks, schedules, variables and credentials need `linkflow serve`, "
    "or LINKFLOW_REDIS_URL set here and `linkflow worker` processes beside it"
)

router = APIRouter(include_in_schema=False)


async def _unavailable(path: str = "") -> None:
    raise Unavailable(MESSAGE, code="execution_plane_unavailable")


for _prefix in PLANE_PREFIXES:
    for _suffix in ("", "/{path:path}"):
        router.add_api_route(
            _prefix + _suffix, _unavailable,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        )  # fmt: skip
