"""S3 for the task runner: URIs, streamed downloads and multipart uploads, over aiobotocore.

The client comes from aiobotocore's default session, the one the worker's Data Pipeline client
uses, so both read the same credentials, region and proxy settings. Its endpoint comes from the
standard ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables, which botocore reads itself,
so S3 can point at a local server while Data Pipeline points elsewhere.

Files are never read whole into memory: downloads are written chunk by chunk, uploads above
:data:`MULTIPART_THRESHOLD` go in :data:`PART_SIZE` parts read one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CHUNK_SIZE",
    "MULTIPART_THRESHOLD",
    "PART_SIZE",
    "S3Error",
    "S3Uri",
    "Transfers",
    "open_s3",
]

CHUNK_SIZE = 1024 * 1024
"""Bytes read from a download's body at a time."""
PART_SIZE = 8 * 1024 * 1024
"""Bytes per multipart part (S3's minimum is 5 MiB for every part but the last)."""
MULTIPART_THRESHOLD = PART_SIZE
"""Files at least this big go up in parts; smaller ones in one PutObject."""


class S3Error(Exception):
    """An S3 location is malformed, missing, or a transfer failed; the message says which."""


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``, split.

    Attributes:
        bucket: the bucket name.
        key: the key or prefix, without a leading slash (may be empty).
    """

    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str) -> S3Uri:
        """Parse ``s3://bucket/key``.

        Raises:
            S3Error: *text* is not an ``s3://`` URI with a bucket.
        """
        if not isinstance(text, str) or not text.startswith("s3://"):
            raise S3Error(f"{text!r} is not an s3://bucket/key URI")
        bucket, _, key = text[len("s3://") :].partition("/")
        if not bucket:
            raise S3Error(f"{text!r} has no bucket name")
        return cls(bucket, key)

    def join(self, *parts: str) -> S3Uri:
        """This location with *parts* appended as path segments."""
        segments = [self.key.rstrip("/")] if self.key.strip("/") else []
        segments += [part.strip("/") for part in parts if part.strip("/")]
        return S3Uri(self.bucket, "/".join(segments))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@contextlib.asynccontextmanager
async def open_s3(region: str | None) -> AsyncIterator[Transfers]:
    """An S3 client from aiobotocore's default session, wrapped in :class:`Transfers`."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session: Any = get_session()
    # botocore's standard retries (3 attempts) suit S3 transfers: unlike the worker's polls,
    # there is no second retry layer above them here.
    config = AioConfig(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=20)
    async with session.create_client("s3", region_name=region, config=config) as client:
        yield Transfers(client)


