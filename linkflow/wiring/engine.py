"""The engine's outside world: the HTTP client of nodes, the blob store, and the engine
of `linkflow run` (sub-workflows from files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from linkflow.blobs import FilesystemBlobStore, S3BlobStore, parse_blob_url
from linkflow.config import Settings
from linkflow.engine import CredentialResolver, Engine, NodeServices
from linkflow.nodes.sdk import BlobStore, CodeRunner
from linkflow.services.local_workflows import LocalWorkflowRunner

if TYPE_CHECKING:
    import httpx

__all__ = ["build_blob_store", "build_local_engine", "shared_http_client"]


def shared_http_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one HTTP client for nodes: pooled and SSRF-guarded."""
    from linkflow.security.ssrf import guarded_client  # a run without HTTP nodes skips it

    return guarded_client(allow_private=settings.http_allow_private)


def build_blob_store(settings: Settings) -> BlobStore:
    """The blob store `LINKFLOW_BLOB_URL` names: S3 or a directory (default: `blobs`
    in the data dir). Processes on several machines need S3 to read each other's blobs."""
    if settings.blob_url is None:
        return FilesystemBlobStore(settings.data_dir / "blobs")
    location = parse_blob_url(settings.blob_url)
    if location.scheme == "s3":
        secret = settings.blob_s3_secret_access_key
        return S3BlobStore(
            location.bucket, prefix=location.prefix, endpoint_url=settings.blob_s3_endpoint,
            region=settings.blob_s3_region, access_key_id=settings.blob_s3_access_key_id,
            secret_access_key=None if secret is None else secret.get_secret_value(),
        )  # fmt: skip
    assert location.path is not None
    path = location.path if location.path.is_absolute() else settings.data_dir / location.path
    return FilesystemBlobStore(path)


def build_local_engine(
    settings: Settings,
    *,
    base_dir: Path,
    http: Callable[[], httpx.AsyncClient],
    credentials: CredentialResolver | None = None,
    code: CodeRunner | None = None,
) -> tuple[Engine, LocalWorkflowRunner]:
    """The engine of `linkflow run`: sub-workflows from files next to the one being run,
    blobs in the data dir, credentials from a file when one is given. `http` is called
    when a node first needs the client: building one (its TLS context) is a tenth of a
    second that a run without HTTP nodes need not spend."""
    from linkflow.security.ssrf import AddressPolicy, HostGuard  # as shared_http_client

    runner = LocalWorkflowRunner(base_dir)
    services = NodeServices(
        http=http,
        addresses=HostGuard(AddressPolicy(allow_private=settings.http_allow_private)),
        credentials=credentials,
        blobs=build_blob_store(settings),
        code=code,
        workflows=runner,
        blob_threshold_bytes=settings.blob_threshold_bytes,
    )
    engine = Engine(services=services)
    runner.bind(engine)
    return engine, runner
