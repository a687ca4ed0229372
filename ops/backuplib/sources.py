"""What is backed up. A source yields entries; each entry is metadata plus a way to read it.

- `postgres`: one database as a consistent snapshot (`pg_dump --format=custom`, one
  transaction), uncompressed so that unchanged rows deduplicate from day to day (the
  repository compresses), plus the cluster's globals without role passwords, and each
  table's row count read in the dump's own transaction (the restore checks against them).
  A dump that exits non-zero fails the whole run: a snapshot never holds a partial dump.
  With `base_backup = true`, also the whole cluster as `pg_basebackup` writes it (a tar,
  without WAL: the segments it needs come from the WAL archive, wal.py), the base of a
  point-in-time recovery.
- `files`: directory trees and files, with modes, owners and times.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


class SourceError(Exception):
    pass


@dataclass
class Entry:
    path: str  # relative to the source: "claims.dump", "processed/x.UKE"
    type: str  # file | dir | symlink | stream
    mode: int = 0o600
    user: str = "root"
    group: str = "root"
    mtime: float = 0.0
    target: str = ""

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "type": self.type,
            "mode": self.mode,
            "user": self.user,
            "group": self.group,
            "mtime": self.mtime,
        }
        if self.type == "symlink":
            d["target"] = self.target
        return d


@dataclass
class SourceSpec:
    name: str
    kind: str
    paths: list[str] = field(default_factory=list)
    database: str = ""
    run_as: str = ""
    pg_bin: str = "/usr/bin"
    pg_options: list[str] = field(default_factory=list)
    base_backup: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> SourceSpec:
        name, kind = d.get("name"), d.get("kind")
        if not isinstance(name, str) or not name or "/" in name:
            raise SourceError(f"{where}: a source needs a name without '/', got {name!r}")
        here = f"{where}: source {name!r}"
        if kind == "files":
            paths = d.get("paths")
            if isinstance(paths, str):
                raise SourceError(f"{here}: paths must be a list, like [{paths!r}], "
                                  "not a string")  # fmt: skip
            if not isinstance(paths, list) or not paths:
                raise SourceError(f"{here}: paths must be a non-empty list of absolute paths, "
                                  f"got {paths!r}")  # fmt: skip
            bad = [p for p in paths if not isinstance(p, str) or not p.startswith("/")]
            if bad:
                raise SourceError(f"{here}: paths must be absolute paths; {bad[0]!r} is not")
            return cls(name, kind, paths=list(paths))
        if kind == "postgres":
            db = d.get("database")
            if not isinstance(db, str) or not db:
                raise SourceError(f"{here}: database must be a database name, got {db!r}")
            texts = {k: d.get(k, default) for k, default in
                     (("run_as", ""), ("pg_bin", "/usr/bin"))}  # fmt: skip
            for key, value in texts.items():
                if not isinstance(value, str):
                    raise SourceError(f"{here}: {key} must be a string, got {value!r}")
            options = d.get("pg_options", [])
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                raise SourceError(f"{here}: pg_options must be a list of strings, got {options!r}")
            base = d.get("base_backup", False)
            if not isinstance(base, bool):
                raise SourceError(f"{here}: base_backup must be true or false, got {base!r}")
            return cls(name, kind, database=db, run_as=texts["run_as"], pg_bin=texts["pg_bin"],
                       pg_options=list(options), base_backup=base)  # fmt: skip
        raise SourceError(
            f"{where}: source {name!r}: unknown kind {kind!r} (expected files or postgres)"
        )


class Stream:
    """A child process's stdout to read from; `finish` fails if the child failed."""

    def __init__(self, argv: list[str], what: str) -> None:
        self.what = what
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.stdout: IO[bytes] = self.proc.stdout

    def finish(self) -> None:
        self.stdout.close()
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        code = self.proc.wait()
        if code != 0:
            raise SourceError(f"{self.what} failed (exit {code}): {err.strip()[-500:]}")

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _as_user(spec: SourceSpec, argv: list[str]) -> list[str]:
    if spec.run_as and os.geteuid() == 0 and spec.run_as != "root":
        return ["runuser", "-u", spec.run_as, "--", *argv]
    return argv


COUNT_SQL = (
    "SELECT n.nspname || '.' || c.relname, (xpath('/row/c/text()', query_to_xml(format("
    "'select count(*) as c from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1"
)
_END = "-- claims-dc: end of answer --"


