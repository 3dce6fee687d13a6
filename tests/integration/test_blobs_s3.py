"""The S3 blob store against a real S3 API (moto's server on a local port).

The store is reached only over HTTP, as a worker on another machine would reach
it; the bucket is inspected with plain boto3.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from linkflow.blobs import (
    BlobStoreUnavailable,
    FilesystemBlobStore,
    InvalidBlobRef,
    S3BlobStore,
)
from linkflow.nodes.sdk import BinaryRef

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

REGION = "us-east-1"
KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}
# Short enough to keep the failure tests quick, long enough for a loaded CI machine.
FAST = {"connect_timeout": timedelta(seconds=0.5), "read_timeout": timedelta(seconds=0.5)}
_buckets = itertools.count(1)


@pytest.fixture(scope="module")
def endpoint(s3_endpoint: str) -> str:
    return s3_endpoint


@pytest.fixture(scope="module")
def admin(endpoint: str) -> S3Client:
    """A plain boto3 client, to create buckets and look inside them."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEYS["access_key_id"],
        aws_secret_access_key=KEYS["secret_access_key"],
    )


@pytest.fixture
def bucket(admin: S3Client) -> str:
    """A fresh, empty bucket for each test."""
    name = f"linkflow-blobs-{next(_buckets)}"
    admin.create_bucket(Bucket=name)
    return name


def store_for(endpoint: str, bucket: str, prefix: str = "") -> S3BlobStore:
    return S3BlobStore(bucket, prefix=prefix, endpoint_url=endpoint, region=REGION, **KEYS)


def keys_in(admin: S3Client, bucket: str) -> list[str]:
    listing = admin.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []) if "Key" in item)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TestRoundTrip:
    async def test_binary_data_comes_back_byte_for_byte(self, endpoint: str, bucket: str) -> None:
        """Every byte value survives put and get; the ref carries size, type and name."""
        store = store_for(endpoint, bucket)
        data = bytes(range(256)) * 1000
        stored = await store.put(data, mime_type="image/png", file_name="pixels.png")
        assert stored == BinaryRef(
            ref=f"sha256:{digest(data)}", size=len(data), mime_type="image/png",
            file_name="pixels.png",
        )  # fmt: skip
        assert await store.get(stored) == data
        assert await store.get(stored.ref) == data

    async def test_an_empty_blob_round_trips(self, endpoint: str, bucket: str) -> None:
        """Zero bytes are a blob like any other."""
        store = store_for(endpoint, bucket)
        stored = await store.put(b"")
        assert await store.get(stored) == b""

    async def test_exists_tells_stored_from_unknown(self, endpoint: str, bucket: str) -> None:
        """`exists` is True for a stored ref and False for another digest."""
        store = store_for(endpoint, bucket)
        stored = await store.put(b"present")
        assert await store.exists(stored.ref)
        assert not await store.exists(f"sha256:{digest(b'absent')}")


