"""Blob storage for binary files and large node outputs (the claim-check pattern).

Every store keys a blob by `sha256:<hex>` of its bytes, so a ref is valid in any
store. `parse_blob_url` reads where blobs live; `wiring.py` picks the store.
"""

from linkflow.blobs._location import BlobLocation, parse_blob_url
from linkflow.blobs._refs import InvalidBlobRef
from linkflow.blobs.filesystem import FilesystemBlobStore
from linkflow.blobs.s3 import BlobStoreUnavailable, S3BlobStore

__all__ = [
    "BlobLocation",
    "BlobStoreUnavailable",
    "FilesystemBlobStore",
    "InvalidBlobRef",
    "S3BlobStore",
    "parse_blob_url",
]
