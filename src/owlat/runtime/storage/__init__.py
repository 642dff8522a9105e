"""File storage.

storage.py       `ctx.storage` and the files of `_storage`: storing, reading, deleting
file_storage.py  a deployment's file storage: blob store, upload-URL signing, file URLs
upload_tokens.py the signed tokens of upload URLs
blobstores/      where blobs live: a local folder or S3
"""

from __future__ import annotations

from owlat.runtime.storage.file_storage import FileStorage, open_file_storage
from owlat.runtime.storage.storage import (
    FileData,
    StorageActions,
    StorageReader,
    StorageWriter,
    file_storage_of,
    find_by_key,
    store_file,
    too_large,
)

__all__ = [
    "FileData",
    "FileStorage",
    "StorageActions",
    "StorageReader",
    "StorageWriter",
    "file_storage_of",
    "find_by_key",
    "open_file_storage",
    "store_file",
    "too_large",
]
