"""The file storage of a deployment: where blobs go, how upload URLs are signed, and the
origin file URLs start with. `ctx.storage` and the storage endpoints use it (storage.py,
server/storage_api.py); the Application holds one (`Application.storage`).
"""

from __future__ import annotations

from pathlib import Path

from owlat.runtime.storage.blobstores import BlobStore, S3Settings, create_blob_store
from owlat.runtime.storage.upload_tokens import (
    UploadGrant,
    UploadTokens,
    load_or_create_signing_key,
)


class FileStorage:
    """The file storage of one deployment: its blob store, the key that signs upload URLs,
    and the public origin its URLs start with (`public_url` may be set once a server
    knows its port)."""

    def __init__(self, blobs: BlobStore, signing_key: bytes, public_url: str) -> None:
        self.blobs = blobs
        self.tokens = UploadTokens(signing_key)
        self.public_url = public_url

    def upload_url(self, grant: UploadGrant) -> str:
        token = self.tokens.issue(grant=grant)
        return f"{self.public_url.rstrip('/')}/api/storage/upload?token={token}"

    def file_url(self, key: str) -> str:
        return f"{self.public_url.rstrip('/')}/api/storage/{key}"

    async def close(self) -> None:
        await self.blobs.close()


def open_file_storage(
    data_dir: Path, *, public_url: str, signing_key: str = "", s3: S3Settings | None = None
) -> FileStorage:
    """The file storage configured by settings: blobs in `<data_dir>/storage` or S3, upload
    URLs signed with `signing_key` (default: the data folder's `storage_key`)."""
    key = signing_key.encode() if signing_key else load_or_create_signing_key(data_dir)
    return FileStorage(create_blob_store(data_dir, s3), key, public_url)
