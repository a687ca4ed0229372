"""The repository: its key, config, packs, indexes, snapshots and leases (FORMAT.md)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from ops.backuplib import crypto
from ops.backuplib.chunker import Chunker, ChunkerParams
from ops.backuplib.crypto import IntegrityError, MasterKey
from ops.backuplib.storage import (
    AlreadyExists,
    NotFound,
    PutResult,
    Storage,
    StorageError,
)

FORMAT_VERSION = 1
PACK_SIZE = 16 << 20
ZSTD_LEVEL = 3
FLAG_RAW, FLAG_ZSTD = 0, 1
LEASE_SECONDS = 6 * 3600


class RepositoryError(Exception):
    """The repository cannot do what was asked; the message says what and where."""


class Busy(RepositoryError):
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_iso(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def pack_key(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"


def check_lock_configuration(storage: Storage, need: int) -> dict[str, Any]:
    """Refuses a bucket whose Object Lock is weaker than the repository's policy."""
    conf = storage.lock_configuration()
    if conf is None:
        return {"immutability": "none: a local directory has no Object Lock"}
    where = storage.url
    if not conf.versioning:
        raise RepositoryError(
            f"{where}: bucket versioning is not Enabled; refusing to back up "
            "into a bucket whose objects can be overwritten"
        )
    if not conf.enabled:
        raise RepositoryError(
            f"{where}: the bucket has no Object Lock; refusing to back up into "
            "a bucket where backups can be deleted"
        )
    if conf.mode != "COMPLIANCE":
        raise RepositoryError(
            f"{where}: default retention mode is {conf.mode!r}, not COMPLIANCE "
            "(GOVERNANCE can be bypassed); refusing"
        )
    if conf.days is None or conf.days < need:
        raise RepositoryError(
            f"{where}: default retention is {conf.days} days, weaker than the "
            f"repository's {need} lock days; refusing"
        )
    return {"immutability": "Object Lock COMPLIANCE", "default_retention_days": conf.days}


@dataclass
class BlobRef:
    pack: str
    offset: int
    length: int
    raw_length: int


@dataclass
class PackInfo:
    size: int
    version_id: str | None
    retain_until: dt.datetime | None
    blobs: list[tuple[str, int, int, int]]


@dataclass
class KeyOptions:
    """How to reach the master key: a KMS client (and key ID for init), or a key file."""

    kms: Any = None
    kms_key_id: str | None = None
    key_file: Path | None = None


@dataclass
class Config:
    repo_id: str
    chunker: ChunkerParams
    pack_size: int
    zstd_level: int
    lock_days: int
    created: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "id": self.repo_id,
            "chunker": self.chunker.as_dict(),
            "pack_size": self.pack_size,
            "compression": {"zstd": self.zstd_level},
            "lock_days": self.lock_days,
            "created": self.created,
        }


@dataclass
class Index:
    blobs: dict[bytes, BlobRef] = field(default_factory=dict)
    packs: dict[str, PackInfo] = field(default_factory=dict)
    index_ids: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # unindexed packs taken in by this load

    def add_pack(self, pack_id: str, info: PackInfo) -> None:
        self.packs[pack_id] = info
        for blob_hex, off, length, raw in info.blobs:
            self.blobs.setdefault(bytes.fromhex(blob_hex), BlobRef(pack_id, off, length, raw))


