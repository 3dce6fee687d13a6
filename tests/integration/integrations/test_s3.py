"""The s3 node and credential against a real S3 API (moto's server on loopback).

moto answers every operation as S3 does but never throttles and accepts any keys, so
the refusals S3 gives (SlowDown, AccessDenied, an unknown access key) come from a
loopback server that answers with S3's own XML error documents.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest

from linkflow.nodes.integrations.s3 import S3, S3_CREDENTIAL
from linkflow.nodes.sdk import NodeError
from linkflow.nodes.testing import FakeContext, MemoryBlobStore, items, per_item, run_node
from linkflow.security.ssrf import AddressPolicy, HostGuard
from tests._http_server import Reply, TestServer, serve

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

SECRET = "moto-secret-access-key-value"
_buckets = itertools.count(1)


@pytest.fixture(scope="module")
def admin(s3_endpoint: str) -> S3Client:
    """A plain boto3 client, to create buckets and look inside them."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key=SECRET)  # fmt: skip


@pytest.fixture
def bucket(admin: S3Client) -> str:
    name = f"linkflow-node-{next(_buckets)}"
    admin.create_bucket(Bucket=name)
    return name


def credential(endpoint: str, **overrides: Any) -> dict[str, Any]:
    return {"type": "s3", "access_key_id": "testing", "secret_access_key": SECRET,
            "region": "us-east-1", "endpoint_url": endpoint, **overrides}  # fmt: skip


async def run(
    endpoint: str, parameters: dict[str, Any], *inputs: dict[str, Any], **ctx: Any
) -> list[Any]:
    context = FakeContext(
        items=ctx.pop("items", None) or items(*(inputs or ({},))),
        parameters=parameters,
        credentials={"s3": ctx.pop("cred", credential(endpoint))},
        **ctx,
    )
    result = await run_node(S3, context)
    return list(result.outputs["main"])


