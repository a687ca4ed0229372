"""Where a repository's objects live: S3 (any S3-compatible endpoint) or a local directory.

Every write carries a SHA-256 checksum (S3 verifies it on arrival; our own readers verify it
again, since object names are content digests). On S3 every object is written with an Object
Lock COMPLIANCE retain-until. Transient failures (connection errors, 5xx, throttling) are
retried with exponential backoff and then reported with the endpoint and the attempts made.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")


class StorageError(Exception):
    """A storage operation failed for a reason retrying will not fix."""


class NotFound(StorageError):
    pass


class AlreadyExists(StorageError):
    pass


class Unreachable(StorageError):
    pass


class Forbidden(StorageError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    version_id: str | None = None
    retain_until: dt.datetime | None = None
    is_latest: bool = True


@dataclass(frozen=True)
class PutResult:
    key: str
    size: int
    sha256: str
    version_id: str | None
    retain_until: dt.datetime | None


@dataclass(frozen=True)
class LockConfiguration:
    versioning: bool
    enabled: bool
    mode: str | None
    days: int | None


class Storage(Protocol):
    url: str
    supports_lock: bool

    def put(
        self,
        key: str,
        data: bytes,
        *,
        retain_until: dt.datetime | None,
        if_none_match: bool = False,
    ) -> PutResult: ...
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes: ...
    def list_objects(self, prefix: str) -> list[ObjectInfo]: ...
    def list_versions(self, prefix: str) -> list[ObjectInfo]: ...
    def head(self, key: str, version_id: str | None = None) -> ObjectInfo: ...
    def extend_retention(self, key: str, version_id: str | None, until: dt.datetime) -> None: ...
    def delete(self, key: str, version_id: str | None = None) -> None: ...
    def lock_configuration(self) -> LockConfiguration | None: ...


# --- a local directory ----------------------------------------------------------------------


TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalStorage:
    """A directory: atomic writes (temporary file, fsync, link), read-only objects, no locks.

    A write goes to `.<name>.<pid>.<random>.tmp` beside its object first. A process killed in
    between leaves that file: `temporaries` lists them (verify reports them) and
    `sweep_temporaries` removes those whose process is gone (run and prune do, at start)."""

    supports_lock = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"refusing object key {key!r}")
        return self.root / key

    def put(
        self,
        key: str,
        data: bytes,
        *,
        retain_until: dt.datetime | None,
        if_none_match: bool = False,
    ) -> PutResult:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o440)
        except OSError as e:  # a full disk above all: nothing of this write may stay
            tmp.unlink(missing_ok=True)
            raise StorageError(f"{self.url}/{key}: cannot write {tmp}: {e.strerror or e}") from e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            if if_none_match:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise AlreadyExists(f"{self.url}/{key} exists") from None
            else:
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return PutResult(key, len(data), hashlib.sha256(data).hexdigest(), None, None)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                if start is not None:
                    f.seek(start)
                    return f.read((end - start + 1) if end is not None else -1)
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"{self.url}/{key} does not exist") from None

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.exists():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                out.append(ObjectInfo(str(p.relative_to(self.root)), p.stat().st_size))
        return sorted(out, key=lambda o: o.key)

    def list_versions(self, prefix: str) -> list[ObjectInfo]:
        return self.list_objects(prefix)

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        try:
            return ObjectInfo(key, self._path(key).stat().st_size)
        except FileNotFoundError:
            raise NotFound(f"{self.url}/{key} does not exist") from None

    def extend_retention(self, key: str, version_id: str | None, until: dt.datetime) -> None:
        return None

    def delete(self, key: str, version_id: str | None = None) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            raise NotFound(f"{self.url}/{key} does not exist") from None

    def lock_configuration(self) -> LockConfiguration | None:
        return None

    def temporaries(self) -> list[tuple[Path, int]]:
        """Every temporary file of an unfinished write, with the PID that wrote it."""
        if not self.root.exists():
            return []
        out = []
        for p in self.root.rglob(".*.tmp"):
            match = TEMPORARY.match(p.name)
            if match and p.is_file():
                out.append((p, int(match["pid"])))
        return sorted(out)

    def sweep_temporaries(self) -> list[str]:
        """Remove what writes of processes that no longer run left behind; the names."""
        removed = []
        for path, pid in self.temporaries():
            if pid != os.getpid() and not _running(pid):
                path.unlink(missing_ok=True)
                removed.append(str(path.relative_to(self.root)))
        return removed


# --- S3 -------------------------------------------------------------------------------------

RETRYABLE_CODES = {
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestTimeTooSkewed",
    "500",
    "502",
    "503",
    "504",
}


class S3Storage:
    supports_lock = True

    def __init__(
        self,
        url: str,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        ca_bundle: str | None = None,
        attempts: int = 6,
        backoff: float = 0.5,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageError(f"not an S3 repository URL: {url!r} (expected s3://bucket/prefix)")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.endpoint = endpoint_url or "AWS"
        self.attempts = attempts
        self.backoff = backoff
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                verify=ca_bundle if ca_bundle else True,
                config=Config(
                    retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        self.s3 = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        delay = self.backoff
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except ClientError as e:
                err = e.response.get("Error", {})
                code = str(err.get("Code", ""))
                status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
                if code in ("NoSuchKey", "404", "NoSuchVersion", "NotFound"):
                    raise NotFound(f"{self.url}: {what}: not found") from None
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise AlreadyExists(f"{self.url}: {what}: already exists") from None
                if code in ("AccessDenied", "403", "Forbidden") or status == 403:
                    raise Forbidden(
                        f"{self.url}: {what}: access denied ({code}: {err.get('Message', '')})"
                    ) from None
                if code not in RETRYABLE_CODES and status < 500:
                    raise StorageError(
                        f"{self.url}: {what}: {code}: {err.get('Message', '')}"
                    ) from None
                last = e
            except BotoCoreError as e:  # connection refused, timeouts, DNS, TLS
                last = e
            if attempt < self.attempts:
                time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
                delay *= 2
        raise Unreachable(
            f"S3 endpoint {self.endpoint} (bucket {self.bucket}): {what} failed after "
            f"{self.attempts} attempts with backoff: {last}"
        )

    def put(
        self,
        key: str,
        data: bytes,
        *,
        retain_until: dt.datetime | None,
        if_none_match: bool = False,
    ) -> PutResult:
        digest = hashlib.sha256(data).digest()
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "Body": data,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(digest).decode(),
        }
        if retain_until is not None:
            kwargs["ObjectLockMode"] = "COMPLIANCE"
            kwargs["ObjectLockRetainUntilDate"] = retain_until
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        out = self._call(f"put {key}", lambda: self.s3.put_object(**kwargs))
        return PutResult(key, len(data), digest.hex(), out.get("VersionId"), retain_until)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"

        def fetch() -> bytes:
            return bytes(self.s3.get_object(**kwargs)["Body"].read())

        return self._call(f"get {key}", fetch)

    def _pages(self, operation: str, prefix: str) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:  # a retry starts the listing over
            paginator = self.s3.get_paginator(operation)
            return list(paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)))

        return self._call(f"{operation} {prefix}", fetch)

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        return [
            ObjectInfo(self._strip(o["Key"]), int(o["Size"]))
            for page in self._pages("list_objects_v2", prefix)
            for o in page.get("Contents", [])
        ]

    def list_versions(self, prefix: str) -> list[ObjectInfo]:
        return [
            ObjectInfo(
                self._strip(o["Key"]),
                int(o.get("Size", 0)),
                o["VersionId"],
                None,
                bool(o.get("IsLatest")),
            )
            for page in self._pages("list_object_versions", prefix)
            for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if version_id:
            kwargs["VersionId"] = version_id
        out = self._call(f"head {key}", lambda: self.s3.head_object(**kwargs))
        return ObjectInfo(
            key,
            int(out["ContentLength"]),
            out.get("VersionId"),
            out.get("ObjectLockRetainUntilDate"),
        )

    def extend_retention(self, key: str, version_id: str | None, until: dt.datetime) -> None:
        # COMPLIANCE retention can only grow; never ask for less than what is there (real S3
        # refuses it, and a lenient endpoint must not be able to shorten a lock through us).
        current = self.head(key, version_id).retain_until
        if current is not None and current >= until:
            return
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": until},
        }
        if version_id:
            kwargs["VersionId"] = version_id
        self._call(f"extend retention of {key}", lambda: self.s3.put_object_retention(**kwargs))

    def delete(self, key: str, version_id: str | None = None) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if version_id:
            kwargs["VersionId"] = version_id
        self._call(f"delete {key}", lambda: self.s3.delete_object(**kwargs))

    def lock_configuration(self) -> LockConfiguration | None:
        from botocore.exceptions import ClientError

        versioning = (
            self._call(
                "get versioning", lambda: self.s3.get_bucket_versioning(Bucket=self.bucket)
            ).get("Status")
            == "Enabled"
        )

        def lock() -> dict[str, Any]:
            try:
                return dict(self.s3.get_object_lock_configuration(Bucket=self.bucket))
            except ClientError as e:
                if "ObjectLockConfigurationNotFound" in str(e.response.get("Error", {})):
                    return {}
                raise

        conf = self._call("get object lock configuration", lock).get("ObjectLockConfiguration", {})
        rule = conf.get("Rule", {}).get("DefaultRetention", {})
        days = rule.get("Days")
        if days is None and rule.get("Years") is not None:
            days = int(rule["Years"]) * 365
        return LockConfiguration(
            versioning=versioning,
            enabled=conf.get("ObjectLockEnabled") == "Enabled",
            mode=rule.get("Mode"),
            days=int(days) if days is not None else None,
        )


def open_storage(url: str, **s3_options: Any) -> Storage:
    if url.startswith("s3://"):
        return S3Storage(url, **s3_options)
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(Path(parsed.path if parsed.scheme else url))
    raise StorageError(f"unknown repository URL {url!r}: use s3://bucket/prefix or a directory")
