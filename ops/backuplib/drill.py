"""The restore drill: the newest snapshot's database dump, restored into a scratch PostgreSQL
that this process starts (Unix socket in a private directory, no TCP), compared with the live
database: row counts per table, and a normalized pg_dump of both (owners, privileges and
comments aside, which a scratch cluster does not have).

The comparison holds when the live database has not changed since the snapshot; a drill run
right after a backup (the daily job, the demo) expects it to match exactly. The report names
tables and counts, never row contents.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.backuplib.archiver import pipe_entry, select_snapshot
from ops.backuplib.repository import Repository, RepositoryError
from ops.backuplib.sources import COUNT_SQL

PG_LIB = Path("/usr/lib/postgresql/15/bin")


class DrillError(Exception):
    pass


@dataclass
class Target:
    """How to reach a database: as whom, with which connection options."""

    run_as: str
    options: list[str]
    database: str
    bin_dir: Path

    def argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / tool), *self.options, *args]
        if self.run_as and os.geteuid() == 0 and self.run_as != "root":
            return ["runuser", "-u", self.run_as, "--", *argv]
        return argv


def _run(argv: list[str], what: str, stdin: Any = None) -> str:
    proc = subprocess.run(argv, capture_output=True, stdin=stdin, check=False)
    if proc.returncode != 0:
        raise DrillError(
            f"{what} failed (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()[-400:]}"
        )
    return proc.stdout.decode()


@contextmanager
def scratch_cluster(run_as: str, bin_dir: Path = PG_LIB) -> Iterator[Target]:
    base = Path(tempfile.mkdtemp(prefix="claims-dc-drill-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if run_as and os.geteuid() == 0:
        for p in (base, sock):
            shutil.chown(p, run_as)
    os.chmod(base, 0o700)
    owner = Target(run_as, [], "postgres", bin_dir)
    try:
        _run(
            owner.argv(
                "initdb",
                "-D",
                str(data),
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-U",
                "postgres",
            ),
            "initdb (scratch)",
        )
        _run(
            owner.argv(
                "pg_ctl",
                "-D",
                str(data),
                "-w",
                "-l",
                str(base / "log"),
                "-o",
                f"-c listen_addresses='' -k {sock} -c fsync=off",
                "start",
            ),
            "pg_ctl start (scratch)",
        )
        yield Target(run_as, [f"--host={sock}", "--username=postgres"], "drill", bin_dir)
    finally:
        subprocess.run(
            owner.argv("pg_ctl", "-D", str(data), "-m", "immediate", "stop"),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def row_counts(t: Target) -> dict[str, int]:
    out = _run(
        t.argv("psql", "-X", "-At", "-F", "\t", "-d", t.database, "-c", COUNT_SQL),
        f"row counts in {t.database}",
    )
    return {line.split("\t")[0]: int(line.split("\t")[1]) for line in out.splitlines() if line}


def normalized_dump(t: Target) -> tuple[str, int, list[str]]:
    """(SHA-256, line count, the COPY blocks in order) of a plain dump without owners,
    privileges, comments and the per-run \\restrict key."""
    out = _run(
        t.argv(
            "pg_dump",
            "--format=plain",
            "--no-owner",
            "--no-privileges",
            "--no-comments",
            "-d",
            t.database,
        ),
        f"pg_dump of {t.database}",
    )
    keep = [
        ln
        for ln in out.splitlines()
        if ln and not ln.startswith("--") and not ln.startswith(("\\restrict", "\\unrestrict"))
    ]
    blocks = [ln.split(" (")[0].removeprefix("COPY ") for ln in keep if ln.startswith("COPY ")]
    return hashlib.sha256("\n".join(keep).encode()).hexdigest(), len(keep), blocks


def drill(
    repo: Repository,
    live: Target,
    *,
    source: str | None = None,
    snapshot: str | None = None,
    compare_live: bool = True,
) -> dict[str, Any]:
    # Long on purpose: one drill in order (scratch cluster, load, compare), all inside the scratch
    # cluster's context, which removes it whatever step fails
    started = time.monotonic()
    problems: list[str] = []  # an unreadable manifest skipped on the way to latest, and more
    snap = select_snapshot(repo, snapshot, None, problems)
    pg_sources = [
        s
        for s in snap["sources"]
        if s["kind"] == "postgres" and (source is None or s["name"] == source)
    ]
    if not pg_sources:
        raise RepositoryError(
            f"snapshot {snap['id'][:12]} has no postgres source"
            + (f" named {source!r}" if source else "")
        )
    src = pg_sources[0]
    dump = next((e for e in src["entries"] if e["path"].endswith(".dump")), None)
    if dump is None:
        raise RepositoryError(f"source {src['name']} in {snap['id'][:12]} has no dump")
    index = repo.load_index(adopt_orphans=True, on_problem=problems.append)
    result: dict[str, Any] = {
        "command": "drill",
        "snapshot": snap["id"],
        "time": snap["time"],
        "source": src["name"],
        "database": src["database"],
        "dump_bytes": dump.get("size", 0),
    }
    # initdb refuses root: a scratch cluster runs as the live one's user, or as postgres.
    with scratch_cluster(live.run_as or "postgres", live.bin_dir) as scratch:
        _run(scratch.argv("createdb", "drill"), "createdb (scratch)")
        with tempfile.TemporaryFile() as errors:
            restore = subprocess.Popen(
                scratch.argv(
                    "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "-d", "drill"
                ),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            assert restore.stdin is not None
            pipe_entry(repo, index, dump, f"{src['name']}:{dump['path']}", restore.stdin)
            if restore.wait() != 0:
                errors.seek(0)
                tail = errors.read().decode(errors="replace").strip()[-400:]
                raise DrillError(
                    f"pg_restore into the scratch cluster failed (exit "
                    f"{restore.returncode}): {tail}"
                )
        restored_counts = row_counts(scratch)
        restored_dump = normalized_dump(scratch)
    result["restored"] = {
        "tables": len(restored_counts),
        "rows": sum(restored_counts.values()),
        "row_counts": restored_counts,
        "dump_sha256": restored_dump[0],
    }
    if compare_live:
        live_counts = row_counts(live)
        live_dump = normalized_dump(live)
        for table in sorted(set(live_counts) | set(restored_counts)):
            a, b = live_counts.get(table), restored_counts.get(table)
            if a != b:
                problems.append(f"table {table}: live {a} rows, restored {b}")
        if live_dump[0] != restored_dump[0]:
            problems.append(
                f"pg_dump differs: live {live_dump[1]} lines sha256 {live_dump[0][:16]},"
                f" restored {restored_dump[1]} lines sha256 {restored_dump[0][:16]}"
            )
        result["live"] = {
            "tables": len(live_counts),
            "rows": sum(live_counts.values()),
            "dump_sha256": live_dump[0],
        }
    result.update(
        ok=not problems, problems=problems, duration_seconds=round(time.monotonic() - started, 3)
    )
    return result
