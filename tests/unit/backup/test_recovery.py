"""Point-in-time recovery on a private PostgreSQL 15 whose archive_command is this tool: the
cluster lost and rebuilt from a base backup and the WAL archive, to a moment and to the end;
a database holding data refused; a damaged or missing segment handled as PostgreSQL needs."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops import backup as cli
from ops.backuplib import recovery, settings, wal
from ops.backuplib.crypto import make_key_file
from ops.backuplib.repository import KeyOptions, Repository
from ops.backuplib.storage import LocalStorage
from tests.support.astool import runnable_copy, write_wrapper

from .conftest import flip_last_byte

PG_BIN = Path("/usr/lib/postgresql/15/bin")
AS_PG = ["runuser", "-u", "postgres", "--"]


@dataclass
class Lab:
    base: Path
    data: Path
    sock: Path
    config: Path
    wrapper: Path

    def pg_ctl(self, *args: str) -> list[str]:
        archive = f"-c archive_command='{self.wrapper} --quiet wal-push %p'"
        opts = f"-c listen_addresses='' -k {self.sock} -c archive_mode=on {archive}"
        return [*AS_PG, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                str(self.base / "log"), "-o", opts, *args]  # fmt: skip

    def sql(self, statement: str, db: str = "claims") -> str:
        return subprocess.run(
            [*AS_PG, str(PG_BIN / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
             f"--host={self.sock}", "-U", "postgres", "-d", db, "-c", statement],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip

    def initdb(self) -> None:
        self.data.mkdir(mode=0o700)
        shutil.chown(self.data, "postgres", "postgres")
        subprocess.run([*AS_PG, str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run(self.pg_ctl("start"), check=True, capture_output=True)

    def cluster(self) -> recovery.Cluster:
        return recovery.Cluster(self.data, "postgres", PG_BIN,
                                [f"--host={self.sock}", "--username=postgres"],
                                start=self.pg_ctl("start"), stop=self.pg_ctl("-m", "fast", "stop"),
                                log=self.base / "log", deadline=120)  # fmt: skip

    def repo(self) -> Repository:
        s = settings.load(self.config)
        return Repository.open(LocalStorage(Path(s.url)), KeyOptions(key_file=s.key_file))

    def cli(self, *args: str) -> tuple[int, Any]:
        out = subprocess.run([str(self.wrapper), "--json", "--quiet", *args],
                             capture_output=True, text=True, timeout=90)  # fmt: skip
        return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else out.stderr)

    def archived_up_to_now(self) -> None:
        """The current segment switched out and archived (what archive_timeout does)."""
        name = self.sql("SELECT pg_walfile_name(pg_current_wal_lsn())", "postgres")
        self.sql("SELECT pg_switch_wal()", "postgres")
        for _ in range(300):
            done = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
                            "postgres")  # fmt: skip
            if done >= name:
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} was not archived: {self.sql('TABLE pg_stat_archiver')}")


@pytest.fixture(scope="module")
def tool_copy() -> Iterator[Path]:
    lib = runnable_copy()
    try:
        yield lib
    finally:
        shutil.rmtree(lib, ignore_errors=True)


@pytest.fixture
def lab(tool_copy: Path) -> Iterator[Lab]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed (lab/setup-host.sh installs it)")
    base = Path(tempfile.mkdtemp(prefix="claims-dc-pitr-"))
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres", "postgres")
    data, sock, repo_dir = base / "data", base / "sock", base / "repo"
    sock.mkdir()
    key = base / "repo.key"
    make_key_file(key)
    config = base / "backup.toml"
    config.write_text(f'''
[repository]
url = "{repo_dir}"
key_file = "{key}"
lock_days = 1
[state]
dir = "{base / "state"}"
[[source]]
name = "claims-db"
kind = "postgres"
database = "claims"
run_as = "postgres"
pg_bin = "{PG_BIN}"
pg_options = ["--host={sock}", "--username=postgres"]
base_backup = true
''')
    wrapper = base / "claims-dc-backup"
    write_wrapper(wrapper, tool_copy, config)
    assert cli.main(["--config", str(config), "--quiet", "init"]) == 0
    for p in (sock, key, *repo_dir.rglob("*"), repo_dir):
        shutil.chown(p, "postgres", "postgres")
    lab = Lab(base, data, sock, config, wrapper)
    lab.initdb()
    try:
        yield lab
    finally:
        if (base / "log").exists():
            print((base / "log").read_text()[-3000:])
        subprocess.run(lab.pg_ctl("-m", "immediate", "stop"), capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _rows(lab: Lab) -> int:
    return int(lab.sql("SELECT count(*) FROM t"))


def test_a_lost_cluster_comes_back_to_a_moment_and_to_the_end(lab: Lab) -> None:
    lab.sql("CREATE DATABASE claims", "postgres")
    lab.sql("CREATE TABLE t (id serial PRIMARY KEY, batch text NOT NULL)")
    lab.sql("INSERT INTO t (batch) SELECT 'a' FROM generate_series(1, 100)")
    code, run = lab.cli("run")
    assert code == 0, run
    src = run["sources"][0]
    assert src["entries"] == 3  # the dump, the globals and the base backup
    snap = lab.repo().list_snapshots()[-1]["sources"][0]
    assert snap["tables"] == {"public.t": 100} and snap["system_identifier"].isdigit()
    assert {e["path"] for e in snap["entries"]} == {"claims.dump", "globals.sql", "base.tar"}

    lab.sql("INSERT INTO t (batch) SELECT 'b' FROM generate_series(1, 50)")
    time.sleep(1.2)
    moment = dt.datetime.now(dt.UTC)
    time.sleep(1.2)
    lab.sql("INSERT INTO t (batch) SELECT 'c' FROM generate_series(1, 30)")
    lab.archived_up_to_now()
    code, status = lab.cli("wal-status")
    assert code == 0 and status["clusters"][0]["segments"] >= 2

    # The host is lost; its replacement starts with an empty cluster of its own.
    subprocess.run(lab.pg_ctl("-m", "immediate", "stop"), check=True, capture_output=True)
    shutil.rmtree(lab.data)
    lab.initdb()
    lab.sql("CREATE DATABASE claims", "postgres")
    lab.sql("CREATE TABLE t (id int)")
    lab.sql("INSERT INTO t VALUES (1)")
    repo, cluster = lab.repo(), lab.cluster()
    spec = settings.load(lab.config).sources[0]
    fetch = [str(lab.wrapper), "--quiet"]

    with pytest.raises(recovery.Refused, match=r"public\.t \(1 rows\)"):
        recovery.recover(repo, spec, cluster, fetch, to=moment)
    assert _rows(lab) == 1, "a refusal changes nothing"

    at_moment = recovery.recover(repo, spec, cluster, fetch, to=moment, replace=True)
    assert at_moment["ok"] and at_moment["row_counts"] == {"public.t": 150}
    assert at_moment["replaced"] == {"public.t": 1} and at_moment["previous_data_kept_in"]
    assert at_moment["timeline"] == 2
    assert dt.datetime.fromisoformat(at_moment["recovered_to"]) <= moment
    assert lab.sql("SHOW restore_command", "postgres") == "", "recovery settings are removed"
    assert lab.sql("SELECT pg_is_in_recovery()", "postgres") == "f"
    lab.sql("INSERT INTO t (batch) VALUES ('after')")  # it takes writes again

    # Later the operator wants every committed row back: to the end of timeline 1's archive
    # is no longer the latest timeline, so the recovery follows the newest one (2).
    shutil.rmtree(at_moment["previous_data_kept_in"])
    end = recovery.recover(repo, spec, cluster, fetch, replace=True)
    assert end["row_counts"]["public.t"] in (150, 151)


def test_a_target_before_the_first_base_backup_is_named(lab: Lab) -> None:
    lab.sql("CREATE DATABASE claims", "postgres")
    assert lab.cli("run")[0] == 0
    before = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(recovery.RecoveryError, match="no snapshot with a base backup finished"):
        recovery.recover(lab.repo(), settings.load(lab.config).sources[0], lab.cluster(),
                         [str(lab.wrapper)], to=before)  # fmt: skip


def test_wal_fetch_tells_the_end_of_the_archive_from_a_damaged_one(lab: Lab) -> None:
    lab.sql("CREATE DATABASE claims", "postgres")
    lab.archived_up_to_now()
    (state,) = wal.state(lab.repo())
    assert state.last is not None
    dest = lab.base / "fetched"
    args = ["wal-fetch", "--system-id", state.system_id]
    assert lab.cli(*args, state.last, str(dest))[0] == 0 and dest.stat().st_size == 16 << 20
    assert lab.cli(*args, "00000009000000000000000A", str(dest))[0] == 1  # the end
    stored = lab.base / "repo" / "wal" / state.system_id / state.last
    flip_last_byte(stored)
    code, err = lab.cli(*args, state.last, str(dest))
    assert code == wal.FETCH_FAILED and "does not authenticate" in err
    code, err = lab.cli(*args, "../../repo.key", str(dest))
    assert code == wal.FETCH_FAILED and "not a WAL segment" in err
    # archive_command: the same name with other content is refused, the same content is not.
    segment = lab.base / state.last
    segment.write_bytes(b"x" * 100)
    code, err = lab.cli("wal-push", "--system-id", state.system_id, str(segment))
    assert code == 1 and "does not authenticate" in err  # (the damaged copy above)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-12-02 14:05 JST", "2026-12-02T05:05:00+00:00"),
        ("2026-12-02T05:05:00Z", "2026-12-02T05:05:00+00:00"),
        ("2026-12-02 14:05:30+09:00", "2026-12-02T05:05:30+00:00"),
    ],
)
def test_recovery_moments_carry_their_zone(text: str, want: str) -> None:
    assert recovery.parse_moment(text).isoformat() == want


@pytest.mark.parametrize("text", ["2026-12-02 14:05", "yesterday", "2026-13-02 14:05 JST"])
def test_a_moment_without_a_zone_or_not_a_moment_is_refused(text: str) -> None:
    with pytest.raises(recovery.RecoveryError, match=repr(text).replace("(", r"\(")):
        recovery.parse_moment(text)


def test_the_segments_that_follow_cross_into_the_next_log_file() -> None:
    assert wal.following("000000010000000A000000FE", 16 << 20, 3) == [
        "000000010000000A000000FF",
        "000000010000000B00000000",
        "000000010000000B00000001",
    ]
    assert wal.following("00000002.history", 16 << 20, 3) == []


def test_restore_command_moves_a_spooled_segment_and_stops_recovery_if_it_cannot(
    tmp_path: Path,
) -> None:
    command = wal.restore_command(["false"], "7", "spool")
    spool = tmp_path / "spool"
    spool.mkdir()
    name = "000000010000000000000003"
    (spool / name).write_bytes(b"segment")

    def run(dest: str) -> int:
        line = command.replace("%f", name).replace("%p", dest)
        return subprocess.run(["sh", "-c", line], cwd=tmp_path, check=False).returncode

    assert run("RECOVERYXLOG") == 0 and (tmp_path / "RECOVERYXLOG").read_bytes() == b"segment"
    assert not (spool / name).exists()
    # Not spooled: the fetch command runs (here `false`: its exit code is PostgreSQL's answer).
    assert run("RECOVERYXLOG") == 1
    (spool / name).write_bytes(b"segment")
    # Spooled but not movable: recovery must stop, not take it as the archive's end.
    assert run("no-such-dir/RECOVERYXLOG") == wal.FETCH_FAILED


def test_a_stopped_cluster_that_holds_a_data_directory_is_not_taken_for_empty(
    tmp_path: Path,
) -> None:
    (tmp_path / "PG_VERSION").write_text("15\n")
    cluster = recovery.Cluster(tmp_path, "", PG_BIN, ["--host=/nonexistent"], [], [])
    with pytest.raises(recovery.Refused, match="not running"):
        recovery._refuse_if_occupied(cluster, "claims", replace=False)


def test_a_data_directory_that_cannot_be_renamed_is_copied_and_keeps_its_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "main", tmp_path / "main.replaced"
    (src / "base").mkdir(parents=True)
    (src / "base" / "1").write_text("page")
    shutil.chown(src / "base" / "1", "postgres", "postgres")
    real_rename = Path.rename

    def overlay_rename(self: Path, target: Any) -> Any:
        if self == src:  # an overlay's lower-layer directory
            raise OSError(18, "Invalid cross-device link")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", overlay_rename)
    recovery._move(src, dst, "postgres")
    assert not src.exists() and (dst / "base" / "1").read_text() == "page"
    assert (dst / "base" / "1").owner() == "postgres" and dst.owner() == "postgres"


def test_prune_drops_the_wal_no_kept_base_backup_needs_and_recovery_still_works(
    lab: Lab,
) -> None:
    from ops.backuplib.archiver import prune
    from ops.backuplib.retention import RetentionPolicy

    lab.sql("CREATE DATABASE claims", "postgres")
    lab.sql("CREATE TABLE t (id serial PRIMARY KEY, batch text NOT NULL)")
    assert lab.cli("run")[0] == 0
    for _ in range(3):
        lab.sql("INSERT INTO t (batch) SELECT 'a' FROM generate_series(1, 100)")
        lab.archived_up_to_now()
    assert lab.cli("run")[0] == 0
    lab.sql("INSERT INTO t (batch) VALUES ('after the second base')")
    lab.archived_up_to_now()
    repo = lab.repo()
    second = repo.list_snapshots()[-1]["sources"][0]
    before = {o.key.rsplit("/", 1)[-1] for o in repo.storage.list_objects("wal/")}

    dry = prune(repo, RetentionPolicy(daily=1, monthly=0, yearly=0), dry_run=True, quiet=True)
    done = prune(repo, RetentionPolicy(daily=1, monthly=0, yearly=0), quiet=True)
    after = {o.key.rsplit("/", 1)[-1] for o in repo.storage.list_objects("wal/")}
    gone = before - after
    assert dry["deleted_wal"] == done["deleted_wal"] == len(gone) >= 3
    assert all(n[8:24] < second["wal_start"][8:] for n in gone)
    assert all(n[8:24] >= second["wal_start"][8:] for n in after if len(n) >= 24)

    subprocess.run(lab.pg_ctl("-m", "immediate", "stop"), check=True, capture_output=True)
    shutil.rmtree(lab.data)
    lab.data.mkdir(mode=0o700)
    shutil.chown(lab.data, "postgres", "postgres")
    back = recovery.recover(repo, settings.load(lab.config).sources[0], lab.cluster(),
                            [str(lab.wrapper), "--quiet"])  # fmt: skip
    assert back["row_counts"] == {"public.t": 301}


def test_a_base_backup_refuses_a_server_whose_archiving_fails_instead_of_waiting(
    lab: Lab,
) -> None:
    lab.sql("CREATE DATABASE claims", "postgres")
    lab.archived_up_to_now()
    for d in (lab.base / "repo" / "wal").iterdir():
        d.chmod(0o500)  # the archive refuses postgres's writes from now on
    lab.sql("CREATE TABLE t AS SELECT 1 AS x")
    lab.sql("SELECT pg_switch_wal()", "postgres")
    for _ in range(100):
        if lab.sql("SELECT last_failed_wal IS NOT NULL FROM pg_stat_archiver", "postgres") == "t":
            break
        time.sleep(0.1)
    code, out = lab.cli("run")
    assert code == 1 and "WAL archiving is failing" in out["error"]
    assert lab.repo().list_snapshots() == [], "no snapshot without a restorable base"


def test_a_base_backup_refuses_a_server_that_does_not_archive(lab: Lab) -> None:
    lab.sql("CREATE DATABASE claims", "postgres")
    subprocess.run(lab.pg_ctl("-m", "fast", "stop"), check=True, capture_output=True)
    argv = lab.pg_ctl("start")
    argv[argv.index("-o") + 1] = f"-c listen_addresses='' -k {lab.sock}"
    subprocess.run(argv, check=True, capture_output=True)
    code, out = lab.cli("run")
    assert code == 1 and "archive_mode is off" in out["error"]


def test_a_dump_is_loaded_in_one_transaction_and_checked_against_the_snapshot(
    lab: Lab,
) -> None:
    lab.sql("CREATE DATABASE claims", "postgres")
    lab.sql("CREATE TABLE t (id serial PRIMARY KEY, batch text NOT NULL)")
    lab.sql("INSERT INTO t (batch) SELECT 'a' FROM generate_series(1, 40)")
    assert lab.cli("run")[0] == 0
    lab.sql("INSERT INTO t (batch) SELECT 'later' FROM generate_series(1, 5)")
    repo, cluster = lab.repo(), lab.cluster()
    spec = settings.load(lab.config).sources[0]
    with pytest.raises(recovery.Refused, match=r"public\.t \(45 rows\)"):
        recovery.load_dump(repo, spec, cluster, owner="postgres")
    # Through the CLI as restore.yml calls it: exit 3, the tables named, nothing changed.
    code, out = lab.cli("load", "--owner", "postgres")
    assert code == 3 and "holds data; --replace would replace: public.t (45 rows)" in out["error"]
    assert _rows(lab) == 45
    loaded = recovery.load_dump(repo, spec, cluster, owner="postgres", replace=True)
    assert loaded["ok"] and loaded["row_counts"] == loaded["expected_row_counts"] == {
        "public.t": 40
    }
    assert loaded["replaced"] == {"public.t": 45}
    # A dump that cannot be loaded changes nothing: one transaction.
    lab.sql("INSERT INTO t (batch) VALUES ('kept')")
    lab.sql("CREATE VIEW blocker AS SELECT * FROM t")  # DROP TABLE t fails without CASCADE
    with pytest.raises(recovery.RecoveryError, match="nothing changed"):
        recovery.load_dump(repo, spec, cluster, owner="postgres", replace=True)
    assert _rows(lab) == 41
