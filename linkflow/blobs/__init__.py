"""Blob storage for binary files and large node outputs (the claim-check pattern)."""

from linkflow.blobs.filesystem import FilesystemBlobStore, InvalidBlobRef

__all__ = ["FilesystemBlobStore", "InvalidBlobRef"]
