"""The AWS S3 integration (and S3-compatible stores: MinIO, Ceph, R2...): the `s3` node
(upload, download, list, delete, presigned URL) and the `s3` credential, on boto3.

Decisions:
- boto3 in a thread (`asyncio.to_thread`), as the S3 blob store does: it is the
  official SDK, already a dependency, and an activation makes a handful of calls,
  so a thread per call costs nothing worth aiobotocore's second dependency tree
  (aiohttp). The client is built in a thread too (it reads its service model
  from disk), once per activation, on the first item that needs it.
- The endpoint URL's host passes the SSRF guard (`ctx.resolve_host`). Over plain
  HTTP the client is pointed at the vetted address itself (path-style, so the
  bucket is not a host name), so a second DNS answer cannot point it elsewhere;
  over HTTPS it connects by name, as certificate verification needs. Without an
  endpoint URL the client talks to AWS over HTTPS, at the region's endpoint.
- The client reads nothing from the worker's environment that could send it
  elsewhere: the keys are the credential's, proxies from the environment are
  off, and endpoint URLs from AWS config files or variables are ignored.
- botocore's own retries are off: the node's retry policy decides, and a
  throttled call (`SlowDown`) is a retryable `NodeError` with `retry_after_s`.
- A presigned URL is computed locally (no request) against the endpoint as
  the credential names it, so the URL works for whoever receives it.
- Errors name the operation, the bucket and the key, never a key's secret.
"""

from __future__ import annotations

import asyncio
import functools
import posixpath
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from linkflow.nodes.builtin._common import Params, canonical_json, set_path
from linkflow.nodes.sdk import (
    BinaryRef,
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    Pair,
    amap_items,
)

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

