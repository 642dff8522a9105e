"""Blob stores: one module per store behind the `BlobStore` interface (`types.py`).

local.py   files in a folder under the data folder (the default)
s3.py      S3-compatible object storage, through boto3 (imported only when used)
"""

from __future__ import annotations

from pathlib import Path

from owlat.runtime.storage.blobstores.local import LocalBlobStore
from owlat.runtime.storage.blobstores.s3 import S3Settings
from owlat.runtime.storage.blobstores.types import (
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    DigestMismatchError,
)

__all__ = [
    "BlobInfo",
    "BlobNotFoundError",
    "BlobStore",
    "DigestMismatchError",
    "LocalBlobStore",
    "S3Settings",
    "create_blob_store",
]

LOCAL_FOLDER = "storage"


def create_blob_store(data_dir: Path, s3: S3Settings | None = None) -> BlobStore:
    """S3-compatible storage when `s3` is given, else the folder `<data_dir>/storage`."""
    if s3 is not None:
        from owlat.runtime.storage.blobstores.s3 import S3BlobStore

        return S3BlobStore(s3)
    return LocalBlobStore(Path(data_dir) / LOCAL_FOLDER)
