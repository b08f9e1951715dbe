"""The S3-compatible blob store (``--blob-store s3://BUCKET[/PREFIX]``), through boto3.

Keys are ``PREFIX/ab/abcdef….bin`` (the local store's names). Credentials come the standard
AWS way (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, the shared
config files, instance roles); the endpoint from ``OTAFORGE_S3_ENDPOINT`` (any
S3-compatible store; AWS when unset).

Uploads: a blob of at most one part is one ``PutObject`` carrying its SHA-256
(``x-amz-checksum-sha256``), which the store checks before the object exists; a larger one
is a multipart upload whose parts each carry their SHA-256, and which is completed only when
the whole stream hashed to the expected digest -- otherwise, or when the stream or the store
fails, it is aborted, so nothing is ever half visible. An abort that cannot reach the store
is retried before the next upload (the parts of an incomplete upload are invisible, but they
take space until aborted); for a process killed mid-upload, give the bucket the usual
lifecycle rule (AbortIncompleteMultipartUpload after a day).

Downloads: one ranged ``GetObject`` per response (the client's Range passed through), read
in chunks by a thread. Sizes of stored blobs are cached: blobs never change.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from otaforge.errors import DigestMismatch, InputError, StoreUnavailable
from otaforge.server.blobs import BlobHandle, blob_name, chunked, is_sha256

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("otaforge.server")
PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB
READ_SIZE = 1024 * 1024  # bytes per read of a download (read ahead while the last is sent)
NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, prefix without slashes at its ends)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket or not (3 <= len(bucket) <= 63) or url == rest:
        raise InputError(f"--blob-store {url!r}: expected s3://BUCKET[/PREFIX] with a bucket "
                         "name of 3 to 63 characters")
    return bucket, prefix.strip("/")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _unavailable(err: Exception, what: str) -> StoreUnavailable:
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "?")
        return StoreUnavailable(f"blob store refused {what} ({code})")
    return StoreUnavailable(f"blob store unreachable during {what} ({type(err).__name__})")


def _missing(err: ClientError) -> bool:
    return str(err.response.get("Error", {}).get("Code", "")) in NOT_FOUND


class _S3Handle:
    """A blob streamed by one ranged GET (re-opened only when the caller jumps)."""

    blocking = True

    def __init__(self, store: S3BlobStore, key: str, size: int) -> None:
        self.store, self.key, self.size = store, key, size
        self.read_size = READ_SIZE
        self._body: Any = None
        self._pos = -1

    def read(self, offset: int, length: int, end: int) -> bytes:
        try:
            if self._body is None or self._pos != offset:
                self.close()
                got = self.store.client.get_object(Bucket=self.store.bucket, Key=self.key,
                                                   Range=f"bytes={offset}-{end - 1}")
                self._body, self._pos = got["Body"], offset
            data: bytes = self._body.read(length)
        except Exception as err:  # botocore, urllib3 or socket: the store failed us
            if isinstance(err, StoreUnavailable):
                raise
            self.close()
            raise _unavailable(err, f"reading {self.key}") from err
        if not data and length > 0:
            self.close()
            raise StoreUnavailable(f"blob store ended {self.key} at byte {offset} of "
                                   f"{self.size}")
        self._pos += len(data)
        return data

    def close(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()


class S3BlobStore:
    """Blobs in ``bucket`` under ``prefix``.

    Args:
        bucket: the bucket (it must exist).
        prefix: key prefix ("" for none).
        endpoint: the S3 endpoint URL (None: AWS).
        part_size: bytes per multipart part (and the largest single PutObject).
    """

    remote = True

    def __init__(self, bucket: str, prefix: str = "", endpoint: str | None = None, *,
                 part_size: int = PART_SIZE, connect_timeout_s: float = 3.0,
                 read_timeout_s: float = 20.0) -> None:
        self.bucket, self.prefix, self.part_size = bucket, prefix, part_size
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        session = boto3.session.Session()
        config = Config(connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
                        retries={"max_attempts": 2, "mode": "standard"},
                        max_pool_connections=64,
                        s3={"addressing_style": "path"} if endpoint else {},
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required")
        self.client: S3Client = session.client(
            "s3", endpoint_url=endpoint, config=config,
            region_name=session.region_name or "us-east-1")
        self._sizes: dict[str, int] = {}
        self._unaborted: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def key(self, sha256: str) -> str:
        """The object key of a blob."""
        name = blob_name(sha256)
        return f"{self.prefix}/{name}" if self.prefix else name

    # --- writing --------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self.put_stream(chunked(data, self.part_size), digest)
        return digest

    def put_stream(self, chunks: Iterable[bytes], sha256: str) -> int:
        key = self.key(sha256)
        self._retry_aborts()
        parts = _parts(chunks, self.part_size)
        first = next(parts, b"")
        second = next(parts, None)
        if second is None:  # one part: a single checked PutObject
            if hashlib.sha256(first).hexdigest() != sha256:
                raise DigestMismatch(f"blob streamed as {sha256} hashes otherwise; not stored")
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=first,
                                       ChecksumSHA256=_b64(bytes.fromhex(sha256)),
                                       ContentType="application/octet-stream",
                                       Metadata={"sha256": sha256})
            except (BotoCoreError, ClientError) as err:
                raise _unavailable(err, f"storing {key}") from err
            self._sizes[sha256] = len(first)
            return len(first)
        size = self._multipart(key, sha256, _chain(first, second, parts))
        self._sizes[sha256] = size
        return size

    def _multipart(self, key: str, sha256: str, parts: Iterator[bytes]) -> int:
        try:
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256",
                ContentType="application/octet-stream", Metadata={"sha256": sha256})["UploadId"]
        except (BotoCoreError, ClientError) as err:
            raise _unavailable(err, f"starting the upload of {key}") from err
        digest, size, done = hashlib.sha256(), 0, []
        try:
            for number, part in enumerate(parts, start=1):
                digest.update(part)
                size += len(part)
                sent = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    Body=part, ChecksumSHA256=_b64(hashlib.sha256(part).digest()))
                done.append({"PartNumber": number, "ETag": sent["ETag"],
                             "ChecksumSHA256": sent.get("ChecksumSHA256")
                             or _b64(hashlib.sha256(part).digest())})
            if digest.hexdigest() != sha256:
                raise DigestMismatch(f"blob streamed as {sha256} hashes to "
                                     f"{digest.hexdigest()}; not stored")
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": done})  # type: ignore[typeddict-item]
        except BaseException as err:
            self._abort(key, upload_id)
            if isinstance(err, BotoCoreError | ClientError):
                raise _unavailable(err, f"uploading {key}") from err
            raise
        return size

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            log.warning("could not abort the failed upload of %s; retried later", key)
            with self._lock:
                self._unaborted.append((key, upload_id))

    def _retry_aborts(self) -> None:
        with self._lock:
            pending, self._unaborted = self._unaborted, []
        for key, upload_id in pending:
            self._abort(key, upload_id)

    # --- reading --------------------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        if not is_sha256(sha256):
            return False
        try:
            self.size(sha256)
        except FileNotFoundError:
            return False
        return True

    def size(self, sha256: str) -> int:
        known = self._sizes.get(sha256)
        if known is not None:
            return known
        key = self.key(sha256)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if _missing(err):
                raise FileNotFoundError(key) from err
            raise _unavailable(err, f"looking up {key}") from err
        except BotoCoreError as err:
            raise _unavailable(err, f"looking up {key}") from err
        size = int(head["ContentLength"])
        self._sizes[sha256] = size
        return size

    def read_bytes(self, sha256: str) -> bytes:
        handle = self.open(sha256)
        try:
            out = bytearray()
            while len(out) < handle.size:
                chunk = handle.read(len(out), handle.size - len(out), handle.size)
                if not chunk:
                    raise StoreUnavailable(f"blob store ended {self.key(sha256)} early")
                out += chunk
            return bytes(out)
        finally:
            handle.close()

    def open(self, sha256: str) -> BlobHandle:
        return _S3Handle(self, self.key(sha256), self.size(sha256))

    def presigned_url(self, sha256: str, expires_s: int) -> str | None:
        """A presigned GetObject URL (signed locally: no request to the store)."""
        try:
            url: str = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.key(sha256)},
                ExpiresIn=expires_s)
        except BotoCoreError as err:  # e.g. no credentials to sign with
            raise _unavailable(err, f"signing a URL for {self.key(sha256)}") from err
        return url

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as err:
            raise _unavailable(err, f"opening {self.url}") from err

    def digests(self) -> Iterator[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start)
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(start):]
                    stem = name.rpartition("/")[2].removesuffix(".bin")
                    if is_sha256(stem) and name == blob_name(stem):
                        self._sizes[stem] = int(obj["Size"])
                        yield stem
        except (BotoCoreError, ClientError) as err:
            raise _unavailable(err, f"listing {self.url}") from err


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a stream of chunks into parts of exactly ``size`` bytes (the last shorter)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def _chain(first: bytes, second: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield second
    yield from rest
