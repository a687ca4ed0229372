"""How long a database takes to come back, ours against pgBackRest, and the lab's RTO.

    python bench/restore_time.py [--scale 10]   # one private PostgreSQL 15 (pgbench data)
    python bench/restore_time.py --lab          # and a real loss on the running lab

The first form archives the same cluster's WAL into both a claims-dc-backup repository (a
local directory, a key file) and a pgBackRest repository (a local directory, its own
encryption off, compression zst), takes a base backup with each, writes more, and then, for
each tool, rebuilds the cluster from nothing: base backup, WAL replayed to the end, promoted.
It prints the restore times, the repositories' sizes and the ratios (ours / pgBackRest).

With --lab it first runs lab/disaster.py's scenario (db-1 and intake-1 destroyed,
restore.yml to a moment) and prints the time from "hosts gone" to "service answering", split
into phases, and how long the last commit waited to be archived (the RPO exposure).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.astool import runnable_copy, write_wrapper  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
AS_PG = ["runuser", "-u", "postgres", "--"]


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Bench:
    def __init__(self, base: Path) -> None:
        self.base, self.data, self.sock = base, base / "data", base / "sock"
        self.ours, self.theirs = base / "repo", base / "pgbackrest"
        self.config, self.wrapper = base / "backup.toml", base / "claims-dc-backup"
        self.pgbr_conf = base / "pgbackrest.conf"
        self.lib = runnable_copy()  # the tool as postgres can run it (archive_command)

    def pg_ctl(self, *args: str) -> list[str]:
        archive = (f"{self.wrapper} --quiet wal-push %p && pgbackrest --config={self.pgbr_conf} "
                   "--stanza=bench archive-push %p")  # fmt: skip
        opts = (f"-c listen_addresses='' -k {self.sock} -c archive_mode=on "
                f"-c \"archive_command={archive}\"")  # fmt: skip
        return [*AS_PG, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                str(self.base / "log"), "-t", "3600", "-o", opts, *args]  # fmt: skip

    def sh(self, argv: list[str], as_pg: bool = True) -> str:
        proc = subprocess.run([*AS_PG, *argv] if as_pg else argv, capture_output=True,
                              text=True, timeout=7200, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"{argv[0]} failed: {proc.stderr[-1500:]}")
        return proc.stdout

    def sql(self, statement: str, db: str = "bench") -> str:
        return self.sh([str(PG_BIN / "psql"), "-X", "-At", f"--host={self.sock}", "-U",
                        "postgres", "-d", db, "-c", statement]).strip()  # fmt: skip

    def setup(self) -> None:
        from ops.backuplib.crypto import make_key_file

        for d in (self.sock, self.theirs):
            d.mkdir()
        key = self.base / "repo.key"
        make_key_file(key)
        self.config.write_text(
            f'[repository]\nurl = "{self.ours}"\nkey_file = "{key}"\nlock_days = 1\n'
            f'[state]\ndir = "{self.base / "state"}"\n[[source]]\nname = "db"\n'
            f'kind = "postgres"\ndatabase = "bench"\nrun_as = "postgres"\npg_bin = "{PG_BIN}"\n'
            f'pg_options = ["--host={self.sock}", "--username=postgres"]\nbase_backup = true\n'
        )
        write_wrapper(self.wrapper, self.lib, self.config)
        self.pgbr_conf.write_text(
            f"[global]\nrepo1-path={self.theirs}\nrepo1-retention-full=2\ncompress-type=zst\n"
            f"log-path={self.base}\nlock-path={self.base}\nspool-path={self.base}\n"
            f"[bench]\npg1-path={self.data}\npg1-socket-path={self.sock}\n"
        )
        self.sh([sys.executable, "-m", "ops.backup", "--config", str(self.config), "--quiet",
                 "init"], as_pg=False)  # fmt: skip
        self.sh(["chown", "-R", "postgres:postgres", str(self.base)], as_pg=False)
        self.data.mkdir(mode=0o700)
        shutil.chown(self.data, "postgres", "postgres")
        self.sh([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--locale=C.UTF-8"])  # fmt: skip
        self.sh(self.pg_ctl("start"), as_pg=False)
        self.sh(["pgbackrest", f"--config={self.pgbr_conf}", "--stanza=bench", "stanza-create"])

    def load(self, scale: int) -> None:
        self.sql("CREATE DATABASE bench", "postgres")
        self.sh([str(PG_BIN / "pgbench"), "-i", "-q", "-s", str(scale), f"--host={self.sock}",
                 "-U", "postgres", "bench"])  # fmt: skip

    def write_more(self, seconds: int) -> None:
        self.sh([str(PG_BIN / "pgbench"), "-T", str(seconds), "-c", "2", f"--host={self.sock}",
                 "-U", "postgres", "bench"])  # fmt: skip
        self.sql("SELECT pg_switch_wal()", "postgres")
        last = self.sql("SELECT pg_walfile_name(pg_current_wal_lsn())", "postgres")
        while self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
                       "postgres") < last:  # fmt: skip
            time.sleep(0.2)

    def lose(self) -> None:
        subprocess.run(self.pg_ctl("-m", "immediate", "stop"), capture_output=True, check=False)
        shutil.rmtree(self.data)
        self.data.mkdir(mode=0o700)
        shutil.chown(self.data, "postgres", "postgres")

    def wait_promoted(self) -> None:
        while self.sql("SELECT pg_is_in_recovery()", "postgres") != "f":
            time.sleep(0.2)


def private(scale: int, write_seconds: int) -> dict[str, object]:
    from ops.backuplib import recovery, settings
    from ops.backuplib.repository import KeyOptions, Repository
    from ops.backuplib.storage import LocalStorage

    base = Path(tempfile.mkdtemp(prefix="claims-dc-restore-bench-"))
    b = Bench(base)
    try:
        b.setup()
        b.load(scale)
        rows = int(b.sql("SELECT count(*) FROM pgbench_accounts"))
        t = time.monotonic()
        b.sh([str(b.wrapper), "--quiet", "run"], as_pg=False)
        ours_backup = time.monotonic() - t
        t = time.monotonic()
        b.sh(["pgbackrest", f"--config={b.pgbr_conf}", "--stanza=bench", "--type=full",
              "backup"])  # fmt: skip
        theirs_backup = time.monotonic() - t
        b.write_more(write_seconds)
        want = b.sql("SELECT sum(abalance) FROM pgbench_accounts")

        b.lose()
        s = settings.load(b.config)
        repo = Repository.open(LocalStorage(Path(s.url)), KeyOptions(key_file=s.key_file))
        cluster = recovery.Cluster(b.data, "postgres", PG_BIN,
                                   [f"--host={b.sock}", "--username=postgres"],
                                   start=b.pg_ctl("start"), stop=b.pg_ctl("stop"))  # fmt: skip
        t = time.monotonic()
        result = recovery.recover(repo, s.sources[0], cluster, [str(b.wrapper), "--quiet"])
        ours = time.monotonic() - t
        ok_ours = b.sql("SELECT sum(abalance) FROM pgbench_accounts") == want

        subprocess.run(b.pg_ctl("-m", "immediate", "stop"), capture_output=True, check=False)
        b.lose()
        t = time.monotonic()
        b.sh(["pgbackrest", f"--config={b.pgbr_conf}", "--stanza=bench", "--type=default",
              "restore"])  # fmt: skip
        b.sh(b.pg_ctl("start"), as_pg=False)
        b.wait_promoted()
        theirs = time.monotonic() - t
        ok_theirs = b.sql("SELECT sum(abalance) FROM pgbench_accounts") == want
        sizes = {"ours": _du(b.ours), "pgbackrest": _du(b.theirs)}
        return {
            "database": {
                "pgbench_scale": scale,
                "accounts": rows,
                "written_after_base_seconds": write_seconds,
            },
            "backup_seconds": {
                "ours": round(ours_backup, 2),
                "pgbackrest": round(theirs_backup, 2),
            },
            "restore_seconds": {"ours": round(ours, 2), "pgbackrest": round(theirs, 2)},
            "restore_ratio": round(ours / theirs, 2),
            "ours_phases": result["seconds"],
            "repository_bytes": sizes,
            "size_ratio": round(sizes["ours"] / sizes["pgbackrest"], 2),
            "identical_after_restore": {"ours": ok_ours, "pgbackrest": ok_theirs},
        }
    finally:
        subprocess.run(b.pg_ctl("-m", "immediate", "stop"), capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(b.lib, ignore_errors=True)


def in_the_lab() -> dict[str, object]:
    from infra.config import load_stack
    from lab import disaster

    loss = disaster.lose_and_restore(load_stack("lab", REPO), ["db-1", "intake-1"])
    return disaster.summary(loss)


def main() -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--lab", action="store_true", help="a real loss on the running lab")
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale (10: ~150 MB)")
    parser.add_argument("--write", type=int, default=20, help="seconds of writes after the base")
    args = parser.parse_args()
    out: dict[str, object] = {}
    if args.lab:
        out["lab"] = in_the_lab()
    # Beside the lab's outage: the same kind of restore by us and by pgBackRest, timed alike.
    out["ours_vs_pgbackrest"] = private(args.scale, args.write)
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