class TestObjects:
    async def test_a_binary_goes_up_with_its_type_and_comes_back_as_a_binary(
        self, s3_endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """upload sends the item's binary with its Content-Type and metadata; download
        makes a binary of the object again, named after the key."""
        blobs = MemoryBlobStore()
        report = await blobs.put(b"a,b\n1,2\n", mime_type="text/csv", file_name="r.csv")
        up = await run(
            s3_endpoint,
            {"operation": "upload", "bucket": bucket, "key": "reports/jan.csv",
             "metadata": {"team": "ops"}},
            items=items({"n": 1}, binary={"data": report.to_json()}), blobs=blobs,
        )  # fmt: skip
        assert up[0].json["n"] == 1
        assert up[0].json["s3"]["size"] == 8
        stored = admin.get_object(Bucket=bucket, Key="reports/jan.csv")
        assert stored["Body"].read() == b"a,b\n1,2\n"
        assert stored["ContentType"] == "text/csv"
        assert stored["Metadata"] == {"team": "ops"}
        assert up[0].json["s3"]["etag"] == stored["ETag"].strip('"')

        down = await run(
            s3_endpoint,
            {"operation": "download", "bucket": bucket, "key": "reports/jan.csv",
             "binary_property": "file"}, blobs=blobs,
        )  # fmt: skip
        (item,) = down
        assert item.binary is not None
        ref = item.binary["file"]
        assert (ref["mime_type"], ref["file_name"], ref["size"]) == ("text/csv", "jan.csv", 8)
        assert await blobs.get(ref["ref"]) == b"a,b\n1,2\n"
        assert item.json["s3"]["metadata"] == {"team": "ops"}

    async def test_content_uploads_text_as_it_is_and_other_values_as_json(
        self, s3_endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """Per item: a string is text/plain, an object application/json."""
        await run(
            s3_endpoint,
            {"operation": "upload", "bucket": bucket,
             "key": per_item(lambda item, _: item.json["k"] if item else None),
             "content": per_item(lambda item, _: item.json["v"] if item else None)},
            {"k": "a.txt", "v": "hello"}, {"k": "b.json", "v": {"n": 1}},
        )  # fmt: skip
        a = admin.get_object(Bucket=bucket, Key="a.txt")
        b = admin.get_object(Bucket=bucket, Key="b.json")
        assert (a["Body"].read(), a["ContentType"]) == (b"hello", "text/plain; charset=utf-8")
        assert (b["Body"].read(), b["ContentType"]) == (b'{"n":1}', "application/json")

    async def test_list_follows_continuation_tokens_up_to_the_limit(
        self, s3_endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """S3 pages 1000 keys at a time: 1003 keys under a prefix all come out (null
        limit), a limit of 1001 stops after the second page's first key, and other
        prefixes are left out."""
        keys = [f"logs/{n:04d}" for n in range(1003)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: admin.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))
        admin.put_object(Bucket=bucket, Key="other/1", Body=b"y")
        everything = await run(
            s3_endpoint, {"operation": "list", "bucket": bucket, "prefix": "logs/", "limit": None}
        )
        assert [item.json["key"] for item in everything] == keys
        assert everything[0].json["size"] == 1
        some = await run(
            s3_endpoint, {"operation": "list", "bucket": bucket, "prefix": "logs/", "limit": 1001}
        )
        assert [item.json["key"] for item in some] == keys[:1001]

    async def test_delete_removes_the_object_and_a_download_then_names_the_key(
        self, s3_endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """NoSuchKey and NoSuchBucket are node errors naming the operation, not retried."""
        admin.put_object(Bucket=bucket, Key="gone.txt", Body=b"bye")
        out = await run(s3_endpoint, {"operation": "delete", "bucket": bucket, "key": "gone.txt"})
        assert out[0].json["s3"] == {"bucket": bucket, "key": "gone.txt", "deleted": True}
        assert "Contents" not in admin.list_objects_v2(Bucket=bucket)
        with pytest.raises(NodeError) as missing:
            await run(s3_endpoint, {"operation": "download", "bucket": bucket, "key": "gone.txt"})
        assert missing.value.message == (
            f"s3 download: there is no object 'gone.txt' in bucket '{bucket}'"
        )
        assert missing.value.retryable is False
        with pytest.raises(NodeError, match="s3 list: there is no bucket 'no-such-bucket'"):
            await run(s3_endpoint, {"operation": "list", "bucket": "no-such-bucket"})

    async def test_presigned_urls_let_a_plain_http_client_get_and_put(
        self, s3_endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """A PUT URL uploads without keys, a GET URL reads it back; both name the endpoint
        as the credential does and expire when the item says."""
        base = {"operation": "presign", "bucket": bucket, "key": "shared/note.txt"}
        (put,) = await run(s3_endpoint, {**base, "method": "PUT", "expires_s": 600})
        url = put.json["s3"]["url"]
        assert url.startswith(f"{s3_endpoint}/{bucket}/shared/note.txt?")
        assert put.json["s3"]["expires_at"] == "2026-01-01T12:10:00+00:00"
        assert SECRET not in url
        async with httpx.AsyncClient() as client:
            assert (await client.put(url, content=b"via url")).status_code == 200
            assert admin.get_object(Bucket=bucket, Key="shared/note.txt")["Body"].read() == (
                b"via url"
            )
            (get,) = await run(s3_endpoint, base)
            answer = await client.get(get.json["s3"]["url"])
        assert (answer.status_code, answer.content) == (200, b"via url")


class TestGuard:
    async def test_the_endpoint_host_passes_the_guard_before_any_request(
        self, s3_endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """The production policy refuses the loopback endpoint (nothing is written);
        allowing loopback, the name `localhost` is resolved once and used by address."""
        params = {"operation": "upload", "bucket": bucket, "key": "k", "content": "v"}
        with pytest.raises(NodeError, match=r"127\.0\.0\.1 is not allowed \(loopback\)"):
            await run(s3_endpoint, params, addresses=HostGuard(AddressPolicy()))
        assert "Contents" not in admin.list_objects_v2(Bucket=bucket)
        loopback = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),
                                                   ipaddress.ip_network("::1/128")))  # fmt: skip
        by_name = s3_endpoint.replace("127.0.0.1", "localhost")
        await run(by_name, params, addresses=HostGuard(loopback))
        assert admin.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"

    async def test_a_missing_binary_and_a_missing_key_are_refused(self, s3_endpoint: str) -> None:
        """Before any request: the key is required at save time, the binary at run time."""
        with pytest.raises(ValueError, match="key is required when operation is upload"):
            await run(s3_endpoint, {"operation": "upload", "bucket": "abc"})
        with pytest.raises(NodeError, match=r"s3 upload: the item has no binary 'data' \(it "
                           r"has: none\) and no content is set"):  # fmt: skip
            await run(s3_endpoint, {"operation": "upload", "bucket": "abc", "key": "k"})


def _s3_error(status: int, code: str, message: str, **headers: str) -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>4442587FB7D0A2F9</RequestId><HostId>h</HostId></Error>"
    )
    return Reply(status, body, headers, "application/xml")


@pytest.fixture
def refusing() -> Iterator[TestServer]:
    """S3's refusals, as S3 sends them: 503 SlowDown on one bucket, 403 AccessDenied on
    another, and an unknown access key for ListBuckets."""
    routes = {
        "/busy/k": lambda _: _s3_error(
            503, "SlowDown", "Please reduce your request rate.", **{"Retry-After": "3"}
        ),
        "/busy": lambda _: _s3_error(503, "SlowDown", "Please reduce your request rate."),
        "/locked/k": lambda _: _s3_error(403, "AccessDenied", "Access Denied"),
        "/": lambda _: _s3_error(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ),
    }
    with serve(routes) as server:
        yield server


class TestRefusals:
    async def test_slow_down_is_retryable_after_the_stores_delay(
        self, refusing: TestServer
    ) -> None:
        """503 SlowDown: retryable, after Retry-After when sent, else a second; one request
        each (botocore's own retries are off, the node's policy decides)."""
        endpoint = refusing.url("").rstrip("/")
        with pytest.raises(NodeError) as slow:
            await run(endpoint, {"operation": "download", "bucket": "busy", "key": "k"})
        assert slow.value.message == "s3 download: the store asks to slow down (SlowDown)"
        assert (slow.value.retryable, slow.value.retry_after_s) == (True, 3.0)
        with pytest.raises(NodeError) as listing:
            await run(endpoint, {"operation": "list", "bucket": "busy"})
        assert (listing.value.retryable, listing.value.retry_after_s) == (True, 1.0)
        assert [r.path for r in refusing.requests] == ["/busy/k", "/busy"]
        request = refusing.requests[0]
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert SECRET not in str(request.headers)

    async def test_access_denied_names_the_object_and_is_final(self, refusing: TestServer) -> None:
        endpoint = refusing.url("").rstrip("/")
        with pytest.raises(NodeError) as denied:
            await run(endpoint, {"operation": "upload", "bucket": "locked", "key": "k",
                                 "content": "x"})  # fmt: skip
        assert denied.value.message == (
            "s3 upload: access denied to locked/k (the credential's keys may not do this)"
        )
        assert denied.value.retryable is False


class TestCredentialCheck:
    async def test_the_check_lists_buckets_and_names_refused_keys(
        self, s3_endpoint: str, bucket: str, refusing: TestServer
    ) -> None:
        """moto lists the buckets; an unknown key id fails the test without the secret."""
        assert S3_CREDENTIAL.check is not None
        ok = await S3_CREDENTIAL.check(_CheckContext(), credential(s3_endpoint))
        port = s3_endpoint.rsplit(":", 1)[1]
        assert ok.startswith("listed ")
        assert ok.endswith(f" bucket(s) at 127.0.0.1:{port}")
        with pytest.raises(NodeError) as refused:
            await S3_CREDENTIAL.check(_CheckContext(), credential(refusing.url("").rstrip("/")))
        assert refused.value.message == (
            f"s3 test against 127.0.0.1:{refusing.port}: the access key id is not known to "
            "the service (InvalidAccessKeyId)"
        )
        assert SECRET not in refused.value.message


class _CheckContext:
    timeout_s = 5.0

    def http(self) -> Any:
        raise AssertionError("the s3 check makes no httpx request")

    async def resolve_host(self, host: str, port: int) -> list[str]:
        return await HostGuard(AddressPolicy(allow_private=True)).resolve(host, port, timeout_s=5)