__all__ = ["CREDENTIALS", "NODES", "S3", "S3_CREDENTIAL"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

OPERATIONS: Final = ("upload", "download", "list", "delete", "presign")
DEFAULT_TIMEOUT_S: Final = 30.0
"""Connecting, and each read of an answer."""
DEFAULT_LIMIT: Final = 1000
"""list: objects per item unless `limit` says otherwise (S3's own page size)."""
PAGE_SIZE: Final = 1000
"""The most keys S3 returns per ListObjectsV2 call."""
MAX_DOWNLOAD_BYTES: Final = 256 * 1024 * 1024
"""download: an object becomes a binary held whole in memory, so a bound is needed."""
MAX_PRESIGN_S: Final = 7 * 86400
"""SigV4 presigned URLs expire after a week at most."""
SLOWDOWN_RETRY_AFTER_S: Final = 1.0
"""S3 throttles without Retry-After; AWS asks clients to back off before retrying."""
_REGION: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
_THROTTLED: Final = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
_MISSING_KEY: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED: Final = frozenset({"AccessDenied", "403", "AllAccessDisabled"})
_BAD_KEYS: Final = {
    "InvalidAccessKeyId": "the access key id is not known to the service",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "InvalidToken": "the credential's keys were refused",
    "ExpiredToken": "the credential's keys have expired",
}

_REQUIRED: Final = {
    "upload": ("bucket", "key"), "download": ("bucket", "key"), "list": ("bucket",),
    "delete": ("bucket", "key"), "presign": ("bucket", "key"),
}  # fmt: skip


async def _list_buckets(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """ListBuckets: the keys are valid if S3 answers, even when it refuses the listing."""
    session = _Session(ctx.resolve_host, data, ctx.timeout_s)
    client = await session.client()
    where = _where(data)
    try:
        answer = await asyncio.to_thread(client.list_buckets)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in _DENIED:
            return f"the keys were accepted by {where} (they may not list buckets)"
        reason = _client_error("test", "", "", error).message.removeprefix("s3 test: ")
        raise NodeError(f"s3 test against {where}: {reason}") from None
    except BotoCoreError:
        # The same call through _call, for its message (a timeout, no connection).
        answer = await _call(f"test against {where}", "", "", client.list_buckets)
    return f"listed {len(answer.get('Buckets', []))} bucket(s) at {where}"


S3_CREDENTIAL: Final = CredentialType(
    "s3",
    "AWS S3",
    "Access keys for AWS S3 or an S3-compatible store (MinIO, Ceph, Cloudflare R2...).",
    (
        CredentialField("access_key_id", required=True),
        CredentialField("secret_access_key", required=True, secret=True),
        CredentialField("region", default="us-east-1",
                        description="The AWS region (S3-compatible stores often take any)."),
        CredentialField("endpoint_url", "url",
                        description="An S3-compatible store's URL (empty: AWS)."),
    ),
    check=_list_buckets,
)  # fmt: skip


class S3(Node):
    type = "s3"
    display_name = "AWS S3"
    group = NodeGroup.ACTION
    description = (
        "Per item, one operation on an S3 bucket (credential slot `s3`; AWS or any "
        "S3-compatible store): `upload` the item's binary `binary_property` (or `content`: "
        "text, or JSON for other values) to `key`; `download` `key` into the binary "
        "`binary_property`; `list` the objects under `prefix` (one item each, following "
        "continuation tokens up to `limit`); `delete` `key`; `presign` a URL that lets "
        "whoever holds it `GET` or `PUT` `key` for `expires_s` seconds. upload, download, "
        "delete and presign put what they did under `output_field` of the item."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"s3": ("s3",)}
    lineage = Lineage.EXPLICIT
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "download",
                          "description": "What to do."},
            "bucket": {"type": "string", "minLength": 3, "maxLength": 63,
                       "description": "The bucket."},
            "key": {"type": "string", "minLength": 1, "maxLength": 1024,
                    "description": "upload, download, delete, presign: the object's key."},
            "binary_property": {"type": "string", "minLength": 1, "default": "data",
                                "description": "upload: the item's binary to upload (unless "
                                "`content` is set); download: the binary to write."},
            "content": {"description": "upload: the content instead of a binary (not a "
                        "string: uploaded as JSON)."},
            "content_type": {"type": "string", "minLength": 1,
                             "description": "upload: the Content-Type (default: the "
                             "binary's, or text/plain or application/json for `content`); "
                             "presign PUT: the Content-Type the uploader must send."},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"},
                         "default": {},
                         "description": "upload: user metadata (x-amz-meta-*), name → text."},
            "prefix": {"type": "string", "default": "",
                       "description": "list: only keys that start with this."},
            "limit": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_LIMIT,
                      "description": "list: at most this many objects per item (null: all)."},
            "method": {"type": "string", "enum": ["GET", "PUT"], "default": "GET",
                       "description": "presign: what the URL allows."},
            "expires_s": {"type": "integer", "minimum": 1, "maximum": MAX_PRESIGN_S,
                          "default": 3600, "description": "presign: how long the URL works."},
            "output_field": {"type": "string", "minLength": 1, "default": "s3",
                             "description": "upload, download, delete, presign: dotted path "
                             "of the item where the result goes."},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                          "default": DEFAULT_TIMEOUT_S,
                          "description": "Connecting, and each read of an answer."},
        },
        "required": ["operation", "bucket"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "download")
        return [
            f"{name} is required when operation is {operation}"
            for name in _REQUIRED.get(operation, ())
            if parameters.get(name) in (None, "")
        ]

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        session: _Session | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal session
            operation = params.text("operation", index)
            if session is None:
                data = await ctx.credential("s3")
                session = _Session(ctx.resolve_host, data, params.number("timeout_s", index))
            return await _OPERATIONS[operation](ctx, session, params, item, index)

        return await amap_items(ctx, apply)


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


def _where(data: Mapping[str, Any]) -> str:
    """The store, as a message names it: the endpoint's host, or AWS and the region."""
    endpoint = data.get("endpoint_url")
    if endpoint:
        parts = urlsplit(str(endpoint))
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return f"AWS S3 ({data.get('region') or 'us-east-1'})"


