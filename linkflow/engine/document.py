"""The workflow document: what users write, store, import and export.

Parsing turns JSON into frozen models and reports shape problems (missing
fields, wrong types, bad ids) as `Problem`s; the graph and parameter rules are
checked by `validation.py`. The shape is pinned by CONTRACT.md section 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from linkflow.nodes.sdk import MAIN, OnError

__all__ = [
    "Connection",
    "NodeSpec",
    "Problem",
    "RetryPolicy",
    "WorkflowDocument",
    "WorkflowSettings",
    "parse_document",
]

NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document. `node_id` is None for document-level problems."""

    message: str
    node_id: str | None = None
    field: str | None = None
    code: str = "invalid"

    def to_json(self) -> dict[str, str | None]:
        return {"node_id": self.node_id, "field": self.field, "code": self.code,
                "message": self.message}  # fmt: skip

    def __str__(self) -> str:
        where = f"node {self.node_id!r}" if self.node_id else "workflow"
        if self.field:
            where += f", {self.field}"
        return f"{where}: {self.message}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RetryPolicy(_Model):
    """Exponential backoff: attempt n waits `backoff_s * 2**(n-1)`, capped at `max_backoff_s`."""

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff_s: float = Field(default=1.0, ge=0, le=3600)
    max_backoff_s: float = Field(default=300.0, ge=0, le=86400)

    def delay_s(self, failed_attempt: int) -> float:
        return float(min(self.backoff_s * 2 ** (failed_attempt - 1), self.max_backoff_s))


class NodeSpec(_Model):
    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str = Field(min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=128)
    parameters: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, str] = Field(default_factory=dict)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float | None = Field(default=None, gt=0, le=86400)
    on_error: OnError = OnError.STOP
    disabled: bool = False
    position: tuple[float, float] | None = None
    notes: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.id


class Connection(_Model):
    from_: str = Field(alias="from")
    to: str
    output: str = MAIN
    input: int = Field(default=0, ge=0, le=64)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.from_, "to": self.to, "output": self.output, "input": self.input}


class WorkflowSettings(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")

    timeout_s: float | None = Field(default=None, gt=0, le=7 * 86400)
    error_workflow: str | None = None
    webhook_error_status: int | None = Field(default=None, ge=400, le=599, strict=True)
    """The status a webhook caller waiting for the answer gets when the run fails
    (None: 500); an error status, so a caller's retry logic sees a failure."""


class WorkflowDocument(_Model):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    name: str = Field(default="Untitled workflow", max_length=256)
    nodes: tuple[NodeSpec, ...]
    connections: tuple[Connection, ...] = ()
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _problem_from(error: Mapping[str, Any], raw: Mapping[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    node_id: str | None = None
    field: str | None = ".".join(str(part) for part in loc)
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = raw.get("nodes")
        if isinstance(nodes, list) and loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
            candidate = nodes[loc[1]].get("id")
            node_id = candidate if isinstance(candidate, str) else None
        field = ".".join(str(part) for part in loc[2:]) or None
    return Problem(message=str(error["msg"]), node_id=node_id, field=field)


def parse_document(raw: object) -> tuple[WorkflowDocument | None, list[Problem]]:
    """Parse a JSON value into a document, or list every shape problem."""
    if not isinstance(raw, Mapping):
        return None, [Problem("a workflow document is a JSON object")]
    try:
        return WorkflowDocument.model_validate(raw), []
    except ValidationError as error:
        return None, [_problem_from(e, raw) for e in error.errors(include_url=False)]
