"""`GET /api/v1/nodes`: the node catalogue an editor draws its palette and forms from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from linkflow.api.deps import CurrentPrincipal
from linkflow.api.json_body import JSONRoute
from linkflow.api.plane import PlaneServices

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/nodes", tags=["nodes"])


class NodeTypeOut(BaseModel):
    type: str
    display_name: str
    group: str
    description: str
    inputs: int
    outputs: list[str]
    parameters_schema: dict[str, Any]
    credential_slots: dict[str, list[str]]
    emits: str


@router.get("")
async def list_node_types(_: CurrentPrincipal, plane: PlaneServices) -> list[NodeTypeOut]:
    """Every node type with its inputs, outputs, parameter JSON Schema and credential slots."""
    return [
        NodeTypeOut(
            type=node.type,
            display_name=node.display_name,
            group=node.group.value,
            description=node.description,
            inputs=node.inputs,
            outputs=list(node.outputs),
            parameters_schema=node.parameters_schema,
            credential_slots={slot: list(types) for slot, types in node.credential_slots.items()},
            emits=node.emits,
        )
        for node in plane.engine.registry
    ]
