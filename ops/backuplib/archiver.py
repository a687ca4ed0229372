"""Backup, restore, verify and prune: what the CLI (ops/backup.py) and the tests call."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import functools
import hashlib
import json
import math
import os
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ops.backuplib.crypto import IntegrityError
from ops.backuplib.progress import Progress
from ops.backuplib.repository import (
    Index,
    PackInfo,
    PackWriter,
    Repository,
    RepositoryError,
    check_lock_configuration,
    iso,
    pack_key,
    parse_iso,
    utcnow,
)
from ops.backuplib.retention import RetentionPolicy, decide
from ops.backuplib.sources import (
    DumpTransaction,
    Entry,
    SourceSpec,
    Stream,
    base_backup_stream,
    postgres_streams,
    safe_target,
    walk_files,
)
from ops.backuplib.storage import NotFound, PutResult, StorageError

PROGRAM = "claims-dc-backup 1"
SEGMENT_MAX = 8 << 20  # one ranged GET: several in flight beat one long one
RESTORE_PREFETCH = 8  # ranged GETs in flight while restoring
SEGMENT_GAP = 1 << 20


# --- immutability preconditions -------------------------------------------------------------


# --- backup ---------------------------------------------------------------------------------


@dataclass
class Stats:
    logical: int = 0
    new_raw: int = 0
    stored: int = 0
    chunks: int = 0
    new_chunks: int = 0


class _Ingest:
    """Chunks streams and files into blobs, sealing new ones on two threads."""

    def __init__(self, repo: Repository, index: Index, writer: PackWriter, prog: Progress) -> None:
        self.repo, self.index, self.writer, self.prog = repo, index, writer, prog
        self.pending: set[bytes] = set()
        self.referenced_packs: set[str] = set()
        self.stats = Stats()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="seal")
        self._sealing: list[tuple[bytes, Future[tuple[bytes, int]]]] = []

    def _drain(self, keep: int) -> None:
        while len(self._sealing) > keep:
            blob_id, fut = self._sealing.pop(0)
            sealed, raw = fut.result()
            self.stats.stored += len(sealed)
            self.writer.add(blob_id, sealed, raw)

    def chunks_of(self, chunks: Iterator[memoryview]) -> tuple[list[str], int, str]:
        """The chunks' blob IDs, the total size and the content's SHA-256 (which restores
        and the restore playbook check files against)."""
        ids, size, digest = [], 0, hashlib.sha256()
        for view in chunks:
            n = len(view)
            digest.update(view)
            blob_id = self.repo.key.blob_id(view)
            size += n
            self.stats.logical += n
            self.stats.chunks += 1
            ids.append(blob_id.hex())
            ref = self.index.blobs.get(blob_id)
            if ref is not None:
                self.referenced_packs.add(ref.pack)
            elif blob_id not in self.pending:
                self.pending.add(blob_id)
                self.stats.new_raw += n
                self.stats.new_chunks += 1
                data = bytes(view)
                self._sealing.append(
                    (blob_id, self._pool.submit(self.repo.seal_blob, blob_id, data))
                )
                self._drain(4)
            self.prog.advance(n)
        return ids, size, digest.hexdigest()

    def finish(self) -> None:
        try:
            self._drain(0)
        finally:
            self._pool.shutdown(wait=True)

    def abandon(self) -> None:
        self._sealing.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)


@functools.cache
def _bounded_malloc() -> None:
    """Blobs and packs are megabytes each, made and freed on several threads. glibc raises its
    mmap threshold after each large free and gives each thread an arena, so freed blocks stay
    resident (a 2 GiB file once peaked at 363 MiB); a fixed 1 MiB threshold and two arenas
    return them to the system (about 140 MiB). Elsewhere than glibc this does nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(_M_ARENA_MAX, 2)


