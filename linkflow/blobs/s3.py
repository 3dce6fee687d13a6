"""A content-addressed blob store in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...).

Semantics are the filesystem store's: a blob's ref is `sha256:<hex digest>` of
its bytes (the same ref in every store, so refs move between stores and
machines), storing the same bytes twice uploads them once, and a malformed ref
or a missing object raises `InvalidBlobRef`. Objects are keyed
`<prefix>/<hex[:2]>/<hex[2:4]>/<hex>`.

Invariants:
- an object is written whole by one PUT, so a reader never sees half a blob;
  two writers racing on the same ref write the same bytes, so the race is harmless;
- a read is checked against its digest, so a ref never yields other content;
- every request is bounded by the connect and read timeouts, times the
  attempts; a failure to reach or use the bucket is `BlobStoreUnavailable`.

boto3 is blocking: every call runs in a thread. It is imported by the
constructor, so importing `linkflow.blobs` costs nothing when S3 is not used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from linkflow.blobs._refs import InvalidBlobRef, digest_of, ref_for
from linkflow.nodes.sdk import BinaryRef

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

__all__ = ["BlobStoreUnavailable", "S3BlobStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

# S3 answers a missing key with 404: `NoSuchKey` on GET, a bare `404` on HEAD
# (no body); some S3-compatible servers say `NotFound`.
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class BlobStoreUnavailable(ConnectionError):
    """The bucket cannot be reached, timed out, or refused the request.

    A `ConnectionError`, so the services map it to 503 like any dependency that
    is down. The message is one line naming the bucket and endpoint, never a key.
    It also covers refusals retrying will not cure (bad credentials, no such
    bucket): to the caller the store is unusable either way.
    """


class S3BlobStore:
    """Blobs in `bucket` under `prefix`.

    `endpoint_url` points at an S3-compatible server (unset: AWS). Without
    `access_key_id` and `secret_access_key`, boto3's default chain finds the
    credentials (environment, shared files, instance role). Each request waits
    at most `connect_timeout` to connect and `read_timeout` per read, and is tried
    `max_attempts` times in all (botocore's standard retry mode, with backoff).
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout: timedelta = timedelta(seconds=5),
        read_timeout: timedelta = timedelta(seconds=30),
        max_attempts: int = 3,
    ) -> None:
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError("give both the S3 access key id and the secret access key, or neither")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        custom_endpoint = endpoint_url is not None
        config = Config(
            connect_timeout=connect_timeout.total_seconds(),
            read_timeout=read_timeout.total_seconds(),
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            # Path-style URLs and checksums only where required: S3-compatible
            # servers (MinIO, Ceph, R2, B2) often lack virtual-host buckets and reject
            # the checksum headers boto3 >= 1.36 sends by default. Integrity does not
            # rest on them: reads are checked against the digest.
            s3={"addressing_style": "path"} if custom_endpoint else None,
            request_checksum_calculation="when_required" if custom_endpoint else None,
            response_checksum_validation="when_required" if custom_endpoint else None,
        )
        # A session per store: boto3's default session is module-global state.
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)

    def _key(self, ref: str) -> str:
        digest = digest_of(ref)
        key = f"{digest[:2]}/{digest[2:4]}/{digest}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def _head(self, key: str, *, missing: frozenset[str] = _MISSING) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in missing:
                return False
            raise
        return True

    def _write(self, key: str, data: bytes) -> None:
        # Without s3:ListBucket, S3 answers 403 for a missing key: upload then, since
        # writing the same bytes again is harmless, and a real refusal fails the PUT.
        if self._head(key, missing=_MISSING | {"403", "AccessDenied"}):
            return
        self._client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType="application/octet-stream"
        )

    def _read(self, ref: str, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                raise InvalidBlobRef(f"no blob {ref}") from None
            raise
        body = response["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        actual = ref_for(data)
        if actual != ref:
            raise InvalidBlobRef(
                f"blob {ref} in bucket {self.bucket!r} is corrupt: its bytes are {actual}"
            )
        return data

    async def _call(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except (BotoCoreError, ClientError) as error:
            where = self.endpoint_url or "AWS"
            raise BlobStoreUnavailable(f"S3 bucket {self.bucket!r} at {where}: {error}") from error

    async def put(
        self,
        data: bytes,
        *,
        mime_type: str = "application/octet-stream",
        file_name: str | None = None,
    ) -> BinaryRef:
        ref = ref_for(data)
        await self._call(self._write, self._key(ref), data)
        return BinaryRef(ref=ref, size=len(data), mime_type=mime_type, file_name=file_name)

    async def get(self, ref: BinaryRef | str) -> bytes:
        text = ref.ref if isinstance(ref, BinaryRef) else ref
        return await self._call(self._read, text, self._key(text))

    async def exists(self, ref: str) -> bool:
        """Whether the bucket holds `ref` (False as well when the bucket itself is missing)."""
        return await self._call(self._head, self._key(ref))
