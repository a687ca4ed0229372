"""What is backed up. A source yields entries; each entry is metadata plus a way to read it.

- `postgres`: one database as a consistent snapshot (`pg_dump --format=custom`, one
  transaction), uncompressed so that unchanged rows deduplicate from day to day (the
  repository compresses), plus the cluster's globals without role passwords. A dump that
  exits non-zero fails the whole run: a snapshot never holds a partial dump.
- `files`: directory trees and files, with modes, owners and times.
"""

from __future__ import annotations

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
            return cls(name, kind, database=db, run_as=texts["run_as"], pg_bin=texts["pg_bin"],
                       pg_options=list(options))  # fmt: skip
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


def postgres_streams(spec: SourceSpec) -> list[tuple[Entry, Stream]]:
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