class Repository:
    def __init__(
        self,
        storage: Storage,
        key: MasterKey,
        config: Config,
        key_kind: str,
        kms_key_id: str | None,
    ) -> None:
        self.storage = storage
        self.key = key
        self.config = config
        self.key_kind = key_kind
        self.kms_key_id = kms_key_id
        self._local = threading.local()  # zstd contexts are not thread-safe: one per thread
        self.chunker = Chunker(config.chunker, key.chunker_seed)

    # --- creation and opening ---------------------------------------------------------------

    @classmethod
    def init(
        cls,
        storage: Storage,
        keys: KeyOptions,
        *,
        lock_days: int,
        chunker: ChunkerParams | None = None,
        pack_size: int = PACK_SIZE,
    ) -> Repository:
        try:
            storage.get("config", 0, 0)
            raise RepositoryError(f"{storage.url}: a repository is already there")
        except NotFound:
            pass
        check_lock_configuration(storage, lock_days)
        repo_id = secrets.token_hex(16)
        if keys.kms is not None:
            if not keys.kms_key_id:
                raise RepositoryError("KMS mode needs the key's ID or ARN (--kms-key)")
            master, record = crypto.wrap_with_kms(keys.kms, keys.kms_key_id, repo_id)
        elif keys.key_file is not None:
            master, record = crypto.wrap_with_file(keys.key_file, repo_id)
        else:
            raise RepositoryError("no key: give a KMS key or a key file")
        config = Config(
            repo_id, chunker or ChunkerParams(), pack_size, ZSTD_LEVEL, lock_days, iso(utcnow())
        )
        record.update({"version": FORMAT_VERSION, "repository": repo_id, "created": config.created})
        repo = cls(storage, master, config, record["kind"], record.get("kms_key_id"))
        until = utcnow() + dt.timedelta(days=lock_days) if storage.supports_lock else None
        storage.put(
            f"keys/{secrets.token_hex(8)}",
            json.dumps(record, indent=1).encode(),
            retain_until=until,
            if_none_match=True,
        )
        try:
            storage.put(
                "config",
                master.seal_json(config.as_dict(), b"config"),
                retain_until=until,
                if_none_match=True,
            )
        except AlreadyExists:
            raise RepositoryError(f"{storage.url}: a repository is already there") from None
        return repo

    @classmethod
    def open(cls, storage: Storage, keys: KeyOptions) -> Repository:
        try:
            sealed_config = storage.get("config")
        except NotFound:
            raise RepositoryError(
                f"{storage.url}: no repository here (no config object); run `init` first"
            ) from None
        records = []
        for obj in storage.list_objects("keys/"):
            try:
                records.append(json.loads(storage.get(obj.key)))
            except (ValueError, StorageError) as e:
                raise RepositoryError(f"{storage.url}/{obj.key}: unreadable key record: {e}") from e
        if not records:
            raise RepositoryError(f"{storage.url}: no key records under keys/")
        errors = []
        settings_at_fault: list[bool] = []  # per key that failed: the key file's fault?
        for record in records:
            repo_id = str(record["repository"])
            try:
                if record["kind"] == "kms" and keys.kms is not None:
                    master = crypto.unwrap_with_kms(keys.kms, record, repo_id)
                elif record["kind"] == "file" and keys.key_file is not None:
                    master = crypto.unwrap_with_file(keys.key_file, record, repo_id)
                else:
                    errors.append(
                        f"a {record['kind']} key record, and no {record['kind']} key given"
                    )
                    continue
            except crypto.KeyError_ as e:
                errors.append(str(e))
                settings_at_fault.append(isinstance(e, crypto.KeyConfigError))
                continue
            try:
                raw = master.open_json(sealed_config, b"config", "config")
            except IntegrityError as e:
                errors.append(f"the key opens, but {e}")
                continue
            config = Config(
                raw["id"],
                ChunkerParams.from_dict(raw["chunker"]),
                int(raw["pack_size"]),
                int(raw["compression"]["zstd"]),
                int(raw["lock_days"]),
                raw["created"],
            )
            if config.repo_id != repo_id:
                raise RepositoryError(
                    f"{storage.url}: key record and config disagree on the repository ID"
                )
            return cls(storage, master, config, record["kind"], record.get("kms_key_id"))
        failure = (crypto.KeyConfigError if settings_at_fault and all(settings_at_fault)
                   else crypto.KeyError_)  # fmt: skip
        raise failure(f"{storage.url}: no key opens this repository: " + "; ".join(errors))

    # --- sealed metadata objects ------------------------------------------------------------

    def retain_until(self, now: dt.datetime | None = None) -> dt.datetime | None:
        if not self.storage.supports_lock:
            return None
        return (now or utcnow()) + dt.timedelta(days=self.config.lock_days)

    def put_sealed(
        self,
        prefix: str,
        kind: bytes,
        obj: Any,
        name: str | None = None,
        until: dt.datetime | None = None,
    ) -> PutResult:
        sealed = self.key.seal_json(obj, kind)
        name = name or hashlib.sha256(sealed).hexdigest()
        return self.storage.put(
            f"{prefix}/{name}",
            sealed,
            retain_until=until or self.retain_until(),
            if_none_match=True,
        )

    def get_sealed(self, key: str, kind: bytes, *, content_named: bool = True) -> Any:
        data = self.storage.get(key)
        if content_named and hashlib.sha256(data).hexdigest() != key.rsplit("/", 1)[-1]:
            raise IntegrityError(f"{key}: content does not match its name (corrupted)")
        return self.key.open_json(data, kind, key)

    # --- blobs and packs --------------------------------------------------------------------

    def _zstd(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair = getattr(self._local, "zstd", None)
        if pair is None:
            pair = (zstandard.ZstdCompressor(level=self.config.zstd_level),
                    zstandard.ZstdDecompressor())  # fmt: skip
            self._local.zstd = pair
        return pair

    def seal_blob(self, blob_id: bytes, data: bytes | memoryview) -> tuple[bytes, int]:
        compressed = self._zstd()[0].compress(data)
        if len(compressed) < len(data):
            payload = bytes([FLAG_ZSTD]) + compressed
        else:
            payload = bytes([FLAG_RAW]) + bytes(data)
        return self.key.seal(payload, blob_id), len(data)

    def open_blob(
        self, blob_id: bytes, sealed: bytes | memoryview, raw_length: int, where: str
    ) -> bytes:
        payload = self.key.open(sealed, blob_id, where)
        if payload[0] == FLAG_ZSTD:
            data = self._zstd()[1].decompress(payload[1:], max_output_size=raw_length)
        else:
            data = payload[1:]
        if len(data) != raw_length or self.key.blob_id(data) != blob_id:
            raise IntegrityError(f"{where}: blob {blob_id.hex()[:16]} has the wrong content")
        return data

    def read_pack_header(self, pack_id: str, size: int) -> list[tuple[str, int, int, int]]:
        key = pack_key(pack_id)
        if size < 4 + crypto.NONCE + crypto.TAG:
            raise IntegrityError(f"{key}: truncated ({size} bytes)")
        tail = self.storage.get(key, max(0, size - 64 * 1024), size - 1)
        (hlen,) = struct.unpack("<I", tail[-4:])
        if hlen + 4 > size:
            raise IntegrityError(f"{key}: header length {hlen} exceeds the pack ({size} bytes)")
        if hlen + 4 > len(tail):
            tail = self.storage.get(key, size - hlen - 4, size - 1)
        header = self.key.open_json(tail[-4 - hlen : -4], b"pack-header", key)
        return [(str(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in header]

    # --- indexes ----------------------------------------------------------------------------

    def load_index(
        self, *, adopt_orphans: bool = True, on_problem: Callable[[str], None] | None = None
    ) -> Index:
        index = Index()
        raw: dict[str, dict[str, Any]] = {}
        for obj in self.storage.list_objects("index/"):
            name = obj.key.rsplit("/", 1)[-1]
            try:
                raw[name] = self.get_sealed(obj.key, b"index")
            except (IntegrityError, StorageError) as e:
                if on_problem is None:
                    raise
                on_problem(f"index {name}: {e}")
        superseded = {s for doc in raw.values() for s in doc.get("supersedes", [])}
        extended: dict[str, dt.datetime] = {}
        for name, doc in sorted(raw.items(), key=lambda kv: str(kv[1].get("created", ""))):
            if name in superseded:
                continue
            index.index_ids.append(name)
            for pack_id, p in doc.get("packs", {}).items():
                until = parse_iso(p["retain_until"]) if p.get("retain_until") else None
                index.add_pack(
                    pack_id,
                    PackInfo(
                        int(p["size"]), p.get("version_id"), until, [tuple(b) for b in p["blobs"]]
                    ),
                )
            for pack_id, until_s in doc.get("extended", {}).items():
                until = parse_iso(until_s)
                if pack_id not in extended or extended[pack_id] < until:
                    extended[pack_id] = until
        for pack_id, until in extended.items():
            info = index.packs.get(pack_id)
            if info is not None and (info.retain_until is None or info.retain_until < until):
                info.retain_until = until
        if adopt_orphans:
            self.adopt_orphan_packs(index, on_problem)
        return index

    def list_packs(self) -> dict[str, int]:
        return {o.key.rsplit("/", 1)[-1]: o.size for o in self.storage.list_objects("data/")}

    def adopt_orphan_packs(
        self,
        index: Index,
        on_problem: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Packs an interrupted run uploaded but never indexed: read their headers, use them."""
        adopted = []
        for pack_id, size in self.list_packs().items():
            if pack_id in index.packs:
                continue
            try:
                blobs = self.read_pack_header(pack_id, size)
            except (IntegrityError, StorageError, ValueError) as e:
                if on_problem is not None:
                    on_problem(f"pack {pack_id}: unindexed and unreadable: {e}")
                continue
            head = self.storage.head(pack_key(pack_id)) if self.storage.supports_lock else None
            index.add_pack(
                pack_id,
                PackInfo(
                    size,
                    head.version_id if head else None,
                    head.retain_until if head else None,
                    blobs,
                ),
            )
            index.adopted.append(pack_id)
            adopted.append(pack_id)
        return adopted

    def index_doc(
        self,
        packs: dict[str, PackInfo],
        *,
        extended: dict[str, dt.datetime] | None = None,
        supersedes: Iterable[str] = (),
    ) -> dict[str, Any]:
        return {
            "created": iso(utcnow()) + f"#{time.monotonic_ns()}",
            "packs": {
                pid: {
                    "size": p.size,
                    "version_id": p.version_id,
                    "retain_until": iso(p.retain_until) if p.retain_until else None,
                    "blobs": [list(b) for b in p.blobs],
                }
                for pid, p in packs.items()
            },
            "extended": {pid: iso(u) for pid, u in (extended or {}).items()},
            "supersedes": sorted(supersedes),
        }

    # --- snapshots --------------------------------------------------------------------------

    def list_snapshots(
        self, *, include_forgotten: bool = False, problems: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The readable snapshots, oldest first. With `problems`, a manifest that does not
        authenticate (or vanished meanwhile) is named there and the walk goes on; without, it
        raises."""
        forgotten = (
            set()
            if include_forgotten
            else {o.key.rsplit("/", 1)[-1] for o in self.storage.list_objects("forgotten/")}
        )
        out = []
        for obj in self.storage.list_objects("snapshots/"):
            sid = obj.key.rsplit("/", 1)[-1]
            if sid in forgotten:
                continue
            try:
                doc = self.get_sealed(obj.key, b"snapshot")
            except (IntegrityError, NotFound) as e:
                if problems is None:
                    raise
                problems.append(f"snapshot {sid}: unreadable, skipped: {e}")
                continue
            doc["id"] = sid
            out.append(doc)
        return sorted(out, key=lambda s: (s["time"], s["id"]))

    def get_snapshot(self, sid: str) -> dict[str, Any]:
        if len(sid) < 64:
            matches = [
                o.key
                for o in self.storage.list_objects("snapshots/")
                if o.key.rsplit("/", 1)[-1].startswith(sid)
            ]
            if len(matches) != 1:
                raise RepositoryError(f"snapshot {sid!r}: {len(matches)} snapshots match")
            key = matches[0]
        else:
            key = f"snapshots/{sid}"
        try:
            doc = self.get_sealed(key, b"snapshot")
        except NotFound:
            raise RepositoryError(f"snapshot {sid!r} does not exist") from None
        doc["id"] = key.rsplit("/", 1)[-1]
        return doc  # type: ignore[no-any-return]

    # --- the head record ----------------------------------------------------------------------

    def write_head(
        self, snapshot_id: str, time_: str, until: dt.datetime | None = None
    ) -> PutResult:
        """After a snapshot is committed: which snapshot is the newest, in the next of a
        numbered series of heads (sealed, locked like the snapshot, never rewritten)."""
        sequence = max((n for n, _ in self._head_names()), default=0) + 1
        return self.put_sealed(
            "heads", b"head", {"sequence": sequence, "snapshot": snapshot_id, "time": time_},
            name=f"{sequence:012d}", until=until,
        )  # fmt: skip

    def _head_names(self) -> list[tuple[int, str]]:
        out = []
        for o in self.storage.list_objects("heads/"):
            name = o.key.rsplit("/", 1)[-1]
            if name.isdigit():
                out.append((int(name), o.key))
        return sorted(out)

    def head(self, problems: list[str] | None = None) -> dict[str, Any] | None:
        """The newest readable head record, or None in a repository that has none yet."""
        for sequence, key in reversed(self._head_names()):
            try:
                doc = self.get_sealed(key, b"head", content_named=False)
            except (IntegrityError, NotFound) as e:
                if problems is None:
                    raise
                problems.append(f"head record {sequence}: unreadable: {e}")
                continue
            if doc.get("sequence") != sequence:
                if problems is not None:
                    problems.append(f"head record {sequence}: names sequence "
                                    f"{doc.get('sequence')} (moved or replaced)")  # fmt: skip
                continue
            return dict(doc)
        return None

    def head_problems(self, snapshots: list[dict[str, Any]]) -> list[str]:
        """What the head record says is missing from `snapshots` (the readable ones): the
        newest snapshot deleted, or the repository rolled back to an earlier state."""
        problems: list[str] = []
        head = self.head(problems)
        if head is None:
            return problems
        ids = {s["id"] for s in snapshots}
        forgotten = {o.key.rsplit("/", 1)[-1] for o in self.storage.list_objects("forgotten/")}
        if head["snapshot"] not in ids and head["snapshot"] not in forgotten:
            problems.append(
                f"the head record (number {head['sequence']}) names snapshot "
                f"{head['snapshot']} of {head['time']} as the newest, and it is missing: "
                "deleted, or the repository was rolled back"
            )
        return problems

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(self, purpose: str, *, attempts: int = 3, wait: float = 2.0) -> str:
        """An exclusive lease on the repository. Leases are objects (the writer role cannot
        delete), so a lease ends with a `.released` marker or by expiring. Any other live lease
        makes this one back off: safe whatever the clocks of the hosts say. A lease left by a
        process of this host that no longer runs (a crash, a power cut) is stale, not live."""
        others: list[dict[str, Any]] = []
        for attempt in range(attempts):
            now = utcnow()
            name = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(6)}"
            body = {"purpose": purpose, "host": socket.gethostname(), "pid": os.getpid(),
                    "process_start": _process_start(os.getpid()), "created": iso(now),
                    "expires": iso(now + dt.timedelta(seconds=LEASE_SECONDS))}  # fmt: skip
            self.storage.put(f"locks/{name}", self.key.seal_json(body, b"lease"),
                             retain_until=None, if_none_match=True)  # fmt: skip
            _HELD.add(name)
            try:
                others = self.live_leases(exclude=name)
            except BaseException:
                self.release_lease(name)
                raise
            if not others:
                return name
            self.release_lease(name)
            if attempt + 1 < attempts:
                time.sleep(wait * (1 + secrets.randbelow(100) / 100))
        holders = ", ".join(f"{o['purpose']} by {o['host']} pid {o['pid']} since {o['created']}"
                            for o in others)  # fmt: skip
        raise Busy(f"{self.storage.url}: the repository is in use ({holders}); "
                   "try again when it ends, or wait for the lease to expire")  # fmt: skip

    def live_leases(self, exclude: str | None = None) -> list[dict[str, Any]]:
        objs = self.storage.list_objects("locks/")
        released = {o.key[: -len(".released")] for o in objs if o.key.endswith(".released")}
        now = utcnow()
        live = []
        for o in objs:
            if o.key.endswith(".released") or o.key in released or o.key == f"locks/{exclude}":
                continue
            try:
                doc = self.key.open_json(self.storage.get(o.key), b"lease", o.key)
            except (IntegrityError, NotFound):
                continue
            if parse_iso(doc["expires"]) > now and not _stale(o.key.split("/", 1)[1], doc):
                live.append(doc)
        return live

    def ended_leases(self, exclude: str | None = None) -> list[str]:
        """Leases no run holds: released, expired (LEASE_SECONDS after their start, far beyond
        any run; a stopped clock cannot make a live one look expired to its own host, which
        checks the process instead), or left by a process of this host that is gone.
        A lease that does not authenticate is left for an operator to look at."""
        objs = self.storage.list_objects("locks/")
        released = {o.key[: -len(".released")] for o in objs if o.key.endswith(".released")}
        now = utcnow()
        out = []
        for o in objs:
            if o.key.endswith(".released") or o.key == f"locks/{exclude}":
                continue
            name = o.key.split("/", 1)[1]
            if o.key in released:
                out.append(name)
                continue
            try:
                doc = self.key.open_json(self.storage.get(o.key), b"lease", o.key)
            except (IntegrityError, NotFound):
                continue
            if parse_iso(doc["expires"]) <= now or _stale(name, doc):
                out.append(name)
        return sorted(out)

    def release_lease(self, name: str) -> None:
        _HELD.discard(name)
        # Best effort: if this write fails too, the lease is stale (its process ends) or expires.
        with contextlib.suppress(Exception):
            self.storage.put(f"locks/{name}.released", b"", retain_until=None, if_none_match=True)


_HELD: set[str] = set()  # leases this process holds now


def _process_start(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _stale(name: str, doc: dict[str, Any]) -> bool:
    """A lease of this host whose process is gone (or is this process, which no longer holds
    it): the process start time tells a reused PID apart."""
    if doc.get("host") != socket.gethostname():
        return False
    pid = int(doc.get("pid", 0))
    if pid == os.getpid():
        return name not in _HELD
    start = _process_start(pid)
    return not start or start != doc.get("process_start", start)


class PackWriter:
    """Collects sealed blobs into packs of about `pack_size` and uploads them in the
    background (two uploads in flight), so chunking and uploading overlap."""

    def __init__(
        self,
        repo: Repository,
        until: dt.datetime | None,
        on_upload: Callable[[str, PackInfo, PutResult], None],
    ) -> None:
        self.repo = repo
        self.until = until
        self.on_upload = on_upload
        self._buf: list[bytes] = []
        self._blobs: list[tuple[str, int, int, int]] = []
        self._size = 0
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pack-upload")
        self._pending: list[Future[None]] = []

    def add(self, blob_id: bytes, sealed: bytes, raw_length: int) -> None:
        self._blobs.append((blob_id.hex(), self._size, len(sealed), raw_length))
        self._buf.append(sealed)
        self._size += len(sealed)
        if self._size >= self.repo.config.pack_size:
            self.flush()

    def flush(self) -> None:
        if not self._blobs:
            return
        header = self.repo.key.seal_json([list(b) for b in self._blobs], b"pack-header")
        data = b"".join([*self._buf, header, struct.pack("<I", len(header))])
        blobs = self._blobs
        self._buf, self._blobs, self._size = [], [], 0
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._upload, data, blobs))

    def _upload(self, data: bytes, blobs: list[tuple[str, int, int, int]]) -> None:
        pack_id = hashlib.sha256(data).hexdigest()
        try:
            result = self.repo.storage.put(
                pack_key(pack_id), data, retain_until=self.until, if_none_match=True
            )
        except AlreadyExists:  # the same pack, uploaded by an interrupted run
            head = self.repo.storage.head(pack_key(pack_id))
            result = PutResult(
                pack_key(pack_id), len(data), pack_id, head.version_id, head.retain_until
            )
        self.on_upload(
            pack_id, PackInfo(len(data), result.version_id, result.retain_until, blobs), result
        )

    def close(self) -> None:
        self.flush()
        try:
            for f in self._pending:
                f.result()
        finally:
            self._pool.shutdown(wait=True)
            self._pending = []
