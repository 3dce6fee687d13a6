"""Blob URLs: what `parse_blob_url` accepts and refuses, and how settings use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from linkflow.blobs import BlobLocation, parse_blob_url
from linkflow.config import ConfigError, load_settings


class TestParseBlobUrl:
    @pytest.mark.parametrize(
        ("url", "bucket", "prefix"),
        [
            ("s3://linkflow-blobs", "linkflow-blobs", ""),
            ("s3://linkflow-blobs/", "linkflow-blobs", ""),
            ("s3://linkflow-blobs/prod", "linkflow-blobs", "prod"),
            ("s3://linkflow-blobs/prod/blobs/", "linkflow-blobs", "prod/blobs"),
            ("S3://my.bucket-1/a", "my.bucket-1", "a"),
        ],
    )
    def test_s3_urls_give_bucket_and_prefix(self, url: str, bucket: str, prefix: str) -> None:
        """The host is the bucket; the path, without surrounding slashes, the prefix."""
        assert parse_blob_url(url) == BlobLocation(scheme="s3", bucket=bucket, prefix=prefix)

    @pytest.mark.parametrize(
        ("url", "path"),
        [
            ("file:///var/lib/linkflow/blobs", "/var/lib/linkflow/blobs"),
            ("file://localhost/srv/blobs", "/srv/blobs"),
            ("file:///srv/with%20space", "/srv/with space"),
            ("/srv/blobs", "/srv/blobs"),
            ("relative/blobs", "relative/blobs"),
        ],
    )
    def test_file_urls_and_plain_paths_give_a_path(self, url: str, path: str) -> None:
        """`file:///abs` and a plain path both name a directory."""
        assert parse_blob_url(url) == BlobLocation(scheme="file", path=Path(path))

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("", "empty blob URL"),
            ("   ", "empty blob URL"),
            ("http://example.com/blobs", "unsupported blob URL scheme 'http'"),
            ("gs://bucket/prefix", "unsupported blob URL scheme 'gs'"),
            ("s3://", "no bucket"),
            ("s3:///prefix", "no bucket"),
            ("s3://Upper-Case", "invalid S3 bucket name"),
            ("s3://ab", "invalid S3 bucket name"),
            ("s3://under_score", "invalid S3 bucket name"),
            ("s3://a..b", "invalid S3 bucket name"),
            ("s3://key:secret@bucket/p", "credentials and endpoint are separate"),
            ("s3://bucket:9000/p", "credentials and endpoint are separate"),
            ("s3://bucket/p?region=x", "no query or fragment"),
            ("s3://bucket/p#x", "no query or fragment"),
            ("s3://bucket/a//b", "empty segment"),
            ("file://relative/path", "must be absolute"),
            ("file:relative", "must be absolute"),
            ("file:///srv/blobs?x=1", "no query or fragment"),
        ],
    )
    def test_anything_else_is_a_value_error(self, url: str, message: str) -> None:
        """Malformed URLs fail with a message saying what is wrong."""
        with pytest.raises(ValueError, match=message):
            parse_blob_url(url)

    def test_a_location_is_frozen(self) -> None:
        """A parsed location cannot be changed after the fact."""
        location = parse_blob_url("s3://linkflow-blobs/prod")
        with pytest.raises(AttributeError):
            location.bucket = "other"  # type: ignore[misc]

    def test_a_secret_in_the_url_is_not_echoed(self) -> None:
        """The refusal of credentials in a URL does not repeat them."""
        with pytest.raises(ValueError, match="separate") as raised:
            parse_blob_url("s3://AKIAEXAMPLE:hunter2@bucket/p")
        assert "hunter2" not in str(raised.value)


class TestImportCost:
    def test_importing_the_blob_package_does_not_import_boto3(self) -> None:
        """boto3 loads only when an S3 store is built, so processes without S3 skip it."""
        check = "import sys, linkflow.blobs; sys.exit('boto3' in sys.modules)"
        assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0


@pytest.fixture
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LINKFLOW_* from the outer environment, and no stray .env: start from nothing."""
    import os

    for name in [n for n in os.environ if n.startswith("LINKFLOW_")]:  # noqa: TID251
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("_clean_env")
class TestBlobSettings:
    def test_unset_means_the_filesystem_in_the_data_dir(self) -> None:
        """With nothing set there is no blob URL, no endpoint and no keys."""
        settings = load_settings(settle_keys=False)
        assert settings.blob_url is None
        assert settings.blob_s3_endpoint is None
        assert settings.blob_s3_region == "us-east-1"
        assert settings.blob_s3_access_key_id is None
        assert settings.blob_s3_secret_access_key is None

    def test_s3_settings_are_read_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every blob setting has its LINKFLOW_BLOB_* variable; the secret stays hidden."""
        monkeypatch.setenv("LINKFLOW_BLOB_URL", "s3://linkflow-blobs/prod")
        monkeypatch.setenv("LINKFLOW_BLOB_S3_ENDPOINT", "http://minio:9000")
        monkeypatch.setenv("LINKFLOW_BLOB_S3_REGION", "eu-central-1")
        monkeypatch.setenv("LINKFLOW_BLOB_S3_ACCESS_KEY_ID", "AKIAEXAMPLE")
        monkeypatch.setenv("LINKFLOW_BLOB_S3_SECRET_ACCESS_KEY", "hunter2")
        settings = load_settings(settle_keys=False)
        assert settings.blob_url == "s3://linkflow-blobs/prod"
        assert settings.blob_s3_endpoint == "http://minio:9000"
        assert settings.blob_s3_region == "eu-central-1"
        assert settings.blob_s3_access_key_id == "AKIAEXAMPLE"
        assert settings.blob_s3_secret_access_key is not None
        assert settings.blob_s3_secret_access_key.get_secret_value() == "hunter2"
        assert "hunter2" not in repr(settings)

    @pytest.mark.parametrize(
        "url", ["ftp://host/blobs", "s3://", "s3://Bad_Bucket", "file://host/x"]
    )
    def test_a_malformed_blob_url_stops_start_up_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        """A bad LINKFLOW_BLOB_URL is one ConfigError line that starts with its name."""
        monkeypatch.setenv("LINKFLOW_BLOB_URL", url)
        with pytest.raises(ConfigError, match=r"^LINKFLOW_BLOB_URL: "):
            load_settings(settle_keys=False)

    def test_an_endpoint_must_be_http(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An endpoint without http:// or https:// is refused, naming the variable."""
        monkeypatch.setenv("LINKFLOW_BLOB_S3_ENDPOINT", "minio:9000")
        with pytest.raises(ConfigError, match=r"^LINKFLOW_BLOB_S3_ENDPOINT: "):
            load_settings(settle_keys=False)
