"""`services.backups` on a real SQLite database: what an archive may hold, what a restore
reads from it, and the key ids it finds in sealed columns."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from linkflow.security.secretbox import SecretBox, key_id_for
from linkflow.services.backups import InvalidBackup, MissingKeys, create_backup, restore_backup
from linkflow.store import Database, User, migrate

KEY = bytes(range(32))
KEY_IDS = frozenset({key_id_for(KEY)})


@pytest.fixture
async def database(sqlite_template: Path, tmp_path: Path) -> Path:
    """A migrated database with one user whose TOTP secret is sealed with `KEY`."""
    path = tmp_path / "data" / "linkflow.db"
    path.parent.mkdir()
    shutil.copyfile(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    try:
        async with db.transaction() as session:
            sealed = SecretBox.from_key(KEY).seal(b"totp")
            session.add(User(email="ada@example.com", name="Ada", mfa_secret_encrypted=sealed))
    finally:
        await db.dispose()
    return path


def test_a_backup_names_the_key_ids_its_sealed_values_need(tmp_path: Path, database: Path) -> None:
    """The manifest lists the id of the key that sealed a value (never the key), and a
    restore whose keys lack it is refused naming it."""
    backup = tmp_path / "b.tar.gz"
    manifest = create_backup(backup, database=database, blobs=None)
    assert manifest.counts["users"] == 1
    assert manifest.key_ids == {key_id_for(KEY)}
    with tarfile.open(backup) as archive:
        handle = archive.extractfile("manifest.json")
        assert handle is not None
        assert KEY.hex() not in handle.read().decode()
    with pytest.raises(MissingKeys, match=key_id_for(KEY)):
        restore_backup(backup, database=tmp_path / "new" / "linkflow.db", blobs=None,
                       known_revision=migrate.known, key_ids=frozenset({"00000000"}))  # fmt: skip
    assert not (tmp_path / "new" / "linkflow.db").exists()


def test_an_archive_member_outside_the_backup_layout_is_refused_and_nothing_is_written(
    tmp_path: Path, database: Path
) -> None:
    """A crafted archive (a good manifest and database, then `../escape`) is refused as
    not a LinkFlow backup; neither the escaping file nor a database is written."""
    good = tmp_path / "good.tar.gz"
    create_backup(good, database=database, blobs=tmp_path / "blobs")
    crafted = tmp_path / "crafted.tar.gz"
    with tarfile.open(good) as original, tarfile.open(crafted, "w:gz") as copy:
        for member in original:
            data = original.extractfile(member)
            assert data is not None
            copy.addfile(member, io.BytesIO(data.read()))
        evil = tarfile.TarInfo("../escape")
        evil.size = 4
        copy.addfile(evil, io.BytesIO(b"evil"))
    target = tmp_path / "restored" / "linkflow.db"
    with pytest.raises(InvalidBackup, match="which no LinkFlow backup has"):
        restore_backup(crafted, database=target, blobs=tmp_path / "restored" / "blobs",
                       known_revision=migrate.known, key_ids=KEY_IDS)  # fmt: skip
    assert not target.exists()
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "restored" / "escape").exists()