class DumpTransaction:
    """A read-only transaction whose snapshot pg_dump joins (--snapshot): the row counts read
    here are those of the dump, whatever commits meanwhile. It stays open until closed."""

    def __init__(self, spec: SourceSpec) -> None:
        psql = str(Path(spec.pg_bin) / "psql")
        self.what = f"the dump's transaction on {spec.database!r} (source {spec.name!r})"
        self.proc = subprocess.Popen(
            _as_user(spec, [psql, "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            "--no-password", *spec.pg_options, "--dbname", spec.database]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.snapshot = self._ask(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();"
        )[0]
        self.system_id = self._ask("SELECT system_identifier FROM pg_control_system();")[0]
        # The WAL segment in use before the base backup starts: no recovery from that base
        # needs an older one (prune keeps the archive from there on).
        self.wal_position = None
        if spec.base_backup:
            self._check_archiving()
            self.wal_position = self._ask("SELECT pg_walfile_name(pg_current_wal_lsn());")[0]
        self.tables = {
            line.split("\t")[0]: int(line.split("\t")[1]) for line in self._ask(COUNT_SQL + ";")
        }

    def _check_archiving(self) -> None:
        """A base backup without WAL is only restorable with the WAL it spans, and the server
        waits for that WAL to be archived: with archiving off the base would be useless, and
        with archiving failing the backup would wait for ever."""
        mode = self._ask("SHOW archive_mode;")[0]
        if mode == "off":
            raise SourceError(f"{self.what}: base_backup needs WAL archiving, and "
                              "archive_mode is off (archive_command: this tool)")  # fmt: skip
        failing = self._ask(
            "SELECT last_failed_wal || ' at ' || last_failed_time FROM pg_stat_archiver "
            "WHERE last_failed_time > coalesce(last_archived_time, '-infinity');"
        )
        if failing:
            raise SourceError(f"{self.what}: WAL archiving is failing (last failure: "
                              f"{failing[0]}; the server's log says why): a base backup "
                              "would wait for it for ever")  # fmt: skip

    def _ask(self, sql: str) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(f"{sql}\n\\echo '{_END}'\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        lines: list[str] = []
        for line in self.proc.stdout:
            if line.rstrip("\n") == _END:
                return lines
            lines.append(line.rstrip("\n"))
        err = self.proc.stderr.read() if self.proc.stderr else ""
        self.close()
        raise SourceError(f"{self.what} failed: {err.strip()[-400:] or 'psql ended'}")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.write("ROLLBACK;\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def base_backup_stream(spec: SourceSpec) -> tuple[Entry, Stream]:
    """The cluster as one tar on stdout; the server waits until the WAL the backup needs is
    archived before the stream ends, so a finished stream is a restorable base."""
    return (
        Entry("base.tar", "stream"),
        Stream(
            _as_user(spec, [str(Path(spec.pg_bin) / "pg_basebackup"), "--pgdata=-",
                            "--format=tar", "--wal-method=none", "--checkpoint=fast",
                            "--no-manifest", "--no-password", *spec.pg_options]),
            f"pg_basebackup (source {spec.name!r})",
        ),
    )  # fmt: skip


def postgres_streams(spec: SourceSpec, snapshot: str) -> list[tuple[Entry, Stream]]:
    pg_dump = str(Path(spec.pg_bin) / "pg_dump")
    pg_dumpall = str(Path(spec.pg_bin) / "pg_dumpall")
    if not Path(pg_dump).exists():
        raise SourceError(f"source {spec.name!r}: {pg_dump} not found (pg_bin = {spec.pg_bin!r})")
    return [
        (
            Entry(f"{spec.database}.dump", "stream"),
            Stream(
                _as_user(
                    spec,
                    [
                        pg_dump,
                        "--format=custom",
                        "--compress=0",
                        "--no-password",
                        f"--snapshot={snapshot}",
                        *spec.pg_options,
                        "--dbname",
                        spec.database,
                    ],
                ),
                f"pg_dump of {spec.database!r} (source {spec.name!r})",
            ),
        ),
        (
            Entry("globals.sql", "stream"),
            Stream(
                _as_user(
                    spec,
                    [
                        pg_dumpall,
                        "--globals-only",
                        "--no-role-passwords",
                        "--no-password",
                        *spec.pg_options,
                    ],
                ),
                f"pg_dumpall --globals-only (source {spec.name!r})",
            ),
        ),
    ]


def _names(st: os.stat_result) -> tuple[str, str]:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def walk_files(spec: SourceSpec) -> Iterator[tuple[Entry, Path]]:
    """Every path under the source's roots, parents before children, in a stable order."""
    for root_s in spec.paths:
        root = Path(root_s)
        if not root.exists():
            raise SourceError(f"source {spec.name!r}: {root} does not exist")
        prefix = root_s.strip("/")
        stack = [root]
        while stack:
            path = stack.pop()
            st = path.lstat()
            user, group = _names(st)
            rel = prefix if path == root else f"{prefix}/{path.relative_to(root)}"
            if stat.S_ISDIR(st.st_mode):
                yield Entry(rel, "dir", stat.S_IMODE(st.st_mode), user, group, st.st_mtime), path
                stack.extend(sorted(path.iterdir(), reverse=True))
            elif stat.S_ISLNK(st.st_mode):
                yield (
                    Entry(
                        rel,
                        "symlink",
                        stat.S_IMODE(st.st_mode),
                        user,
                        group,
                        st.st_mtime,
                        os.readlink(path),
                    ),
                    path,
                )
            elif stat.S_ISREG(st.st_mode):
                yield Entry(rel, "file", stat.S_IMODE(st.st_mode), user, group, st.st_mtime), path
            # sockets, fifos and devices are not data


def safe_target(base: Path, rel: str) -> Path:
    """Where an entry restores under `base`; refuses paths that would leave it."""
    target = (base / rel).resolve() if not (base / rel).is_symlink() else base / rel
    if (
        rel.startswith("/")
        or ".." in Path(rel).parts
        or not str(target).startswith(str(base.resolve()))
    ):
        raise SourceError(f"entry path {rel!r} would restore outside {base}")
    return base / rel
