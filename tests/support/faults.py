"""Fault injection for the backup library's tests: a storage that fails its k-th operation."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ops.backuplib.storage import LockConfiguration, ObjectInfo, PutResult

T = TypeVar("T")


class InjectedFault(Exception):
    pass


class FaultyStorage:
    """Wraps a storage and fails its k-th operation: before it happens, or after it took
    effect but before the caller hears of it (a lost reply). `exit` ends the process there,
    as a power cut would; otherwise InjectedFault is raised."""

    def __init__(
        self, inner: Any, fail_at: int, *, after: bool = False, exit_process: bool = False
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.supports_lock = inner.supports_lock
        self.fail_at = fail_at
        self.after = after
        self.exit_process = exit_process
        self.count = 0
        self._lock = threading.Lock()

    def _op(self, name: str, fn: Callable[[], T]) -> T:
        with self._lock:  # uploads run on threads: each operation gets its own number
            self.count += 1
            mine = self.count
        if mine == self.fail_at and not self.after:
            self._fail(name, mine)
        result = fn()
        if mine == self.fail_at and self.after:
            self._fail(name, mine)
        return result

    def _fail(self, name: str, number: int) -> None:
        if self.exit_process:
            os._exit(137)
        raise InjectedFault(f"injected fault at storage operation {number} ({name})")

    def put(
        self,
        key: str,
        data: bytes,
        *,
        retain_until: dt.datetime | None,
        if_none_match: bool = False,
    ) -> PutResult:
        return self._op(  # type: ignore[no-any-return]
            f"put {key}",
            lambda: self.inner.put(
                key, data, retain_until=retain_until, if_none_match=if_none_match
            ),
        )

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return self._op(f"get {key}", lambda: self.inner.get(key, start, end))  # type: ignore[no-any-return]

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        return self._op(f"list {prefix}", lambda: self.inner.list_objects(prefix))

    def list_versions(self, prefix: str) -> list[ObjectInfo]:
        return self._op(f"list versions {prefix}", lambda: self.inner.list_versions(prefix))

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        return self._op(f"head {key}", lambda: self.inner.head(key, version_id))  # type: ignore[no-any-return]

    def extend_retention(self, key: str, version_id: str | None, until: dt.datetime) -> None:
        self._op(f"extend {key}", lambda: self.inner.extend_retention(key, version_id, until))

    def delete(self, key: str, version_id: str | None = None) -> None:
        self._op(f"delete {key}", lambda: self.inner.delete(key, version_id))

    def lock_configuration(self) -> LockConfiguration | None:
        return self._op("lock configuration", self.inner.lock_configuration)  # type: ignore[no-any-return]