class _Session:
    """The clients of one activation: one that makes requests (to the vetted address),
    one that only signs URLs (against the endpoint as named). Both built on first use."""

    def __init__(self, resolve: Resolve, data: Mapping[str, Any], timeout_s: float) -> None:
        self._resolve = resolve
        self._data = data
        self._timeout_s = timeout_s
        self._client: S3Client | None = None
        self._signer: S3Client | None = None

    async def client(self) -> S3Client:
        if self._client is None:
            endpoint = await self._vetted_endpoint()
            self._client = await _call("connect", "", "", self._build, endpoint)
        return self._client

    async def signer(self) -> S3Client:
        if self._signer is None:
            endpoint = self._data.get("endpoint_url") or None
            self._signer = await _call("presign", "", "", self._build, endpoint)
        return self._signer

    async def _vetted_endpoint(self) -> str | None:
        raw = self._data.get("endpoint_url")
        if not raw:
            return None
        parts = urlsplit(str(raw))
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise NodeError("s3: the credential's endpoint_url must be an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await self._resolve(parts.hostname, port)
        if parts.scheme == "https":
            return str(raw)
        address = addresses[0]
        host = f"[{address}]" if ":" in address else address
        return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", ""))

    def _build(self, endpoint: str | None) -> S3Client:
        region = str(self._data.get("region") or "us-east-1")
        if not _REGION.fullmatch(region):
            raise NodeError(f"s3: region {region[:40]!r} is not a region name (e.g. eu-west-1)")
        custom = endpoint is not None
        config = Config(
            connect_timeout=self._timeout_s, read_timeout=self._timeout_s,
            retries={"total_max_attempts": 1},
            # Truthy, so botocore does not fall back to the environment's proxies.
            proxies={"http": "", "https": ""},
            # botocore >= 1.31 has it; botocore-stubs does not declare it yet.
            ignore_configured_endpoint_urls=True,  # type: ignore[call-arg]
            signature_version="s3v4",
            # As blobs/s3.py: S3-compatible servers often lack virtual-host buckets and
            # reject the checksum headers boto3 >= 1.36 sends by default.
            s3={"addressing_style": "path"} if custom else None,
            request_checksum_calculation="when_required" if custom else None,
            response_checksum_validation="when_required" if custom else None,
        )  # fmt: skip
        session = boto3.session.Session(
            aws_access_key_id=str(self._data["access_key_id"]),
            aws_secret_access_key=str(self._data["secret_access_key"]),
            region_name=region,
        )
        return session.client("s3", endpoint_url=endpoint, config=config)


async def _call(
    operation: str,
    bucket: str,
    key: str,
    function: Callable[_P, _T],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _T:
    """One boto3 call in a thread, its failures as node errors naming what was asked."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except ClientError as error:
        raise _client_error(operation, bucket, key, error) from None
    except (ConnectTimeoutError, ReadTimeoutError):
        raise NodeError(f"s3 {operation}: timed out", retryable=True) from None
    except (EndpointConnectionError, ConnectionClosedError):
        raise NodeError(f"s3 {operation}: cannot connect to the store", retryable=True) from None
    except ParamValidationError as error:
        raise NodeError(f"s3 {operation}: {str(error)[:300]}") from None
    except BotoCoreError as error:
        raise NodeError(f"s3 {operation}: {type(error).__name__}: {str(error)[:200]}") from None


def _client_error(operation: str, bucket: str, key: str, error: ClientError) -> NodeError:
    answer: Mapping[str, Any] = error.response
    code = str(answer.get("Error", {}).get("Code") or "")
    message = str(answer.get("Error", {}).get("Message") or "")[:200]
    meta = answer.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode") or 0)
    what = f"s3 {operation}"
    target = f"{bucket}/{key}" if key else bucket
    if code in _THROTTLED or status == 429:
        header = meta.get("HTTPHeaders", {}).get("retry-after")
        retry_after = float(header) if header and header.isdigit() else SLOWDOWN_RETRY_AFTER_S
        return NodeError(f"{what}: the store asks to slow down ({code or status})",
                         retryable=True, retry_after_s=retry_after)  # fmt: skip
    if code == "NoSuchBucket":
        return NodeError(f"{what}: there is no bucket {bucket!r}")
    if code in _MISSING_KEY and key:
        return NodeError(f"{what}: there is no object {key!r} in bucket {bucket!r}")
    if code in _DENIED:
        return NodeError(f"{what}: access denied to {target} (the credential's keys may not "
                         "do this)")  # fmt: skip
    if code in _BAD_KEYS:
        return NodeError(f"{what}: {_BAD_KEYS[code]} ({code})")
    return NodeError(f"{what} on {target}: {code or status} {message}".rstrip(),
                     retryable=status >= 500)  # fmt: skip


def _result(item: Item, index: int, params: Params, value: JsonObject) -> Item:
    json = dict(item.json)
    set_path(json, params.text("output_field", index), value)
    return Item(json=json, paired=(Pair(0, index),), binary=item.binary)


async def _body(
    ctx: NodeContext, params: Params, item: Item, index: int
) -> tuple[bytes, str | None]:
    """What upload sends: `content` (text, else JSON), or the item's binary; its type."""
    content = params.get("content", index)
    if content is not None:
        if isinstance(content, str):
            return content.encode(), "text/plain; charset=utf-8"
        return canonical_json(content).encode(), "application/json"
    name = params.text("binary_property", index)
    raw = (item.binary or {}).get(name)
    if raw is None:
        have = ", ".join(sorted(item.binary or {})) or "none"
        raise NodeError(f"s3 upload: the item has no binary {name!r} (it has: {have}) and "
                        "no content is set", item_index=index)  # fmt: skip
    ref = BinaryRef.from_json(raw)
    return await ctx.blobs.get(ref), ref.mime_type


async def _upload(
    ctx: NodeContext, session: _Session, params: Params, item: Item, index: int
) -> Sequence[Item]:
    bucket, key = params.text("bucket", index), params.text("key", index)
    data, mime_type = await _body(ctx, params, item, index)
    content_type = params.optional_text("content_type", index) or mime_type
    metadata = {str(k): str(v) for k, v in params.mapping("metadata", index).items()}
    client = await session.client()
    put = functools.partial(client.put_object, Bucket=bucket, Key=key, Body=data,
                            Metadata=metadata, ContentType=content_type or "")  # fmt: skip
    answer = await _call("upload", bucket, key, put)
    return [_result(item, index, params, {
        "bucket": bucket, "key": key, "size": len(data), "etag": answer.get("ETag", "").strip('"'),
        "version_id": answer.get("VersionId"),
    })]  # fmt: skip


async def _download(
    ctx: NodeContext, session: _Session, params: Params, item: Item, index: int
) -> Sequence[Item]:
    bucket, key = params.text("bucket", index), params.text("key", index)
    client = await session.client()
    answer = await _call("download", bucket, key, client.get_object, Bucket=bucket, Key=key)
    body = answer["Body"]
    try:
        size = int(answer.get("ContentLength") or 0)
        if size > MAX_DOWNLOAD_BYTES:
            raise NodeError(f"s3 download: {key!r} is {size} bytes, more than the "
                            f"{MAX_DOWNLOAD_BYTES} a binary may hold",
                            item_index=index)  # fmt: skip
        data = await _call("download", bucket, key, body.read, MAX_DOWNLOAD_BYTES + 1)
    finally:
        body.close()
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise NodeError(f"s3 download: {key!r} is more than {MAX_DOWNLOAD_BYTES} bytes",
                        item_index=index)  # fmt: skip
    mime_type = str(answer.get("ContentType") or "application/octet-stream")
    ref = await ctx.blobs.put(data, mime_type=mime_type, file_name=posixpath.basename(key) or key)
    modified = answer.get("LastModified")
    json = dict(item.json)
    set_path(json, params.text("output_field", index), {
        "bucket": bucket, "key": key, "size": len(data), "content_type": mime_type,
        "etag": str(answer.get("ETag", "")).strip('"'),
        "last_modified": modified.isoformat() if modified else None,
        "metadata": dict(answer.get("Metadata") or {}),
    })  # fmt: skip
    binary = {**(item.binary or {}), params.text("binary_property", index): ref.to_json()}
    return [Item(json=json, paired=(Pair(0, index),), binary=binary)]


async def _list(
    ctx: NodeContext, session: _Session, params: Params, item: Item, index: int
) -> Sequence[Item]:
    bucket = params.text("bucket", index)
    prefix = params.optional_text("prefix", index) or ""
    # Params.get would turn an explicit null into the default; null means every object.
    explicit_all = ctx.param("limit", index, DEFAULT_LIMIT) is None
    limit = None if explicit_all else params.integer("limit", index)
    client = await session.client()
    found: list[Item] = []
    token: str | None = None
    while limit is None or len(found) < limit:
        wanted = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(found))
        if token is None:
            page = functools.partial(client.list_objects_v2, Bucket=bucket, Prefix=prefix,
                                     MaxKeys=wanted)  # fmt: skip
        else:
            page = functools.partial(client.list_objects_v2, Bucket=bucket, Prefix=prefix,
                                     MaxKeys=wanted, ContinuationToken=token)  # fmt: skip
        answer = await _call("list", bucket, "", page)
        for entry in answer.get("Contents", []):
            modified = entry.get("LastModified")
            found.append(Item(json={
                "key": entry.get("Key"), "size": entry.get("Size"),
                "etag": str(entry.get("ETag", "")).strip('"'),
                "last_modified": modified.isoformat() if modified else None,
                "storage_class": entry.get("StorageClass"),
            }, paired=(Pair(0, index),)))  # fmt: skip
        token = answer.get("NextContinuationToken")
        if not answer.get("IsTruncated") or not token:
            break
    return found[:limit] if limit is not None else found


async def _delete(
    ctx: NodeContext, session: _Session, params: Params, item: Item, index: int
) -> Sequence[Item]:
    bucket, key = params.text("bucket", index), params.text("key", index)
    client = await session.client()
    await _call("delete", bucket, key, client.delete_object, Bucket=bucket, Key=key)
    return [_result(item, index, params, {"bucket": bucket, "key": key, "deleted": True})]


async def _presign(
    ctx: NodeContext, session: _Session, params: Params, item: Item, index: int
) -> Sequence[Item]:
    bucket, key = params.text("bucket", index), params.text("key", index)
    method = params.text("method", index)
    expires_s = params.integer("expires_s", index)
    arguments: dict[str, str] = {"Bucket": bucket, "Key": key}
    content_type = params.optional_text("content_type", index)
    if method == "PUT" and content_type:
        arguments["ContentType"] = content_type
    signer = await session.signer()
    action = "put_object" if method == "PUT" else "get_object"
    sign = functools.partial(signer.generate_presigned_url, action, Params=arguments,
                             ExpiresIn=expires_s, HttpMethod=method)  # fmt: skip
    url = await _call("presign", bucket, key, sign)
    expires_at = (ctx.now() + timedelta(seconds=expires_s)).isoformat()
    return [_result(item, index, params, {
        "bucket": bucket, "key": key, "method": method, "url": url, "expires_at": expires_at,
    })]  # fmt: skip


_Operation = Callable[[NodeContext, _Session, Params, Item, int], Awaitable[Sequence[Item]]]
_OPERATIONS: Final[Mapping[str, _Operation]] = {
    "upload": _upload, "download": _download, "list": _list, "delete": _delete,
    "presign": _presign,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (S3,)
CREDENTIALS: tuple[CredentialType, ...] = (S3_CREDENTIAL,)
