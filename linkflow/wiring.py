"""Builds a process's long-lived parts from Settings: the one place that picks
implementations (SQLite or PostgreSQL, embedded or Redis, which blob store).

Nothing here runs at import time; the CLI calls these builders once.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from linkflow.blobs import FilesystemBlobStore
from linkflow.config import Settings
from linkflow.engine import CredentialResolver, Engine, NodeServices
from linkflow.security.ssrf import guarded_client
from linkflow.services.local_workflows import LocalWorkflowRunner

__all__ = ["build_local_engine", "shared_http_client"]


def shared_http_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one HTTP client for nodes: pooled and SSRF-guarded."""
    return guarded_client(allow_private=settings.http_allow_private)


def build_local_engine(
    settings: Settings,
    *,
    base_dir: Path,
    http: httpx.AsyncClient,
    credentials: CredentialResolver | None = None,
) -> tuple[Engine, LocalWorkflowRunner]:
    """The engine of `linkflow run`: sub-workflows from files next to the one being run,
    blobs in the data dir, credentials from a file when one is given."""
    runner = LocalWorkflowRunner(base_dir)
    services = NodeServices(
        http=lambda: http,
        credentials=credentials,
        blobs=FilesystemBlobStore(settings.data_dir / "blobs"),
        workflows=runner,
        blob_threshold_bytes=settings.blob_threshold_bytes,
    )
    engine = Engine(services=services)
    runner.bind(engine)
    return engine, runner