class TestContentAddressing:
    async def test_same_bytes_twice_give_one_ref_and_one_object(
        self, endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """Storing the same content again returns the same ref and adds no object."""
        store = store_for(endpoint, bucket)
        first = await store.put(b"twice", file_name="a.txt")
        second = await store.put(b"twice", file_name="b.txt")
        assert first.ref == second.ref
        hexdigest = digest(b"twice")
        assert keys_in(admin, bucket) == [f"{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"]

    async def test_an_existing_object_is_not_uploaded_again(
        self, endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """The second put finds the object and leaves it alone: bytes planted under the key
        after the first put are still there (and a read refuses them as corrupt)."""
        store = store_for(endpoint, bucket)
        stored = await store.put(b"original")
        [key] = keys_in(admin, bucket)
        admin.put_object(Bucket=bucket, Key=key, Body=b"planted")
        await store.put(b"original")
        assert admin.get_object(Bucket=bucket, Key=key)["Body"].read() == b"planted"
        with pytest.raises(InvalidBlobRef, match="corrupt"):
            await store.get(stored)

    async def test_another_instance_reads_what_one_stored(self, endpoint: str, bucket: str) -> None:
        """A second store with the same settings (another machine) reads the ref."""
        writer = store_for(endpoint, bucket, prefix="shared")
        reader = store_for(endpoint, bucket, prefix="shared")
        stored = await writer.put(b"offloaded node output", mime_type="application/json")
        assert await reader.get(stored.ref) == b"offloaded node output"

    async def test_filesystem_and_s3_give_the_same_ref(
        self, endpoint: str, bucket: str, tmp_path: Path
    ) -> None:
        """Refs are portable: the same bytes have the same ref in both stores."""
        data = b"portable \x00\xff"
        on_disk = await FilesystemBlobStore(tmp_path).put(data)
        in_bucket = await store_for(endpoint, bucket).put(data)
        assert on_disk.ref == in_bucket.ref
        assert await store_for(endpoint, bucket).get(on_disk.ref) == data


class TestBadRefs:
    @pytest.mark.parametrize(
        "ref",
        ["", "not-a-ref", "sha256:abc", f"sha256:{'A' * 64}", f"md5:{'0' * 64}",
         f"sha256:{'0' * 64}/../x"],
    )  # fmt: skip
    async def test_a_malformed_ref_is_invalid(self, endpoint: str, bucket: str, ref: str) -> None:
        """Anything but `sha256:<64 lowercase hex>` is refused before any request."""
        with pytest.raises(InvalidBlobRef, match="not a blob reference"):
            await store_for(endpoint, bucket).get(ref)

    async def test_an_unknown_digest_is_invalid(self, endpoint: str, bucket: str) -> None:
        """A well-formed ref that names no object raises InvalidBlobRef, not a botocore error."""
        with pytest.raises(InvalidBlobRef, match="no blob"):
            await store_for(endpoint, bucket).get(f"sha256:{digest(b'never stored')}")

    async def test_a_ref_stored_under_another_prefix_is_unknown(
        self, endpoint: str, bucket: str
    ) -> None:
        """Prefixes are separate namespaces in one bucket."""
        stored = await store_for(endpoint, bucket, prefix="one").put(b"scoped")
        with pytest.raises(InvalidBlobRef):
            await store_for(endpoint, bucket, prefix="two").get(stored)


class TestPrefix:
    async def test_objects_live_under_the_prefix(
        self, endpoint: str, bucket: str, admin: S3Client
    ) -> None:
        """Keys are `<prefix>/<2 hex>/<2 hex>/<digest>`; surrounding slashes are ignored."""
        store = store_for(endpoint, bucket, prefix="/tenants/acme/")
        await store.put(b"one")
        await store.put(b"two")
        expected = sorted(
            f"tenants/acme/{d[:2]}/{d[2:4]}/{d}" for d in (digest(b"one"), digest(b"two"))
        )
        assert keys_in(admin, bucket) == expected


class TestFailures:
    async def test_a_closed_port_fails_with_a_clear_error(self) -> None:
        """Nothing listening: BlobStoreUnavailable naming the bucket and endpoint, at once."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        endpoint = f"http://127.0.0.1:{port}"
        store = S3BlobStore(
            "nowhere", endpoint_url=endpoint, region=REGION, max_attempts=1, **FAST, **KEYS
        )
        async with asyncio.timeout(10):
            with pytest.raises(BlobStoreUnavailable, match=f"'nowhere' at {endpoint}"):
                await store.put(b"lost")

    async def test_a_silent_endpoint_times_out_instead_of_hanging(self) -> None:
        """A server that accepts connections but never answers: the read timeout ends
        every attempt, and the error says so."""
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)  # the kernel completes connects; nobody ever reads or answers
            port = silent.getsockname()[1]
            store = S3BlobStore(
                "mute", endpoint_url=f"http://127.0.0.1:{port}", region=REGION,
                max_attempts=2, **FAST, **KEYS,
            )  # fmt: skip
            started = time.monotonic()
            async with asyncio.timeout(15):
                with pytest.raises(BlobStoreUnavailable, match="timeout"):
                    await store.get(f"sha256:{digest(b'anything')}")
        # Two attempts of 0.5 s plus botocore's backoff between them (at most 1 s).
        assert time.monotonic() - started < 5

    async def test_a_missing_bucket_is_unavailable_not_an_invalid_ref(self, endpoint: str) -> None:
        """Writing to a bucket that does not exist is a store problem, reported as one."""
        with pytest.raises(BlobStoreUnavailable, match="NoSuchBucket"):
            await store_for(endpoint, "no-such-bucket").put(b"homeless")

    def test_half_a_key_pair_is_refused(self) -> None:
        """An access key id without its secret (or the reverse) is a ValueError up front."""
        with pytest.raises(ValueError, match="both"):
            S3BlobStore("b-u-c", access_key_id="only-the-id")
        with pytest.raises(ValueError, match="both"):
            S3BlobStore("b-u-c", secret_access_key="only-the-secret")