def backup(
    repo: Repository,
    specs: list[SourceSpec],
    *,
    tags: list[str] | None = None,
    quiet: bool = False,
    hostname: str | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One snapshot of `specs`, committed by the protocol in FORMAT.md. Returns the report."""
    # Long on purpose: one commit protocol (lease, packs, index, snapshot last), kept in one place
    # so its order can be read and checked at once; the steps around it are helpers
    # Longer than the others on purpose: the commit protocol's seven steps, in their order, in
    # one place, so that a reader can check the order that makes an interruption harmless.
    _bounded_malloc()
    started, t0 = time.monotonic(), at or utcnow()
    lock_state = check_lock_configuration(repo.storage, repo.config.lock_days)
    prog = Progress("backup", quiet=quiet)
    lease = repo.acquire_lease("backup")
    try:
        swept = _sweep(repo, prog)
        problems: list[str] = []
        index = repo.load_index(on_problem=problems.append)
        if problems:
            raise RepositoryError(
                "the repository needs attention before a backup: " + "; ".join(problems)
            )
        adopted = list(index.adopted)
        if adopted:
            prog.note(f"adopting {len(adopted)} pack(s) uploaded by an interrupted run")
        until = repo.retain_until()  # from the real clock, whatever `at` says
        new_packs: dict[str, PackInfo] = {}
        written: list[PutResult] = []
        guard = threading.Lock()

        def on_upload(pack_id: str, info: PackInfo, result: PutResult) -> None:
            with guard:
                new_packs[pack_id] = info
                written.append(result)

        writer = PackWriter(repo, until, on_upload)
        ingest = _Ingest(repo, index, writer, prog)
        sources_doc: list[dict[str, Any]] = []
        try:
            for spec in specs:
                prog.note(f"source {spec.name} ({spec.kind})")
                entries, extra = _ingest_source(spec, ingest)
                sources_doc.append(
                    {
                        "name": spec.name,
                        "kind": spec.kind,
                        "paths": spec.paths,
                        "database": spec.database,
                        "entries": entries,
                        **extra,
                    }
                )
            ingest.finish()
        finally:
            ingest.abandon()  # after a failure: no sealing thread outlives the run
            writer.close()
        stats = ingest.stats
        # Older packs this snapshot needs must stay locked as long as the snapshot itself.
        extended = _extend_locks(repo, index, ingest.referenced_packs | set(adopted), until)
        index_packs = dict(new_packs)
        for pack_id in adopted:
            index_packs[pack_id] = index.packs[pack_id]
        if index_packs or extended:
            written.append(
                repo.put_sealed(
                    "index", b"index", repo.index_doc(index_packs, extended=extended), until=until
                )
            )
        snapshot = {
            "program": PROGRAM,
            "time": iso(t0),
            "hostname": hostname or socket.gethostname(),
            "tags": tags or [],
            "sources": sources_doc,
            "retain_until": iso(until) if until else None,
            "stats": {
                "logical": stats.logical,
                "new": stats.new_raw,
                "stored": stats.stored,
                "chunks": stats.chunks,
                "new_chunks": stats.new_chunks,
            },
        }
        snap = repo.put_sealed("snapshots", b"snapshot", snapshot, until=until)
        written.append(snap)
        # Last: a missing head only means an older head names an older snapshot, which exists.
        written.append(repo.write_head(snap.key.rsplit("/", 1)[-1], iso(t0), until))
        prog.finish()
        return {
            "command": "run",
            "ok": True,
            "repository": repo.storage.url,
            "repository_id": repo.config.repo_id,
            "snapshot": snap.key.rsplit("/", 1)[-1],
            "time": iso(t0),
            "hostname": snapshot["hostname"],
            "removed_temporaries": swept,
            "sources": [_source_summary(s) for s in sources_doc],
            "sizes": {
                "logical": stats.logical,
                "new": stats.new_raw,
                "stored": sum(r.size for r in written),
            },
            "chunks": {"total": stats.chunks, "new": stats.new_chunks},
            "adopted_packs": adopted,
            "extended_locks": len(extended),
            "objects": [_object_row(r) for r in written],
            "retain_until": iso(until) if until else None,
            "key": {"kind": repo.key_kind, "kms_key_id": repo.kms_key_id},
            **lock_state,
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    finally:
        repo.release_lease(lease)


def _extend_locks(repo: Repository, index: Index, packs: set[str],
                  until: dt.datetime | None) -> dict[str, dt.datetime]:  # fmt: skip
    """Older packs a snapshot needs stay locked as long as the snapshot itself (step 4)."""
    extended: dict[str, dt.datetime] = {}
    if until is None:
        return extended
    for pack_id in sorted(packs):
        info = index.packs[pack_id]
        if info.retain_until is None or info.retain_until < until:
            repo.storage.extend_retention(pack_key(pack_id), info.version_id, until)
            extended[pack_id] = until
    return extended


def _source_summary(source: dict[str, Any]) -> dict[str, Any]:
    entries = source["entries"]
    return {"name": source["name"], "kind": source["kind"], "entries": len(entries),
            "bytes": sum(e.get("size", 0) for e in entries)}  # fmt: skip


def _object_row(r: PutResult) -> dict[str, Any]:
    return {"key": r.key, "version_id": r.version_id, "sha256": r.sha256, "size": r.size,
            "retain_until": iso(r.retain_until) if r.retain_until else None}  # fmt: skip


def _ingest_source(
    spec: SourceSpec, ingest: _Ingest
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The source's entries, and what the snapshot records about it beyond them."""
    entries: list[dict[str, Any]] = []
    if spec.kind == "postgres":
        session = DumpTransaction(spec)
        try:
            streams = postgres_streams(spec, session.snapshot)
            try:
                for entry, stream in streams:
                    entries.append(_ingest_stream(entry, stream, ingest))
            finally:
                for _, stream in streams:
                    stream.abort()
        finally:
            session.close()
        extra: dict[str, Any] = {"tables": session.tables, "system_identifier": session.system_id}
        if spec.base_backup:
            extra["wal_start"] = session.wal_position
            entry, stream = base_backup_stream(spec)
            try:
                entries.append(_ingest_stream(entry, stream, ingest))
            finally:
                stream.abort()
        return entries, extra
    for entry, path in walk_files(spec):
        d = entry.as_dict()
        if entry.type == "file":
            ids, size, digest = ingest.chunks_of(ingest.repo.chunker.file(path))
            d.update(size=size, chunks=ids, sha256=digest)
        entries.append(d)
    return entries, {}


def _ingest_stream(entry: Entry, stream: Stream, ingest: _Ingest) -> dict[str, Any]:
    ids, size, digest = ingest.chunks_of(ingest.repo.chunker.stream(stream.stdout))
    stream.finish()
    d = entry.as_dict()
    d.update(size=size, chunks=ids, sha256=digest, mtime=time.time())
    return d


# --- reading --------------------------------------------------------------------------------


class BlobReader:
    """Reads a sequence of blobs in order: neighbouring blobs of a pack in one ranged GET,
    a few GETs in flight; every blob is authenticated and its ID checked before use."""

    def __init__(self, repo: Repository, index: Index, prefetch: int = 4) -> None:
        self.repo, self.index = repo, index
        self.pool = ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="fetch")
        self.prefetch = prefetch

    def _segments(
        self, ids: list[str], where: str
    ) -> list[tuple[str, int, int, list[tuple[bytes, int, int, int]]]]:
        segs: list[tuple[str, int, int, list[tuple[bytes, int, int, int]]]] = []
        for hex_id in ids:
            blob_id = bytes.fromhex(hex_id)
            ref = self.index.blobs.get(blob_id)
            if ref is None:
                raise IntegrityError(
                    f"{where}: blob {hex_id[:16]} is in no index and in no pack stored "
                    "(its pack is missing; `verify` names what else it affects)"
                )
            end = ref.offset + ref.length
            if segs:
                pack, start, stop, items = segs[-1]
                if (
                    pack == ref.pack
                    and start <= ref.offset
                    and ref.offset - stop <= SEGMENT_GAP
                    and max(stop, end) - start <= SEGMENT_MAX
                ):
                    items.append((blob_id, ref.offset, ref.length, ref.raw_length))
                    segs[-1] = (pack, start, max(stop, end), items)
                    continue
            segs.append(
                (ref.pack, ref.offset, end, [(blob_id, ref.offset, ref.length, ref.raw_length)])
            )
        return segs

    def _fetch(
        self, seg: tuple[str, int, int, list[tuple[bytes, int, int, int]]], where: str
    ) -> list[bytes]:
        pack, start, stop, items = seg
        key = pack_key(pack)
        try:
            data = self.repo.storage.get(key, start, stop - 1)
        except NotFound:
            raise IntegrityError(f"{where}: pack {pack} is missing") from None
        if len(data) != stop - start:
            raise IntegrityError(
                f"{where}: pack {pack} is truncated (asked {stop - start} bytes "
                f"at {start}, got {len(data)})"
            )
        out = []
        for blob_id, off, length, raw in items:
            out.append(
                self.repo.open_blob(
                    blob_id,
                    memoryview(data)[off - start : off - start + length],
                    raw,
                    f"{where}: pack {pack}",
                )
            )
        return out

    def read(self, ids: list[str], where: str) -> Iterator[bytes]:
        for kind, _, payload in self.read_files([(0, ids, where)]):
            if isinstance(payload, IntegrityError):
                raise payload
            if kind == "data":
                assert isinstance(payload, bytes)
                yield payload

    def read_files(
        self, files: list[tuple[int, list[str], str]]
    ) -> Iterator[tuple[str, int, bytes | IntegrityError | None]]:
        """The blobs of many files, in order, with the ranged GETs of later files already in
        flight while earlier ones are written (a restore of many small files is otherwise one
        round trip per file). Per file: ("data", n, bytes) for each blob, then ("end", n, None);
        or ("error", n, IntegrityError) once, when one of its blobs cannot be had, after which
        the rest of that file is skipped and the next goes on."""
        plan: list[tuple[int, str, Any]] = []  # (file, where, segment | IntegrityError)
        for n, ids, where in files:
            try:
                plan += [(n, where, seg) for seg in self._segments(ids, where)]
            except IntegrityError as e:
                plan.append((n, where, e))
            plan.append((n, where, None))  # the end of the file
        pending: deque[Future[list[bytes]] | None] = deque()
        nxt = 0
        failed: set[int] = set()

        def fill() -> None:
            nonlocal nxt
            in_flight = sum(1 for f in pending if f is not None)
            while nxt < len(plan) and in_flight < self.prefetch:
                _, where, item = plan[nxt]
                if isinstance(item, tuple):
                    pending.append(self.pool.submit(self._fetch, item, where))
                    in_flight += 1
                else:
                    pending.append(None)
                nxt += 1

        for n, _where, item in plan:
            fill()
            future = pending.popleft()
            if n in failed:
                if future is not None:
                    future.cancel()
                continue
            if isinstance(item, IntegrityError):
                failed.add(n)
                yield "error", n, item
                continue
            if item is None:
                yield "end", n, None
                continue
            assert future is not None
            try:
                blobs = future.result()
            except IntegrityError as e:
                failed.add(n)
                yield "error", n, e
                continue
            for data in blobs:
                yield "data", n, data

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def pipe_entry(
    repo: Repository, index: Index, entry: dict[str, Any], where: str, sink: IO[bytes]
) -> str:
    """An entry's content written into `sink` (a child's stdin, closed at the end); returns
    its SHA-256. A child that stops reading early is not an error here: its exit code and
    stderr say why."""
    digest = hashlib.sha256()
    reader = BlobReader(repo, index)
    try:
        for data in reader.read(entry.get("chunks", []), where):
            digest.update(data)
            sink.write(data)
    except BrokenPipeError:
        pass
    finally:
        reader.close()
        with contextlib.suppress(BrokenPipeError):
            sink.close()
    return digest.hexdigest()


