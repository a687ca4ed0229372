"""Bringing a live PostgreSQL back from the repository, two ways:

- `recover`: the cluster from a snapshot's base backup (pg_basebackup's tar), then the WAL
  archive replayed: to its end (the least loss), to a moment (`--to`), or only to the base
  backup's consistent point (a chosen snapshot). The replaced data directory is kept aside
  until the recovered cluster has been promoted; if recovery fails, it is put back.
- `load_dump`: a snapshot's pg_dump loaded into the live database as its owner, in one
  transaction, then its row counts checked against those the snapshot recorded.

Both refuse a database that holds rows unless told to replace it, and then say what they
would replace: the tables and their row counts.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.backuplib import wal
from ops.backuplib.archiver import pipe_entry
from ops.backuplib.repository import Repository, RepositoryError, iso, parse_iso, utcnow
from ops.backuplib.sources import COUNT_SQL, SourceSpec

# Tables whose rows are not data: a freshly migrated, empty database has them.
BOOKKEEPING = frozenset({"public.schema_migrations"})
RECOVERY_SETTINGS = (
    "restore_command",
    "recovery_target",
    "recovery_target_time",
    "recovery_target_action",
    "recovery_target_timeline",
)
# Segments fetched ahead during replay, relative to the data directory; pg_basebackup leaves
# out everything under pg_wal, so a spool never ends up in a base backup.
SPOOL = "pg_wal/claims-dc-prefetch"
ZONES = {"JST": "+09:00", "UTC": "+00:00", "Z": "+00:00"}


class RecoveryError(RepositoryError):
    pass


class Refused(RecoveryError):
    """The database holds data and replacing it was not asked for."""


def parse_moment(text: str) -> dt.datetime:
    """'2026-12-02 14:05 JST', '2026-12-02T05:05:00Z', '2026-12-02 14:05:30+09:00'. A time
    without a zone is refused: a recovery target must not depend on the host's TZ."""
    t = text.strip()
    m = re.match(r"^(.*?)\s*(JST|UTC|Z)$", t)
    if m:
        t = m[1] + ZONES[m[2]]
    try:
        moment = dt.datetime.fromisoformat(t.replace(" ", "T", 1))
    except ValueError:
        raise RecoveryError(
            f"{text!r}: expected a date and time with its zone, like '2026-12-02 14:05 JST'"
        ) from None
    if moment.tzinfo is None:
        raise RecoveryError(f"{text!r}: say which zone (JST, UTC or +09:00)")
    return moment.astimezone(dt.UTC)


