"""`linkflow doctor` against real servers (PostgreSQL, Redis, an S3 API, an OTLP receiver),
against stopped ones, and on a fresh embedded data dir it must not create."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import boto3

from tests._otlp import receiver
from tests._services import PostgresServer, start_redis
from tests.e2e._serve import free_port

KEY = base64.b64encode(bytes(range(32))).decode()


def doctor(directory: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LINKFLOW_DATA_DIR": str(directory / "data"), **settings}
    return subprocess.run([sys.executable, "-m", "linkflow", "doctor"], env=env, cwd=directory,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def row(output: str, part: str) -> str:
    """The line of `part` in doctor's table."""
    return next(line for line in output.splitlines() if line.startswith(f"{part} "))


def test_every_part_answers_then_the_stopped_ones_are_named_and_the_exit_code_says_so(
    tmp_path: Path, pg_url: str, postgres_server: PostgresServer, s3_endpoint: str
) -> None:
    """PostgreSQL at head, Redis, a bucket and an OTLP receiver: every row ok, exit 0,
    no password shown. Redis stopped and PostgreSQL's port closed: those rows fail and
    the exit code is 1; the unreachable OTLP endpoint is a warning only."""
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing",
                 ).create_bucket(Bucket="doctor")  # fmt: skip
    redis = start_redis()
    settings = {
        "LINKFLOW_ENV": "production",
        "LINKFLOW_DATABASE_URL": pg_url,
        "LINKFLOW_SECRET_KEY": "s" * 40,
        "LINKFLOW_ENCRYPTION_KEY": KEY,
        "LINKFLOW_BLOB_URL": "s3://doctor/blobs",
        "LINKFLOW_BLOB_S3_ENDPOINT": s3_endpoint,
        "LINKFLOW_BLOB_S3_ACCESS_KEY_ID": "testing",
        "LINKFLOW_BLOB_S3_SECRET_ACCESS_KEY": "s3-secret-7f1e",
    }
    try:
        with receiver() as otlp:
            healthy = doctor(tmp_path, LINKFLOW_REDIS_URL=redis.url(),
                             LINKFLOW_OTLP_ENDPOINT=otlp.endpoint, **settings)  # fmt: skip
            assert otlp.exports  # it really asked
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        for part in ("database", "credentials", "redis", "blob store", "otlp", "secret key",
                     "encryption key"):  # fmt: skip
            assert " ok " in row(healthy.stdout, part), healthy.stdout
        assert str(postgres_server.port) in row(healthy.stdout, "database")
        assert "LINKFLOW_ENCRYPTION_KEY" in row(healthy.stdout, "encryption key")
        for secret in ("s" * 40, KEY, "s3-secret-7f1e"):
            assert secret not in healthy.stdout

        redis.stop()
        closed = f"postgresql://linkflow@127.0.0.1:{free_port()}/linkflow"
        nowhere = f"http://127.0.0.1:{free_port()}"
        down = doctor(tmp_path, **{**settings, "LINKFLOW_REDIS_URL": redis.url(),
                                   "LINKFLOW_DATABASE_URL": closed,
                                   "LINKFLOW_OTLP_ENDPOINT": nowhere})  # fmt: skip
    finally:
        redis.stop()
    assert down.returncode == 1, down.stdout + down.stderr
    assert " failed " in row(down.stdout, "redis")
    assert " failed " in row(down.stdout, "database")
    assert "connection refused" in row(down.stdout, "database")
    assert " warning " in row(down.stdout, "otlp")
    assert "redis" in down.stdout.splitlines()[-1]
    assert "Traceback" not in down.stdout + down.stderr


def test_a_fresh_embedded_data_dir_is_ready_to_start_and_left_uncreated(tmp_path: Path) -> None:
    """No configuration: the data dir, database and keys are made at first start, which
    doctor says, exit 0, and it creates none of them."""
    result = doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not there yet" in row(result.stdout, "database")
    assert "generated into the data dir" in row(result.stdout, "encryption key")
    assert "not set" in row(result.stdout, "redis")
    assert not (tmp_path / "data").exists()


def test_keys_that_do_not_open_the_stored_credentials_are_a_warning(tmp_path: Path) -> None:
    """A database holding a credential sealed with another key than the configured one:
    the credentials row warns, naming the key id; the exit code stays 0 (it starts)."""
    from tests.e2e._serve import Client, Serve, register

    data = tmp_path / "data"
    data.mkdir()
    server = Serve(data)
    server.start()
    try:
        client = Client(server)
        register(client)
        client.ok(
            "POST",
            "/api/v1/credentials",
            201,
            json={"name": "remote", "type": "bearer", "data": {"token": "t-1234"}},
        )
    finally:
        server.stop()
    (data / "encryption_key").write_text(base64.urlsafe_b64encode(os.urandom(32)).decode())
    result = doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " warning " in row(result.stdout, "credentials")
    assert "will not open" in row(result.stdout, "credentials")