class Transfers:
    """Streamed transfers between local files and S3 through one aiobotocore client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def endpoint_url(self) -> str:
        """Where the client sends requests."""
        return str(self.client.meta.endpoint_url)

    async def download_file(self, uri: S3Uri, path: Path) -> int:
        """Write object *uri* to *path*, chunk by chunk; return its size.

        Raises:
            S3Error: the object does not exist or cannot be read.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            answer = await self.client.get_object(Bucket=uri.bucket, Key=uri.key)
            size = 0
            with path.open("wb") as out:
                async with answer["Body"] as body:
                    while chunk := await body.read(CHUNK_SIZE):
                        # Off the loop: a slow disk must not hold up progress reports.
                        await asyncio.to_thread(out.write, chunk)
                        size += len(chunk)
            return size
        except Exception as exc:
            raise S3Error(f"cannot download {uri}: {_describe(exc)}") from exc

    async def download_prefix(self, uri: S3Uri, directory: Path) -> int:
        """Download every object under prefix *uri* into *directory*, keeping relative paths.

        Returns the number of files. Keys ending in ``/`` (folder markers) are skipped.

        Raises:
            S3Error: the listing or a download failed, or a key would escape *directory*.
        """
        prefix = uri.key.rstrip("/") + "/" if uri.key.strip("/") else ""
        count = 0
        root = _resolved(directory)
        async for key in self.list_keys(S3Uri(uri.bucket, prefix)):
            relative = key[len(prefix) :]
            if not relative or relative.endswith("/"):
                continue
            target = _resolved(directory / relative)
            if root != target and root not in target.parents:
                raise S3Error(f"s3://{uri.bucket}/{key} would be written outside {directory}")
            await self.download_file(S3Uri(uri.bucket, key), target)
            count += 1
        return count

    async def list_keys(self, uri: S3Uri, limit: int | None = None) -> AsyncIterator[str]:
        """The keys under prefix *uri*, page by page; at most *limit* when given."""
        token: str | None = None
        seen = 0
        try:
            while True:
                params: dict[str, Any] = {"Bucket": uri.bucket, "Prefix": uri.key}
                if token:
                    params["ContinuationToken"] = token
                if limit is not None:
                    params["MaxKeys"] = max(1, min(1000, limit - seen))
                page = await self.client.list_objects_v2(**params)
                for item in page.get("Contents", []):
                    yield item["Key"]
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    return
        except S3Error:
            raise
        except Exception as exc:
            raise S3Error(f"cannot list {uri}: {_describe(exc)}") from exc

    async def exists(self, uri: S3Uri) -> bool:
        """Whether object *uri* exists (HeadObject).

        Raises:
            S3Error: S3 answered with something other than found / not found.
        """
        try:
            await self.client.head_object(Bucket=uri.bucket, Key=uri.key)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise S3Error(f"cannot check {uri}: {_describe(exc)}") from exc
        return True

    async def prefix_not_empty(self, uri: S3Uri) -> bool:
        """Whether at least one object's key starts with *uri*'s key."""
        async for _ in self.list_keys(uri, limit=1):
            return True
        return False

    async def upload_file(self, path: Path, uri: S3Uri) -> int:
        """Upload *path* to *uri*; multipart from :data:`MULTIPART_THRESHOLD`. Return the size.

        Raises:
            S3Error: the upload failed (an unfinished multipart upload is aborted).
        """
        size = _size(path)
        try:
            if size < MULTIPART_THRESHOLD:
                body = await asyncio.to_thread(path.read_bytes)  # small: under one part
                await self.client.put_object(Bucket=uri.bucket, Key=uri.key, Body=body)
            else:
                await self._multipart(path, uri)
        except Exception as exc:
            raise S3Error(f"cannot upload {path} to {uri}: {_describe(exc)}") from exc
        return size

    async def _multipart(self, path: Path, uri: S3Uri) -> None:
        created = await self.client.create_multipart_upload(Bucket=uri.bucket, Key=uri.key)
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            with path.open("rb") as source:
                number = 1
                while True:
                    # One part in memory at a time, read off the loop so progress reports and
                    # other tasks keep running.
                    chunk = await asyncio.to_thread(source.read, PART_SIZE)
                    if not chunk:
                        break
                    answer = await self.client.upload_part(
                        Bucket=uri.bucket,
                        Key=uri.key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
                    number += 1
                    del chunk
            await self.client.complete_multipart_upload(
                Bucket=uri.bucket,
                Key=uri.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self.client.abort_multipart_upload(
                        Bucket=uri.bucket, Key=uri.key, UploadId=upload_id
                    )
                )
            raise

    async def upload_directory(self, directory: Path, uri: S3Uri) -> int:
        """Upload every file under *directory* below prefix *uri*; return the number of files."""
        count = 0
        for path in sorted(_files(directory)):
            relative = path.relative_to(directory).as_posix()
            await self.upload_file(path, uri.join(relative))
            count += 1
        return count


def _resolved(path: Path) -> Path:
    return path.resolve()


def _size(path: Path) -> int:
    return path.stat().st_size


def _files(directory: Path) -> list[Path]:
    found: list[Path] = []
    for root, _dirs, names in os.walk(directory):
        found += [Path(root) / name for name in names]
    return found


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code", "")
        message = error.get("Message", "")
        if code or message:
            return f"{code}: {message}".strip(": ")
    return f"{type(exc).__name__}: {exc}"