@dataclass
class Cluster:
    """The live cluster: its data directory, how to start and stop it, how to query it."""

    data_dir: Path
    run_as: str
    bin_dir: Path
    options: list[str]  # psql's connection options (as the source has them)
    start: list[str]
    stop: list[str]
    log: Path | None = None
    deadline: float = 3600.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def _as_owner(self, argv: list[str]) -> list[str]:
        if self.run_as and os.geteuid() == 0 and self.run_as != "root":
            return ["runuser", "-u", self.run_as, "--", *argv]
        return argv

    def query(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / "psql"), "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                *self.options, "-d", database, "-c", sql]  # fmt: skip
        return subprocess.run(self._as_owner(argv), capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip

    def ask(self, sql: str, database: str = "postgres") -> str:
        proc = self.query(sql, database)
        if proc.returncode != 0:
            raise RecoveryError(f"{sql[:60]!r} on {database}: {proc.stderr.strip()[-300:]}")
        return proc.stdout

    def run(self, argv: list[str], what: str) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip()[-400:]
            raise RecoveryError(f"{what} failed (exit {proc.returncode}): {said}{self.log_tail()}")

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        lines = self.log.read_text(errors="replace").splitlines()[-8:]
        return "; server log: " + " | ".join(lines)

    def running(self) -> bool:
        return self.query("SELECT 1").returncode == 0

    def row_counts(self, database: str) -> dict[str, int] | None:
        """Rows per table, or None when the database does not exist."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", database):
            raise RecoveryError(f"{database!r} is not a database name this tool reads")
        exists = self.ask(f"SELECT count(*) FROM pg_database WHERE datname = '{database}'")  # noqa: S608
        if exists.strip() != "1":
            return None
        out = self.ask(COUNT_SQL, database)
        return {ln.split("\t")[0]: int(ln.split("\t")[1]) for ln in out.splitlines() if ln}

    def wait_promoted(self) -> None:
        deadline = time.monotonic() + self.deadline
        while True:
            proc = self.query("SELECT pg_is_in_recovery()")
            if proc.returncode == 0 and proc.stdout.strip() == "f":
                return
            if time.monotonic() > deadline:
                raise RecoveryError(
                    f"the cluster did not finish recovery within {self.deadline:.0f}s"
                    f"{self.log_tail()}"
                )
            self.sleep(0.2)


def occupied(cluster: Cluster, database: str) -> dict[str, int]:
    """The tables that hold rows, or {'(unreadable cluster)': -1} when it cannot be asked."""
    if not cluster.running():
        if (cluster.data_dir / "PG_VERSION").exists():
            return {f"(a cluster in {cluster.data_dir} that is not running)": -1}
        return {}
    counts = cluster.row_counts(database) or {}
    return {t: n for t, n in counts.items() if n > 0 and t not in BOOKKEEPING}


def _refuse_if_occupied(cluster: Cluster, database: str, replace: bool) -> dict[str, int]:
    held = occupied(cluster, database)
    if held and not replace:
        listed = ", ".join(f"{t} ({n} rows)" if n >= 0 else t for t, n in sorted(held.items()))
        raise Refused(f"database {database!r} holds data; --replace would replace: {listed}")
    return held


def _source(snap: dict[str, Any], source: str | None) -> dict[str, Any]:
    for s in snap["sources"]:
        if s["kind"] == "postgres" and (source is None or s["name"] == source):
            return dict(s)
    raise RecoveryError(f"snapshot {snap['id'][:12]} has no postgres source"
                        + (f" named {source!r}" if source else ""))  # fmt: skip


def _entry(src: dict[str, Any], path: str) -> dict[str, Any] | None:
    return next((e for e in src["entries"] if e["path"] == path), None)


def choose_base(
    repo: Repository,
    source: str | None,
    *,
    snapshot: str | None,
    to: dt.datetime | None,
    problems: list[str],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(snapshot, its postgres source, its base.tar entry): the chosen snapshot, or the
    newest whose base backup had finished by `to` (or at all)."""
    if snapshot and snapshot != "latest":
        snap = repo.get_snapshot(snapshot)
        src = _source(snap, source)
        base = _entry(src, "base.tar")
        if base is None:
            raise RecoveryError(f"snapshot {snap['id'][:12]} has no base backup")
        return snap, src, base
    for snap in reversed(repo.list_snapshots(problems=problems)):
        found = [s for s in snap["sources"] if s["kind"] == "postgres"
                 and (source is None or s["name"] == source)]  # fmt: skip

        base = _entry(found[0], "base.tar") if found else None
        if base is None:
            continue
        src = found[0]
        ended = dt.datetime.fromtimestamp(base["mtime"], dt.UTC)
        if to is None or ended <= to:
            return snap, src, base
    raise RecoveryError(
        f"{repo.storage.url}: no snapshot with a base backup"
        + (f" finished by {iso(to)}" if to else "")
    )


def _extract(repo: Repository, entry: dict[str, Any], where: str, into: Path,
             cluster: Cluster) -> None:  # fmt: skip
    """The base backup's tar into `into`, as the cluster's owner, streamed from the repository
    and checked against its SHA-256."""
    index = repo.load_index(adopt_orphans=True)
    tar = subprocess.Popen(cluster._as_owner(["tar", "-x", "-f", "-", "-C", str(into)]),
                           stdin=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert tar.stdin is not None
    digest = pipe_entry(repo, index, entry, where, tar.stdin)
    err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
    if tar.wait() != 0:
        raise RecoveryError(f"unpacking {where} into {into} failed: {err.strip()[-300:]}")
    if entry.get("sha256") and digest != entry["sha256"]:
        raise RecoveryError(f"{where}: the base backup read back differs from the one stored")


def _move(src: Path, dst: Path, owner: str) -> None:
    """rename, or where the file system cannot (a directory of an overlay's lower layer, as
    in a container image: EXDEV), a copy then a removal, the owner set again."""
    try:
        src.rename(dst)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    shutil.copytree(src, dst, symlinks=True)
    if owner and os.geteuid() == 0:
        for path in (dst, *dst.rglob("*")):
            os.lchown(path, *_ids(owner))
    shutil.rmtree(src)


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _settings(restore_command: str, target: str) -> str:
    def quoted(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    lines = [f"restore_command = {quoted(restore_command)}",
             "recovery_target_timeline = 'latest'"]  # fmt: skip
    if target == "immediate":
        lines += ["recovery_target = 'immediate'", "recovery_target_action = 'promote'"]
    elif target != "end":
        lines += [f"recovery_target_time = {quoted(target)}", "recovery_target_action = 'promote'"]
    return "\n# claims-dc-backup recover: removed once recovery ends\n" + "\n".join(lines) + "\n"


def recover(
    repo: Repository,
    spec: SourceSpec,
    cluster: Cluster,
    fetch_command: list[str],
    *,
    snapshot: str | None = None,
    to: dt.datetime | None = None,
    replace: bool = False,
) -> dict[str, Any]:
    # Long on purpose: one recovery in PostgreSQL's order (refuse a database that holds data, lay
    # the base backup down beside the old cluster, write the recovery settings, swap, start, wait
    # for the archive's end, check); each step depends on the one before
    started = time.monotonic()
    problems: list[str] = []
    snap, src, base = choose_base(repo, spec.name, snapshot=snapshot, to=to, problems=problems)
    system_id = src.get("system_identifier")
    if not system_id:
        raise RecoveryError(f"snapshot {snap['id'][:12]} does not name its cluster")
    held = _refuse_if_occupied(cluster, spec.database, replace)
    target = "immediate" if snapshot and snapshot != "latest" else (
        to.isoformat() if to else "end")  # fmt: skip
    data = cluster.data_dir
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    fresh = data.with_name(f"{data.name}.restoring")
    aside = data.with_name(f"{data.name}.replaced-{stamp}")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(mode=0o700)
    if cluster.run_as and os.geteuid() == 0:
        shutil.chown(fresh, cluster.run_as, cluster.run_as)
    t_fetch = time.monotonic()
    _extract(repo, base, f"{src['name']}:base.tar of {snap['id'][:12]}", fresh, cluster)
    fetch_seconds = time.monotonic() - t_fetch
    restore_command = wal.restore_command(fetch_command, system_id, SPOOL)
    with open(fresh / "postgresql.auto.conf", "a", encoding="utf-8") as f:
        f.write(_settings(restore_command, target))
    (fresh / "recovery.signal").touch()
    if cluster.run_as and os.geteuid() == 0:
        for p in (fresh / "postgresql.auto.conf", fresh / "recovery.signal"):
            shutil.chown(p, cluster.run_as, cluster.run_as)
    t_replay = time.monotonic()
    if cluster.running():
        cluster.run(cluster.stop, "stopping the cluster")
    if data.exists():
        _move(data, aside, cluster.run_as)
    _move(fresh, data, cluster.run_as)
    try:
        cluster.run(cluster.start, "starting the cluster in recovery")
        cluster.wait_promoted()
    except (RecoveryError, subprocess.TimeoutExpired) as e:
        # Put back what was there: a failed recovery loses nothing.
        with suppress(RecoveryError, subprocess.TimeoutExpired):
            cluster.run(cluster.stop, "stopping the failed recovery")
        failed = data.with_name(f"{data.name}.failed-{stamp}")
        _move(data, failed, cluster.run_as)
        if aside.exists():
            _move(aside, data, cluster.run_as)
            with suppress(RecoveryError, subprocess.TimeoutExpired):
                cluster.run(cluster.start, "starting the previous cluster again")
        raise RecoveryError(f"recovery failed, the previous cluster is back "
                            f"(the failed one is in {failed}): {e}") from e  # fmt: skip
    reset = "; ".join(f"ALTER SYSTEM RESET {name}" for name in RECOVERY_SETTINGS)
    for statement in reset.split("; "):
        cluster.ask(statement)
    cluster.ask("SELECT pg_reload_conf()")
    shutil.rmtree(data / SPOOL, ignore_errors=True)  # segments fetched ahead and not needed
    replay_seconds = time.monotonic() - t_replay
    point = cluster.ask("SELECT coalesce(pg_last_xact_replay_timestamp()::text, '')").strip()
    timeline = int(cluster.ask("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
                   16)  # fmt: skip
    counts = cluster.row_counts(spec.database) or {}
    kept = None
    if aside.exists():
        if held:
            kept = str(aside)  # it held data: the operator removes it once satisfied
        else:
            shutil.rmtree(aside, ignore_errors=True)
    return {
        "command": "recover",
        "ok": not problems,
        "problems": problems,
        "snapshot": snap["id"],
        "snapshot_time": snap["time"],
        "base_backup_end": iso(dt.datetime.fromtimestamp(base["mtime"], dt.UTC)),
        "target": target,
        "recovered_to": iso(parse_iso(point.replace(" ", "T"))) if point else None,
        "timeline": timeline,
        "system_identifier": system_id,
        "database": spec.database,
        "replaced": held,
        "previous_data_kept_in": kept,
        "row_counts": counts,
        "snapshot_row_counts": src.get("tables", {}),
        "rows": sum(counts.values()),
        "seconds": {"fetch": round(fetch_seconds, 2), "replay": round(replay_seconds, 2)},
        "duration_seconds": round(time.monotonic() - started, 3),
    }


def load_dump(
    repo: Repository,
    spec: SourceSpec,
    cluster: Cluster,
    *,
    owner: str,
    snapshot: str | None = None,
    replace: bool = False,
) -> dict[str, Any]:
    from ops.backuplib.archiver import select_snapshot

    started = time.monotonic()
    problems: list[str] = []
    snap = select_snapshot(repo, snapshot, None, problems)
    src = _source(snap, spec.name)
    dump = _entry(src, f"{src['database']}.dump")
    if dump is None:
        raise RecoveryError(f"source {src['name']} in {snap['id'][:12]} has no dump")
    held = _refuse_if_occupied(cluster, spec.database, replace)
    index = repo.load_index(adopt_orphans=True, on_problem=problems.append)
    argv = [str(cluster.bin_dir / "pg_restore"), *cluster.options, "--dbname", spec.database,
            f"--role={owner}", "--no-owner", "--clean", "--if-exists", "--single-transaction",
            "--exit-on-error"]  # fmt: skip
    proc = subprocess.Popen(cluster._as_owner(argv), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None
    pipe_entry(repo, index, dump, f"{src['name']}:{dump['path']}", proc.stdin)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise RecoveryError(f"pg_restore into {spec.database!r} failed, nothing changed "
                            f"(one transaction): {err.strip()[-400:]}")  # fmt: skip
    counts = cluster.row_counts(spec.database) or {}
    expected = src.get("tables", {})
    for table in sorted(set(expected) | set(counts)):
        if table in expected and counts.get(table) != expected[table]:
            problems.append(f"table {table}: the snapshot has {expected[table]} rows, "
                            f"the database {counts.get(table)}")  # fmt: skip
    return {
        "command": "load",
        "ok": not problems,
        "problems": problems,
        "snapshot": snap["id"],
        "snapshot_time": snap["time"],
        "database": spec.database,
        "replaced": held,
        "row_counts": counts,
        "expected_row_counts": expected,
        "rows": sum(counts.values()),
        "duration_seconds": round(time.monotonic() - started, 3),
    }


def compare_files(
    repo: Repository, source: str, root: Path, *, snapshot: str | None = None
) -> dict[str, Any]:
    """The live files of a files source against a snapshot: every entry present, of its
    type, owner and mode, and every file with the SHA-256 the snapshot recorded."""
    import grp
    import hashlib
    import pwd
    import stat

    from ops.backuplib.archiver import select_snapshot

    problems: list[str] = []
    snap = select_snapshot(repo, snapshot, None, problems)
    src = next((s for s in snap["sources"] if s["name"] == source), None)
    if src is None or src["kind"] != "files":
        raise RecoveryError(f"snapshot {snap['id'][:12]} has no files source {source!r}")
    checked = 0
    for e in src["entries"]:
        path = root / e["path"]
        try:
            st = path.lstat()
        except OSError:
            problems.append(f"{path}: missing")
            continue
        kind = ("dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode)
                else "file" if stat.S_ISREG(st.st_mode) else "other")  # fmt: skip
        if kind != e["type"]:
            problems.append(f"{path}: a {kind}, the snapshot has a {e['type']}")
            continue
        if kind != "symlink" and stat.S_IMODE(st.st_mode) != e["mode"]:
            problems.append(f"{path}: mode {stat.S_IMODE(st.st_mode):o}, "
                            f"the snapshot has {e['mode']:o}")  # fmt: skip
        try:
            owner = (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name)
        except KeyError:
            owner = (str(st.st_uid), str(st.st_gid))
        if owner != (e["user"], e["group"]):
            problems.append(f"{path}: owner {owner[0]}:{owner[1]}, "
                            f"the snapshot has {e['user']}:{e['group']}")  # fmt: skip
        if kind == "file" and e.get("sha256"):
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
            if digest.hexdigest() != e["sha256"]:
                problems.append(f"{path}: SHA-256 differs from the snapshot's")
        checked += 1
    return {
        "command": "compare",
        "ok": not problems,
        "snapshot": snap["id"],
        "source": source,
        "root": str(root),
        "entries": len(src["entries"]),
        "checked": checked,
        "files_with_sha256": sum(1 for e in src["entries"] if e.get("sha256")),
        "problems": problems,
    }
