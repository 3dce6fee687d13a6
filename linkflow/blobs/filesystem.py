"""A content-addressed blob store on the local file system.

A blob's ref is `sha256:<hex digest>` of its bytes, so storing the same
content twice costs nothing and a ref can never point at other content.
Files are written to a temporary name and renamed, so a reader never sees a
half-written blob even if the process dies mid-write. Blocking file I/O runs
in a thread.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from linkflow.blobs._refs import InvalidBlobRef, digest_of, ref_for
from linkflow.nodes.sdk import BinaryRef

__all__ = ["FilesystemBlobStore", "InvalidBlobRef"]


class FilesystemBlobStore:
    """Blobs under `root`, fanned out by the first bytes of their digest."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, ref: str) -> Path:
        digest = digest_of(ref)
        return self.root / digest[:2] / digest[2:4] / digest

    def _write(self, data: bytes) -> str:
        ref = ref_for(data)
        path = self._path(ref)
        if path.exists():
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return ref

    def _read(self, ref: str) -> bytes:
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError:
            raise InvalidBlobRef(f"no blob {ref}") from None

    async def put(
        self,
        data: bytes,
        *,
        mime_type: str = "application/octet-stream",
        file_name: str | None = None,
    ) -> BinaryRef:
        ref = await asyncio.to_thread(self._write, data)
        return BinaryRef(ref=ref, size=len(data), mime_type=mime_type, file_name=file_name)

    async def get(self, ref: BinaryRef | str) -> bytes:
        key = ref.ref if isinstance(ref, BinaryRef) else ref
        return await asyncio.to_thread(self._read, key)

    async def exists(self, ref: str) -> bool:
        return await asyncio.to_thread(self._path(ref).exists)