def _sweep(repo: Repository, prog: Progress) -> list[str]:
    """Temporary files of writes a killed run left (local repositories), removed and said."""
    sweep = getattr(repo.storage, "sweep_temporaries", None)
    removed: list[str] = sweep() if sweep is not None else []
    if removed:
        prog.note(f"removed {len(removed)} temporary file(s) of interrupted writes")
    return removed


def select_snapshot(
    repo: Repository,
    snapshot: str | None,
    as_of: dt.datetime | None,
    problems: list[str] | None = None,
) -> dict[str, Any]:
    """The snapshot asked for; for latest or --as-of, the newest readable one, any unreadable
    manifest named in `problems` (when given) instead of stopping the walk."""
    if snapshot and snapshot != "latest":
        return repo.get_snapshot(snapshot)
    snaps = repo.list_snapshots(problems=problems)
    if problems is not None and as_of is None:
        problems.extend(repo.head_problems(snaps))
    if as_of is not None:
        snaps = [s for s in snaps if parse_iso(s["time"]) <= as_of]
    if not snaps:
        when = f" at or before {iso(as_of)}" if as_of else ""
        raise RepositoryError(f"{repo.storage.url}: no snapshot{when}")
    return snaps[-1]


def restore(
    repo: Repository,
    target: Path,
    *,
    snapshot: str | None = None,
    as_of: dt.datetime | None = None,
    source: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Writes a snapshot (or one of its sources) under target/<source>/. Each file is written
    to a temporary name and renamed only once every blob of it has authenticated, so a damaged
    repository never leaves wrong data behind under a real name."""
    # Long on purpose: each file is written under a temporary name and renamed only once all its
    # blobs authenticated; the loop holding that promise stays whole
    started = time.monotonic()
    failed: list[str] = []
    snap = select_snapshot(repo, snapshot, as_of, failed)
    sources = [s for s in snap["sources"] if source is None or s["name"] == source]
    if not sources:
        names = [s["name"] for s in snap["sources"]]
        raise RepositoryError(
            f"snapshot {snap['id'][:12]} has no source {source!r} (it has {names})"
        )
    # Packs a run uploaded but did not index yet are read too (their headers say what they
    # hold); nothing is written to the repository.
    index = repo.load_index(adopt_orphans=True, on_problem=failed.append)
    total = sum(e.get("size", 0) for s in sources for e in s["entries"])
    prog = Progress("restore", total, quiet=quiet)
    reader = BlobReader(repo, index, prefetch=RESTORE_PREFETCH)
    am_root = os.geteuid() == 0
    written = 0
    dirs: list[tuple[Path, dict[str, Any]]] = []
    regular: list[tuple[Path, dict[str, Any], str]] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for src in sources:  # directories and links first, then every file in one stream
            base = target / src["name"]
            base.mkdir(exist_ok=True)
            for e in src["entries"]:
                path = safe_target(base, e["path"])
                if e["type"] == "dir":
                    path.mkdir(parents=True, exist_ok=True)
                    dirs.append((path, e))
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                if e["type"] == "symlink":
                    if path.is_symlink() or path.exists():
                        path.unlink()
                    os.symlink(e["target"], path)
                    continue
                regular.append((path, e, f"{src['name']}:{e['path']}"))
        wanted = [(n, e.get("chunks", []), where) for n, (_, e, where) in enumerate(regular)]
        current: tuple[int, Path, Any] | None = None  # file number, its temporary, the handle
        try:
            for kind, n, payload in reader.read_files(wanted):
                path, e, where = regular[n]
                if current is None or current[0] != n:
                    tmp = path.with_name(f".{path.name}.partial")
                    current = (n, tmp, open(tmp, "wb"))  # noqa: SIM115 - closed below
                _, tmp, handle = current
                if kind == "data":
                    assert isinstance(payload, bytes)
                    handle.write(payload)
                    prog.advance(len(payload), e["path"])
                    continue
                handle.close()
                current = None
                if kind == "error":
                    tmp.unlink(missing_ok=True)
                    failed.append(str(payload))
                    continue
                os.replace(tmp, path)
                _apply_meta(path, e, am_root)
                written += 1
        except BaseException as err:  # a full disk, a lost endpoint, an interrupt
            if current is not None:
                current[2].close()
                current[1].unlink(missing_ok=True)
            if isinstance(err, OSError) and current is not None:
                path, _, where = regular[current[0]]
                raise OSError(err.errno, f"restoring {where} to {path}: "
                              f"{err.strerror or err}") from err  # fmt: skip
            raise
        for path, e in reversed(dirs):
            _apply_meta(path, e, am_root)
    finally:
        reader.close()
    prog.finish()
    return {
        "command": "restore",
        "ok": not failed,
        "snapshot": snap["id"],
        "time": snap["time"],
        "target": str(target),
        "sources": [s["name"] for s in sources],
        # Where each source's roots came from: <target>/<source><root> goes back to <root>.
        "paths": {s["name"]: s.get("paths") or [] for s in sources},
        "files": written,
        "bytes": prog.done,
        "problems": failed,
        "duration_seconds": round(time.monotonic() - started, 3),
    }


def _apply_meta(path: Path, e: dict[str, Any], am_root: bool) -> None:
    if am_root and e.get("user"):
        # A user that does not exist on this host: root keeps the file.
        with contextlib.suppress(LookupError, PermissionError):
            shutil.chown(path, e["user"], e["group"])
    os.chmod(path, int(e.get("mode", 0o600)))
    if e.get("mtime"):
        os.utime(path, (e["mtime"], e["mtime"]))


# --- verify ---------------------------------------------------------------------------------


def verify(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: float | None = None,
    state_dir: Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    started = time.monotonic()
    problems: list[str] = []
    index = repo.load_index(adopt_orphans=False, on_problem=problems.append)
    stored = repo.list_packs()
    users: dict[str, list[str]] = {}
    snapshots = []
    for obj in repo.storage.list_objects("snapshots/"):
        sid = obj.key.rsplit("/", 1)[-1]
        try:
            snapshots.append((sid, repo.get_sealed(obj.key, b"snapshot")))
        except (IntegrityError, StorageError) as err:
            problems.append(f"snapshot {sid}: {err}")
    for sid, snap in snapshots:
        for src in snap["sources"]:
            for e in src["entries"]:
                for hex_id in e.get("chunks", []):
                    ref = index.blobs.get(bytes.fromhex(hex_id))
                    if ref is None:
                        problems.append(
                            f"snapshot {sid[:12]} {src['name']}:{e['path']}: blob "
                            f"{hex_id[:16]} is in no index"
                        )
                        break
                    users.setdefault(ref.pack, [])
                    label = f"{sid[:12]} {src['name']}:{e['path']}"
                    if label not in users[ref.pack][-1:]:
                        users[ref.pack].append(label)
    for pack_id, info in sorted(index.packs.items()):
        used_by = ", ".join(users.get(pack_id, [])[:3]) or "no snapshot"
        if pack_id not in stored:
            problems.append(f"pack {pack_id}: missing (needed by {used_by})")
        elif stored[pack_id] != info.size:
            problems.append(
                f"pack {pack_id}: {stored[pack_id]} bytes, the index says "
                f"{info.size} (truncated or replaced; needed by {used_by})"
            )
    unindexed = sorted(set(stored) - set(index.packs))
    problems.extend(repo.head_problems([{"id": sid} for sid, _ in snapshots]))
    for path, pid in getattr(repo.storage, "temporaries", list)():
        problems.append(f"temporary file {path} of an unfinished write (pid {pid}); the next "
                        "run or prune removes it once that process is gone")  # fmt: skip
    coverage: dict[str, Any] = {}
    if read_data:
        candidates = sorted(p for p in index.packs if p in stored)
        chosen, coverage = _choose_packs(repo, candidates, subset, state_dir)
        prog = Progress("verify", sum(stored[p] for p in chosen), quiet=quiet)
        for pack_id in chosen:
            problems.extend(_read_pack(repo, pack_id, index.packs[pack_id], users))
            prog.advance(stored[pack_id])
        prog.finish()
        _record_coverage(repo, chosen, coverage, state_dir)
    return {
        "command": "verify",
        "ok": not problems,
        "repository": repo.storage.url,
        "snapshots": len(snapshots),
        "packs": len(index.packs),
        "indexes": len(index.index_ids),
        "unindexed_packs": unindexed,
        "read_data": read_data,
        "coverage": coverage,
        "problems": problems,
        "duration_seconds": round(time.monotonic() - started, 3),
    }


def _read_pack(
    repo: Repository, pack_id: str, info: PackInfo, users: dict[str, list[str]]
) -> list[str]:
    used_by = ", ".join(users.get(pack_id, [])[:3]) or "no snapshot"
    try:
        data = repo.storage.get(pack_key(pack_id))
    except StorageError as e:
        return [f"pack {pack_id}: cannot be read: {e}"]
    if hashlib.sha256(data).hexdigest() != pack_id:
        return [
            f"pack {pack_id}: content does not match its SHA-256 name (corrupted; needed by "
            f"{used_by})"
        ]
    out = []
    for blob_hex, off, length, raw in info.blobs:
        try:
            repo.open_blob(
                bytes.fromhex(blob_hex),
                memoryview(data)[off : off + length],
                raw,
                f"pack {pack_id}",
            )
        except (IntegrityError, ValueError) as e:
            out.append(f"{e} (needed by {used_by})")
    return out


def _coverage_file(repo: Repository, state_dir: Path | None) -> Path | None:
    return state_dir / f"verify-coverage-{repo.config.repo_id}.json" if state_dir else None


def _choose_packs(
    repo: Repository, packs: list[str], subset: float | None, state_dir: Path | None
) -> tuple[list[str], dict[str, Any]]:
    """All packs, or the next `subset` percent not yet read in this coverage cycle."""
    if subset is None:
        return packs, {"cycle": None, "read_now": len(packs), "covered_percent": 100.0}
    path = _coverage_file(repo, state_dir)
    state: dict[str, Any] = {"cycle": 1, "done": []}
    if path and path.exists():
        state = json.loads(path.read_text())
    done = set(state["done"]) & set(packs)
    todo = [p for p in packs if p not in done]
    if not todo:
        state = {"cycle": state["cycle"] + 1, "done": []}
        done, todo = set(), list(packs)
    want = max(1, math.ceil(len(packs) * subset / 100)) if packs else 0
    return todo[:want], {"cycle": state["cycle"], "done_before": sorted(done), "total": len(packs)}


def _record_coverage(
    repo: Repository, chosen: list[str], coverage: dict[str, Any], state_dir: Path | None
) -> None:
    done = coverage.pop("done_before", None)
    if done is None:
        return
    covered = sorted(set(done) | set(chosen))
    total = coverage.pop("total")
    coverage.update(
        read_now=len(chosen),
        covered_percent=round(100.0 * len(covered) / total, 1) if total else 100.0,
    )
    path = _coverage_file(repo, state_dir)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cycle": coverage["cycle"], "done": covered}))


# --- prune ----------------------------------------------------------------------------------


def prune(
    repo: Repository,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Forget what the policy does not keep; delete only what nothing kept needs and no lock
    holds. Needs the maintenance role: the hosts' writer role cannot delete."""
    # Long on purpose: the commit protocol in the order that keeps it safe (forget markers, then
    # unreferenced objects lock permitting, then locks rolled on, then the new index); split, its
    # ordering would be spread over helpers that must not be called alone
    started = time.monotonic()
    now = now or utcnow()
    prog = Progress("prune", quiet=quiet)
    lease = None if dry_run else repo.acquire_lease("prune")
    try:
        swept = [] if dry_run else _sweep(repo, prog)
        unreadable: list[str] = []
        snaps = repo.list_snapshots(include_forgotten=True, problems=unreadable)
        if unreadable:
            # What an unreadable snapshot references is unknown: deleting anything could
            # take data it needs. Nothing changes until it is dealt with.
            return {"command": "prune", "dry_run": dry_run, "ok": False,
                    "problems": [*unreadable, "prune changed nothing: a snapshot it "
                                 "cannot read may need any pack"],
                    "duration_seconds": round(time.monotonic() - started, 3)}  # fmt: skip
        forgotten_ids = {o.key.rsplit("/", 1)[-1] for o in repo.storage.list_objects("forgotten/")}
        live = [s for s in snaps if s["id"] not in forgotten_ids]
        keep, forget, reasons = decide(live, policy)
        keep_ids = {s["id"] for s in keep}
        index = repo.load_index()
        needed: set[str] = set()
        for s in keep:
            for src in s["sources"]:
                for e in src["entries"]:
                    for hex_id in e.get("chunks", []):
                        ref = index.blobs.get(bytes.fromhex(hex_id))
                        if ref is not None:
                            needed.add(ref.pack)
        result: dict[str, Any] = {
            "command": "prune",
            "dry_run": dry_run,
            "policy": policy.as_dict(),
            "keep": [{"id": s["id"], "time": s["time"], "why": reasons[s["id"]]} for s in keep],
            "forget": [{"id": s["id"], "time": s["time"]} for s in forget],
            "deleted_snapshots": [],
            "held_by_lock": [],
            "deleted_packs": [],
            "deleted_indexes": [],
            "deleted_leases": [],
            "deleted_wal": 0,
            "wal_held_by_lock": 0,
            "removed_temporaries": swept,
            "extended_locks": 0,
        }
        wal_floor = _wal_floor(keep)
        unneeded_wal = [o.key for o in repo.storage.list_objects("wal/")
                        if _wal_unneeded(o.key, wal_floor)]  # fmt: skip
        result["wal_kept_from"] = wal_floor
        if dry_run:
            result["ok"] = True
            result["deleted_wal"] = len(unneeded_wal)  # would be, locks permitting
            return result
        for s in forget:
            repo.put_sealed(
                "forgotten",
                b"forget",
                {"snapshot": s["id"], "time": iso(now), "policy": policy.as_dict()},
                name=s["id"],
                until=None,
            )
        versions = repo.storage.list_versions("")
        by_key: dict[str, list[Any]] = {}
        for v in versions:
            by_key.setdefault(v.key, []).append(v)

        def delete_all(key: str, report: bool = True) -> bool:
            """Every version of `key`, if no lock holds any; False when one does."""
            vs = by_key.get(key, [])
            if repo.storage.supports_lock:
                for v in vs:
                    head = repo.storage.head(key, v.version_id)
                    if head.retain_until is not None and head.retain_until > now:
                        if report:
                            result["held_by_lock"].append(
                                {"key": key, "until": iso(head.retain_until)}
                            )
                        return False
            for v in vs:
                repo.storage.delete(key, v.version_id)
            return True

        for sid in sorted(forgotten_ids | {s["id"] for s in forget}):
            if sid in keep_ids:
                continue
            if delete_all(f"snapshots/{sid}"):
                result["deleted_snapshots"].append(sid)
        remaining: dict[str, PackInfo] = {}
        for pack_id, info in sorted(index.packs.items()):
            if pack_id in needed or not delete_all(pack_key(pack_id)):
                remaining[pack_id] = info
            else:
                result["deleted_packs"].append(pack_id)
            prog.advance(info.size)
        # Kept snapshots stay immutable for as long as they are kept: their packs' locks roll on.
        until = repo.retain_until(now)
        extended: dict[str, dt.datetime] = {}
        if until is not None:
            for pack_id in sorted(needed):
                info = remaining[pack_id]
                if info.retain_until is None or info.retain_until < until:
                    repo.storage.extend_retention(pack_key(pack_id), info.version_id, until)
                    extended[pack_id] = until
                    info.retain_until = until
        result["extended_locks"] = len(extended)
        if result["deleted_packs"] or extended or index.adopted or len(index.index_ids) > 1:
            repo.put_sealed(
                "index", b"index", repo.index_doc(remaining, supersedes=index.index_ids)
            )
            for old in index.index_ids:
                if delete_all(f"index/{old}"):
                    result["deleted_indexes"].append(old)
        for key in unneeded_wal:
            if delete_all(key, report=False):
                result["deleted_wal"] += 1
            else:
                result["wal_held_by_lock"] += 1
        # Ended leases go too, once the bucket's default lock lets them: released ones, and
        # leases no process holds any more (see Repository.ended_leases).
        for name in repo.ended_leases(exclude=lease):
            gone = [delete_all(k, report=False) for k in (f"locks/{name}",
                                                        f"locks/{name}.released")]  # fmt: skip
            if any(gone):
                result["deleted_leases"].append(name)
        prog.finish()
        result["ok"] = True
        result["duration_seconds"] = round(time.monotonic() - started, 3)
        return result
    finally:
        if lease:
            repo.release_lease(lease)


def _wal_floor(keep: list[dict[str, Any]]) -> dict[str, str]:
    """Per cluster, the oldest WAL position (log and segment, timeline aside) a kept base
    backup needs; a cluster with a kept base backup of unknown start keeps all its WAL."""
    floor: dict[str, str] = {}
    unknown: set[str] = set()
    for s in keep:
        for src in s["sources"]:
            system_id = src.get("system_identifier")
            if not system_id or not any(e["path"] == "base.tar" for e in src["entries"]):
                continue
            start = src.get("wal_start")
            if not isinstance(start, str) or len(start) != 24:
                unknown.add(system_id)
                continue
            floor[system_id] = min(floor.get(system_id, start[8:]), start[8:])
    return {k: v for k, v in floor.items() if k not in unknown}


def _wal_unneeded(key: str, floor: dict[str, str]) -> bool:
    """A segment (or backup history file) older than every kept base backup of its cluster.
    Timeline history files stay; so does the WAL of a cluster no kept base backup names (a
    cluster may be taking its first base backup)."""
    parts = key.split("/")
    if len(parts) != 3 or parts[1] not in floor or parts[2].endswith(".history"):
        return False
    name = parts[2]
    return len(name) >= 24 and name[:24].isalnum() and name[8:24] < floor[parts[1]]


def list_report(repo: Repository, problems: list[str] | None = None) -> list[dict[str, Any]]:
    snaps = repo.list_snapshots(problems=problems)
    if problems is not None:
        problems.extend(repo.head_problems(snaps))
    return [
        {
            "id": s["id"],
            "time": s["time"],
            "hostname": s["hostname"],
            "sources": [x["name"] for x in s["sources"]],
            "logical": s["stats"]["logical"],
            "new": s["stats"]["new"],
            "retain_until": s.get("retain_until"),
        }
        for s in snaps
    ]
