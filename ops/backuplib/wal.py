"""Continuous archiving of PostgreSQL's write-ahead log into the repository, for
point-in-time recovery (FORMAT.md, "WAL archive").

PostgreSQL hands each finished WAL segment (and each timeline history file) to
`archive_command`; `push` seals it under the repository's key, compressed, as the object
`wal/<system identifier>/<file name>`, Object-Locked like every other object. During recovery
`restore_command` asks for files by name; `fetch` writes them back. The system identifier
(from the cluster's pg_control) keeps apart the archives of different clusters: a freshly
initialised cluster on a replacement host never writes over the lost cluster's segments, which
its recovery still needs.

PostgreSQL's contract, which these functions keep:
- push succeeds only once the file is stored; pushing a file already stored with the same
  content succeeds again (an archiver restarted after a crash), with other content it fails;
- fetch of a file the archive does not hold is the normal end of recovery (exit 1); any other
  failure must stop recovery instead of ending it early (exit FETCH_FAILED, which PostgreSQL
  treats like a shell error: FATAL, the operator looks).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ops.backuplib.crypto import IntegrityError
from ops.backuplib.repository import FLAG_RAW, FLAG_ZSTD, Repository, RepositoryError
from ops.backuplib.storage import AlreadyExists, NotFound

PREFIX = "wal"
# A segment (timeline, log, segment: 24 hex digits), possibly partial, a backup history file,
# or a timeline history file. Nothing else is archived, and no other name is fetched.
NAME = re.compile(r"^(?:[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$")
MAX_FILE = 1 << 30  # the largest WAL segment PostgreSQL can be built with
FETCH_FAILED = 126  # > 125: PostgreSQL aborts recovery rather than taking it as the end


class WalError(RepositoryError):
    pass


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise WalError(f"{name!r} is not a WAL segment or history file name")
    return name


def system_identifier(data_dir: Path) -> str:
    """The cluster's identifier: the first 8 bytes of global/pg_control (native byte order,
    as the server wrote them)."""
    path = data_dir / "global" / "pg_control"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise WalError(f"cannot read the cluster's identifier from {path}: {e.strerror}") from e
    if len(head) != 8:
        raise WalError(f"{path}: too short to hold the cluster's identifier")
    return str(struct.unpack("=Q", head)[0])


def check_system_id(text: str) -> str:
    if not text.isdigit() or len(text) > 20:
        raise WalError(f"--system-id {text!r}: expected the cluster's identifier (digits)")
    return text


def key_of(system_id: str, name: str) -> str:
    return f"{PREFIX}/{check_system_id(system_id)}/{check_name(name)}"


def _aad(system_id: str, name: str) -> bytes:
    # The object's own name: a segment moved under another name or cluster does not open.
    return f"wal:{system_id}/{name}".encode()


def _seal(repo: Repository, system_id: str, name: str, data: bytes) -> bytes:
    compressed = repo._zstd()[0].compress(data)
    payload = (bytes([FLAG_ZSTD]) + compressed) if len(compressed) < len(data) else (
        bytes([FLAG_RAW]) + data)  # fmt: skip
    return repo.key.seal(payload, _aad(system_id, name))


def _open(repo: Repository, system_id: str, name: str, sealed: bytes) -> bytes:
    where = f"{repo.storage.url}/{key_of(system_id, name)}"
    payload = repo.key.open(sealed, _aad(system_id, name), where)
    if payload[0] == FLAG_ZSTD:
        return repo._zstd()[1].decompress(payload[1:], max_output_size=MAX_FILE)
    return payload[1:]


@dataclass
class Pushed:
    key: str
    size: int
    stored: int
    already: bool


def push(repo: Repository, path: Path, system_id: str) -> Pushed:
    name = check_name(path.name)
    key = key_of(system_id, name)
    size = path.stat().st_size
    if size > MAX_FILE:
        raise WalError(f"{path}: {size} bytes, larger than any WAL file")
    data = path.read_bytes()
    sealed = _seal(repo, system_id, name, data)
    try:
        repo.storage.put(key, sealed, retain_until=repo.retain_until(), if_none_match=True)
    except AlreadyExists:
        try:
            stored = _open(repo, system_id, name, repo.storage.get(key))
        except IntegrityError as e:
            raise WalError(f"{key} is already archived and does not authenticate: {e}") from e
        if stored != data:
            raise WalError(
                f"{key} is already archived with other content; refusing to replace it "
                "(two clusters with one identifier, or a damaged pg_wal)"
            ) from None
        return Pushed(key, len(data), 0, True)
    return Pushed(key, len(data), len(sealed), False)


def fetch(repo: Repository, system_id: str, name: str, dest: Path) -> int:
    """Writes the archived file to dest (via a temporary name); NotFound when the archive does
    not hold it."""
    key = key_of(system_id, name)
    data = _open(repo, system_id, name, repo.storage.get(key))
    tmp = dest.with_name(f".{dest.name}.fetching")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return len(data)


SEGMENT = re.compile(r"^[0-9A-F]{24}$")
PREFETCH_AHEAD = 32


def following(name: str, segment_size: int, count: int) -> list[str]:
    """The `count` segment names after `name` on its timeline (a log file holds
    0x100000000 / segment_size segments)."""
    if not SEGMENT.match(name) or segment_size <= 0 or (1 << 32) % segment_size:
        return []
    per_log = (1 << 32) // segment_size
    tli, log, seg = int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16)
    out = []
    for _ in range(count):
        seg += 1
        if seg >= per_log:
            log, seg = log + 1, 0
        out.append(f"{tli:08X}{log:08X}{seg:08X}")
    return out


def prefetch(repo: Repository, system_id: str, names: list[str], spool: Path) -> int:
    """The named segments fetched in parallel into `spool` (each written under a temporary
    name, then renamed), those the archive does not hold yet skipped; returns how many came.
    A later restore_command takes a spooled segment with a plain `mv`, no process of ours."""
    from concurrent.futures import ThreadPoolExecutor

    spool.mkdir(mode=0o700, exist_ok=True)
    wanted = [n for n in names if not (spool / n).exists()]

    def one(name: str) -> int:
        try:
            fetch(repo, system_id, name, spool / name)
        except NotFound:
            return 0
        return 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        return sum(pool.map(one, wanted))


def restore_command(fetch_command: list[str], system_id: str, spool: str) -> str:
    """PostgreSQL's restore_command (run by its shell in the data directory): a spooled
    segment is moved into place; anything else goes to `wal-fetch`, which also spools the
    segments that follow. A failed move stops recovery (126) rather than ending it."""
    import shlex

    fetch = shlex.join([*fetch_command, "wal-fetch", "--system-id", system_id,
                        "--spool", spool])  # fmt: skip
    spooled = shlex.quote(spool) + "/%f"
    return (f'if [ -f {spooled} ]; then mv -f {spooled} "%p" || exit {FETCH_FAILED}; '
            f'else {fetch} %f "%p"; fi')  # fmt: skip


@dataclass
class ArchiveState:
    system_id: str
    files: int
    segments: int
    first: str | None
    last: str | None
    timelines: list[int]


def state(repo: Repository) -> list[ArchiveState]:
    """What the archive holds, per cluster."""
    by_system: dict[str, list[str]] = {}
    for obj in repo.storage.list_objects(f"{PREFIX}/"):
        parts = obj.key.split("/")
        if len(parts) == 3 and NAME.match(parts[2]):
            by_system.setdefault(parts[1], []).append(parts[2])
    out = []
    for system_id, files in sorted(by_system.items()):
        segments = sorted(n for n in files if len(n) == 24)
        out.append(
            ArchiveState(
                system_id,
                len(files),
                len(segments),
                segments[0] if segments else None,
                segments[-1] if segments else None,
                sorted({int(n[:8], 16) for n in files}),
            )
        )
    return out


__all__ = [
    "FETCH_FAILED",
    "NotFound",
    "WalError",
    "check_name",
    "fetch",
    "push",
    "state",
    "system_identifier",
]
