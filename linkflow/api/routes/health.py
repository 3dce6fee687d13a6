"""`/health`, `/health/live`, `/health/ready` and `/metrics`: for probes and scrapers.

Liveness says the process answers; readiness also checks the database, Redis
when configured, and the group-commit writer of a process that has one (an empty
batch through it: see `services.health`), and is a 503 problem, listing what
failed, when any check fails, so a load balancer stops sending traffic. Workers and
schedulers answer the same on their metrics port (`observability.probes`).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from linkflow.api.deps import Services
from linkflow.api.errors import problem_response
from linkflow.api.json_body import JSONRoute
from linkflow.observability.metrics import CONTENT_TYPE

router = APIRouter(route_class=JSONRoute, tags=["health"])


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/health")
async def health(services: Services) -> Response:
    """Readiness, with the state of each dependency (alias of `/health/ready`)."""
    return await ready(services)


@router.get("/health/live")
async def live() -> HealthOut:
    """The process is up and answering."""
    return HealthOut(status="ok")


@router.get("/health/ready", responses={200: {"model": HealthOut}})
async def ready(services: Services) -> Response:
    """Ready to serve: the database, Redis (when configured) and the writer answer."""
    checks = await services.health.check()
    failed = {name: state for name, state in checks.items() if state != "ok"}
    if failed:
        detail = "; ".join(f"{name}: {state}" for name, state in failed.items())
        return problem_response(
            503, "not_ready", detail, extra={"checks": checks}, headers={"Retry-After": "5"}
        )
    return Response(
        HealthOut(status="ok", checks=checks).model_dump_json(), media_type="application/json"
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(services: Services) -> Response:
    """Prometheus exposition of the HTTP metrics."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
