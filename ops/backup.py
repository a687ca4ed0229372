"""claims-dc-backup: the daily backup, its verification, restore drills and pruning.

A repository (FORMAT.md in ops/backuplib) on S3 with Object Lock or in a local directory:
content-defined chunks, deduplicated across snapshots, zstd-compressed and sealed with
AES-256-GCM under a master key that KMS wraps (or a local key file).

    claims-dc-backup --config /etc/claims-dc/backup/backup.toml init
    claims-dc-backup run                     # one snapshot of the configured sources
    claims-dc-backup list | show SNAPSHOT
    claims-dc-backup verify [--read-data [--subset 10%]]
    claims-dc-backup drill                   # restore into a scratch PostgreSQL, compare
    claims-dc-backup restore --target DIR [--snapshot ID | --as-of 2026-11-20] [--source S]
    claims-dc-backup prune [--dry-run]       # needs the maintenance role, not the hosts'

Disaster recovery, on the host being rebuilt (docs/restore.md):
    claims-dc-backup recover [--to "2026-12-02 14:05 JST" | --snapshot ID] [--replace]
        the cluster from a base backup, then the WAL archive replayed (to its end by default)
    claims-dc-backup load [--snapshot ID] [--replace]   # a pg_dump into the live database
    claims-dc-backup compare --source claim-files [--root /]   # files vs a snapshot
PostgreSQL calls, as archive_command and restore_command:
    claims-dc-backup wal-push %p             claims-dc-backup wal-fetch --system-id ID %f %p
    claims-dc-backup wal-status              # what the WAL archive holds

Results go to stdout (`--json` for machines), progress to stderr; every command but list and
show writes a JSON and a text report under <state dir>/reports/.

Exit codes:
  0  ok
  1  a failure or a finding: verify problems, a drill mismatch, storage, KMS or source errors,
     another run holding the lock
  2  usage or configuration: a bad argument, the settings file (each wrong key or type named),
     a key file that is missing, readable by others, malformed or not this repository's
  3  recover, load: refused, the database holds data (the tables are named; --replace)
  4  an unexpected failure (named on stderr and in the report, never a traceback)
wal-fetch, which PostgreSQL runs: 1 the archive does not hold the file (recovery ends there),
  126 the archive could not be read (PostgreSQL stops recovery instead of ending it early).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.backuplib import archiver, crypto, drill, recovery, report, settings, wal
from ops.backuplib.repository import KeyOptions, Repository, RepositoryError, iso, utcnow
from ops.backuplib.retention import RetentionPolicy
from ops.backuplib.sources import SourceError
from ops.backuplib.storage import StorageError, open_storage
from ops.status import Publisher, StatusError

DEFAULT_CONFIG = Path(
    os.environ.get("CLAIMS_DC_BACKUP_CONFIG", "/etc/claims-dc/backup/backup.toml")
)


class UsageError(Exception):
    pass


def _aws_client(s: settings.Settings, service: str, **config: Any) -> Any:
    """A client of the settings' endpoint, region and CA, with timeouts."""
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {"region_name": s.region}
    if s.endpoint_url:
        kwargs["endpoint_url"] = s.endpoint_url
    if s.ca_bundle:
        kwargs["verify"] = s.ca_bundle
    return boto3.client(service, config=Config(connect_timeout=5, **config), **kwargs)


def _clients(s: settings.Settings) -> tuple[Any, KeyOptions]:
    """The storage (S3Storage builds its own client) and, in KMS mode, the KMS client."""
    kms = None
    if s.kms_key_id:
        kms = _aws_client(s, "kms", retries={"max_attempts": 4, "mode": "standard"})
    s3_options: dict[str, Any] = {}
    if s.url.startswith("s3://"):
        s3_options = {"endpoint_url": s.endpoint_url, "region": s.region, "ca_bundle": s.ca_bundle}
    storage = open_storage(s.url, **s3_options)
    return storage, KeyOptions(kms=kms, kms_key_id=s.kms_key_id, key_file=s.key_file)


def _publish_status(to: tuple[settings.Settings, Publisher], command: str,
                    result: dict[str, Any]) -> str:  # fmt: skip
    """The run's outcome for the fleet board (ops/status.py): the key it went to, or why it
    did not. A status that cannot be published does not fail a good backup: the board shows
    the status growing old instead."""
    s, publisher = to
    kind = {"run": "backup", "verify": "verify", "drill": "drill"}[command]
    body: dict[str, Any] = {"ok": bool(result.get("ok")), "time": iso(utcnow())}
    if result.get("error"):
        body["error"] = str(result["error"])[:500]
    if command == "run":
        body["snapshot"] = result.get("snapshot")
    elif command == "verify":
        body["problems"] = len(result.get("problems") or [])
        body["read_data"] = bool(result.get("read_data"))
    else:
        restored = result.get("restored") or {}
        body.update(snapshot=result.get("snapshot"), tables=restored.get("tables"),
                    rows=restored.get("rows"))  # fmt: skip
    try:
        s3 = _aws_client(s, "s3", read_timeout=20, retries={"max_attempts": 3})
        return publisher.publish(s3, kind, body)
    except StatusError as e:
        print(f"claims-dc-backup: {e}", file=sys.stderr)
        return f"not published: {e}"


def _parse_as_of(text: str) -> dt.datetime:
    if text.rstrip().endswith(("JST", "UTC")):
        try:
            return recovery.parse_moment(text)
        except recovery.RecoveryError as e:
            raise UsageError(f"--as-of {e}") from None
    try:
        if len(text) == 10:  # a date: the end of that day, in this host's time zone
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(23, 59, 59)).astimezone()
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return t if t.tzinfo else t.astimezone()
    except ValueError:
        raise UsageError(f"--as-of {text!r}: expected a date (2026-11-20) or an ISO time") from None


def _subset(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        value = -1
    if not 0 < value <= 100:
        raise UsageError(f"--subset {text!r}: expected a percentage in (0, 100], like 10%")
    return value


class _LocalLock:
    """Two runs on one host: the second is told at once, not after a lease round trip."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.path = state_dir / "lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RepositoryError(
                f"another claims-dc-backup is running on this host ({self.path} is locked)"
            ) from None

    def release(self) -> None:
        os.close(self.fd)


def _postgres_source(s: settings.Settings, name: str | None) -> Any:
    pg = [x for x in s.sources if x.kind == "postgres" and (name is None or x.name == name)]
    if not pg:
        raise UsageError(f"{s.origin}: no postgres source" + (f" named {name!r}" if name else ""))
    return pg[0]


def _live_cluster(spec: Any, args: argparse.Namespace) -> recovery.Cluster:
    bin_dir = Path(spec.pg_bin)
    data_dir = args.data_dir
    probe = recovery.Cluster(data_dir, spec.run_as, bin_dir, spec.pg_options, [], [])
    if probe.running():
        data_dir = Path(probe.ask("SHOW data_directory").strip())
    unit = args.service
    return recovery.Cluster(
        data_dir, spec.run_as, bin_dir, spec.pg_options,
        start=["systemctl", "start", unit], stop=["systemctl", "stop", unit],
        log=Path("/var/log/postgresql") / f"postgresql-{unit.split('@')[-1]}.log",
        deadline=getattr(args, "deadline", 3600.0),  # recover only: load never restarts it
    )  # fmt: skip


def _self_command(config: Path) -> list[str]:
    """How PostgreSQL calls this tool back (restore_command): the host's wrapper says so in
    CLAIMS_DC_BACKUP_COMMAND; otherwise this interpreter with these settings."""
    given = os.environ.get("CLAIMS_DC_BACKUP_COMMAND")
    if given:
        return [given, "--quiet"]
    return [sys.executable, "-m", "ops.backup", "--config", str(config.resolve()), "--quiet"]


def _wal_command(args: argparse.Namespace) -> int:
    """archive_command and restore_command: quiet on success, one line on failure (it lands
    in PostgreSQL's log), no report files (one a segment would flood the state directory)."""
    failed = 1 if args.command == "wal-push" else wal.FETCH_FAILED
    try:
        s = settings.load(args.config)
        storage, keys = _clients(s)
        repo = Repository.open(storage, keys)
        if args.command == "wal-push":
            system_id = args.system_id or wal.system_identifier(Path.cwd())
            pushed = wal.push(repo, args.path, system_id)
            if not args.quiet:
                print(f"{pushed.key}: {pushed.size} bytes"
                      + (" (already archived)" if pushed.already else ""))  # fmt: skip
            return 0
        wal.check_name(args.name)
        try:
            size = wal.fetch(repo, args.system_id, args.name, args.dest)
        except wal.NotFound:
            if not args.quiet:
                print(f"claims-dc-backup: {args.name}: not in the archive", file=sys.stderr)
            return 1
        if args.spool is not None and args.ahead > 0:
            ahead = wal.following(args.name, size, args.ahead)
            wal.prefetch(repo, args.system_id, ahead, args.spool)
        if not args.quiet:
            print(f"{args.name}: {size} bytes")
        return 0
    except Exception as e:  # every failure named in PostgreSQL's log, never a traceback
        print(f"claims-dc-backup {args.command}: {type(e).__name__}: {str(e)[:300]}",
              file=sys.stderr)  # fmt: skip
        return failed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claims-dc-backup",
        description=__doc__,
        epilog="The settings file:\n" + (settings.__doc__ or "").split(":", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="the TOML settings (default %(default)s, or $CLAIMS_DC_BACKUP_CONFIG)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("init", help="create the repository (and its key record)")
    p.add_argument(
        "--new-key-file",
        action="store_true",
        help="file-key mode: make the key file named in the settings (0600) first",
    )
    p = sub.add_parser("run", help="back up the configured sources into a new snapshot")
    p.add_argument("--tag", action="append", default=[], help="a tag for the snapshot")
    p.add_argument(
        "--source", action="append", default=[], help="only this configured source (repeatable)"
    )
    sub.add_parser("list", help="the snapshots, oldest first")
    p = sub.add_parser("show", help="one snapshot: sources, entries, sizes")
    p.add_argument("snapshot", help="a snapshot ID (a unique prefix will do) or 'latest'")
    p = sub.add_parser("verify", help="check structure; --read-data also downloads and decrypts")
    p.add_argument("--read-data", action="store_true", help="download, decrypt and check packs")
    p.add_argument(
        "--subset",
        metavar="N%",
        help="with --read-data: the next N%% of packs not yet read this cycle",
    )
    p = sub.add_parser(
        "drill",
        help="restore the database dump into a scratch PostgreSQL and "
        "compare it with the live database",
    )
    p.add_argument("--snapshot", default="latest")
    p.add_argument("--source", help="the postgres source (default: the first)")
    p.add_argument("--no-compare", action="store_true", help="restore only; skip the comparison")
    p = sub.add_parser("restore", help="write a snapshot (or one source) into a directory")
    p.add_argument("--target", type=Path, required=True, help="the directory to restore into")
    p.add_argument("--snapshot", default=None, help="a snapshot ID or 'latest' (default)")
    p.add_argument("--as-of", help="the newest snapshot at or before this date or time")
    p.add_argument("--source", help="only this source of the snapshot")
    p = sub.add_parser("prune", help="apply the retention policy (maintenance role)")
    p.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    for k in ("daily", "monthly", "yearly"):
        p.add_argument(f"--keep-{k}", type=int, help=f"override retention.{k}")
    _recovery_commands(sub)
    _wal_commands(sub)
    for command in sub.choices.values():  # --json after the command too; SUPPRESS keeps one before
        command.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                             help="machine-readable result on stdout")  # fmt: skip
    return parser


def _recovery_commands(sub: Any) -> None:
    """recover, load and compare: bringing live data back, on the host being rebuilt."""
    p = sub.add_parser(
        "recover",
        help="rebuild the live cluster from a base backup and the WAL archive (point in time)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--to", metavar="TIME", help="recover to this moment, with its zone "
                       "('2026-12-02 14:05 JST'); default: the end of the archive")  # fmt: skip
    group.add_argument("--snapshot", help="only to this snapshot's base backup")
    p.add_argument("--source", help="the postgres source (default: the first)")
    p.add_argument("--replace", action="store_true", help="replace a database that holds data")
    p.add_argument("--deadline", type=float, default=3600.0, help="seconds to finish replay")
    p = sub.add_parser("load", help="load a snapshot's pg_dump into the live database as owner")
    p.add_argument("--snapshot", default=None, help="a snapshot ID or 'latest' (default)")
    p.add_argument("--source", help="the postgres source (default: the first)")
    p.add_argument("--owner", default="claims_owner", help="the role that owns the schema")
    p.add_argument("--replace", action="store_true", help="replace a database that holds data")
    for q in (sub.choices["recover"], p):  # where the live cluster is, for both
        q.add_argument("--data-dir", type=Path, default=Path("/var/lib/postgresql/15/main"),
                       help="its data directory when it is not running (default %(default)s; "
                       "a running cluster says where its own is)")  # fmt: skip
        q.add_argument("--service", default="postgresql@15-main", help="its systemd unit")
    p = sub.add_parser("compare", help="the live files of a source against a snapshot")
    p.add_argument("--source", required=True, help="a files source")
    p.add_argument("--root", type=Path, default=Path("/"), help="where they live (default /)")
    p.add_argument("--snapshot", default=None, help="a snapshot ID or 'latest' (default)")


def _wal_commands(sub: Any) -> None:
    """wal-push and wal-fetch, which PostgreSQL runs, and wal-status."""
    p = sub.add_parser("wal-push", help="archive one WAL file (PostgreSQL's archive_command)")
    p.add_argument("path", type=Path, help="%%p: the file, relative to the data directory")
    p.add_argument("--system-id", help="the cluster's identifier (default: global/pg_control)")
    p = sub.add_parser("wal-fetch", help="one archived WAL file (PostgreSQL's restore_command)")
    p.add_argument("--system-id", required=True, help="the cluster's identifier")
    p.add_argument("--spool", type=Path, help="also fetch the segments that follow into here")
    p.add_argument("--ahead", type=int, default=wal.PREFETCH_AHEAD, help="how many (%(default)s)")
    p.add_argument("name", help="%%f: the file's name")
    p.add_argument("dest", type=Path, help="%%p: where to write it")
    sub.add_parser("wal-status", help="what the WAL archive holds, per cluster")


@dataclass
class _Run:
    """What a command's handler works with."""

    args: argparse.Namespace
    settings: settings.Settings
    storage: Any
    keys: KeyOptions
    lock: _LocalLock | None = None

    def repo(self) -> Repository:
        return Repository.open(self.storage, self.keys)

    def take_lock(self) -> None:
        self.lock = _LocalLock(self.settings.state_dir)


def _init(run: _Run) -> dict[str, Any]:
    s = run.settings
    if run.args.new_key_file and s.key_file:
        crypto.make_key_file(s.key_file)
    repo = Repository.init(run.storage, run.keys, lock_days=s.lock_days)
    return {
        "command": "init",
        "ok": True,
        "repository": run.storage.url,
        "repository_id": repo.config.repo_id,
        "key": {"kind": repo.key_kind, "kms_key_id": repo.kms_key_id},
        "lock_days": s.lock_days,
        "chunker": repo.config.chunker.as_dict(),
    }


def _backup(run: _Run) -> dict[str, Any]:
    s, args = run.settings, run.args
    specs = [x for x in s.sources if not args.source or x.name in args.source]
    missing = set(args.source) - {x.name for x in s.sources}
    if missing or not specs:
        raise UsageError(
            f"{s.origin}: no such source(s) {sorted(missing)}"
            if missing
            else f"{s.origin}: no [[source]] configured"
        )
    repo = run.repo()
    run.take_lock()
    return archiver.backup(repo, specs, tags=args.tag, quiet=args.quiet)


def _list(run: _Run) -> int:
    """Printed here (text or JSON), with no report file: a listing is not a run."""
    unreadable: list[str] = []
    snaps = archiver.list_report(run.repo(), unreadable)
    for problem in unreadable:
        print(f"claims-dc-backup: {problem}", file=sys.stderr)
    if run.args.json:
        print(json.dumps(snaps, indent=2))
    else:
        for x in snaps:
            print(
                f"{x['id'][:12]}  {x['time']}  {x['hostname']:<12} "
                f"{','.join(x['sources']):<32} {x['logical']:>14,d} B  "
                f"locked until {x['retain_until'] or '-'}"
            )
    return 1 if unreadable else 0


def _show(run: _Run) -> int:
    skipped: list[str] = []
    snap = archiver.select_snapshot(run.repo(), run.args.snapshot, None, skipped)
    for problem in skipped:
        print(f"claims-dc-backup: {problem}", file=sys.stderr)
    if run.args.json:
        print(json.dumps(snap, indent=2))
    else:
        print("\n".join(_show_text(snap)))
    return 1 if skipped else 0


def _show_text(snap: dict[str, Any]) -> Iterator[str]:
    yield (f"snapshot {snap['id']}\ntime {snap['time']}  host {snap['hostname']}"
           f"  locked until {snap.get('retain_until')}")  # fmt: skip
    for src in snap["sources"]:
        size = sum(e.get("size", 0) for e in src["entries"])
        entries = len(src["entries"])
        yield f"source {src['name']} ({src['kind']}): {entries} entries, {size:,d} bytes"
        for entry in src["entries"][:20]:
            yield (f"  {entry['type']:<7} {entry['mode']:o} {entry['user']}:{entry['group']} "
                   f"{entry.get('size', 0):>12,d}  {entry['path']}")  # fmt: skip
        if len(src["entries"]) > 20:
            yield f"  ... {len(src['entries']) - 20} more"


def _verify(run: _Run) -> dict[str, Any]:
    args = run.args
    return archiver.verify(run.repo(), read_data=args.read_data, subset=_subset(args.subset),
                           state_dir=run.settings.state_dir, quiet=args.quiet)  # fmt: skip


def _drill(run: _Run) -> dict[str, Any]:
    spec = _postgres_source(run.settings, run.args.source)
    live = drill.Target(spec.run_as, spec.pg_options, spec.database, drill.PG_LIB)
    return drill.drill(run.repo(), live, source=spec.name, snapshot=run.args.snapshot,
                       compare_live=not run.args.no_compare)  # fmt: skip


def _restore(run: _Run) -> dict[str, Any]:
    args = run.args
    as_of = _parse_as_of(args.as_of) if args.as_of else None
    if as_of and args.snapshot:
        raise UsageError("give --snapshot or --as-of, not both")
    return archiver.restore(run.repo(), args.target, snapshot=args.snapshot, as_of=as_of,
                            source=args.source, quiet=args.quiet)  # fmt: skip


def _moment(args: argparse.Namespace) -> dt.datetime | None:
    """recover --to, checked before anything else is read."""
    if args.command != "recover" or not args.to:
        return None
    try:
        return recovery.parse_moment(args.to)
    except recovery.RecoveryError as e:
        raise UsageError(f"--to {e}") from None


def _recover(run: _Run) -> dict[str, Any]:
    args = run.args
    moment = _moment(args)
    spec = _postgres_source(run.settings, args.source)
    cluster = _live_cluster(spec, args)
    return recovery.recover(run.repo(), spec, cluster, _self_command(args.config),
                            snapshot=args.snapshot, to=moment, replace=args.replace)  # fmt: skip


def _load(run: _Run) -> dict[str, Any]:
    args = run.args
    spec = _postgres_source(run.settings, args.source)
    cluster = _live_cluster(spec, args)
    return recovery.load_dump(run.repo(), spec, cluster, owner=args.owner,
                              snapshot=args.snapshot, replace=args.replace)  # fmt: skip


def _compare(run: _Run) -> dict[str, Any]:
    return recovery.compare_files(run.repo(), run.args.source, run.args.root,
                                  snapshot=run.args.snapshot)  # fmt: skip


def _wal_status(run: _Run) -> dict[str, Any]:
    states = wal.state(run.repo())
    return {"command": "wal-status", "ok": True, "clusters": [vars(x) for x in states]}


def _prune(run: _Run) -> dict[str, Any]:
    args, pol = run.args, run.settings.retention
    policy = RetentionPolicy(
        daily=args.keep_daily if args.keep_daily is not None else pol.daily,
        monthly=args.keep_monthly if args.keep_monthly is not None else pol.monthly,
        yearly=args.keep_yearly if args.keep_yearly is not None else pol.yearly,
    )
    repo = run.repo()
    run.take_lock()
    return archiver.prune(repo, policy, dry_run=args.dry_run, quiet=args.quiet)


# Commands that make a run report (and, for run, verify and drill, a status for the fleet).
REPORTED: dict[str, Callable[[_Run], dict[str, Any]]] = {
    "init": _init, "run": _backup, "verify": _verify, "drill": _drill, "restore": _restore,
    "recover": _recover, "load": _load, "compare": _compare, "wal-status": _wal_status,
    "prune": _prune,
}  # fmt: skip
# Commands that print what they read and write no report.
PRINTED: dict[str, Callable[[_Run], int]] = {"list": _list, "show": _show}
# What an error class means for the exit code (the table in the docstring).
FAILURES: tuple[type[Exception], ...] = (
    RepositoryError, StorageError, crypto.KeyError_, crypto.IntegrityError, SourceError,
    drill.DrillError, OSError,
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return 2 if e.code not in (0, None) else 0
    if args.command in ("wal-push", "wal-fetch"):
        return _wal_command(args)
    started = utcnow()
    s: settings.Settings | None = None
    run: _Run | None = None
    try:
        _moment(args)
        s = settings.load(args.config)
        storage, keys = _clients(s)
        run = _Run(args, s, storage, keys)
        if args.command in PRINTED:
            return PRINTED[args.command](run)
        result = REPORTED[args.command](run)
        code = 0 if result.get("ok") else 1
    except (UsageError, settings.SettingsError) as e:
        print(f"claims-dc-backup: {e}", file=sys.stderr)
        return 2
    except recovery.Refused as e:
        result, code = {"command": args.command, "ok": False, "error": str(e)}, 3
    except crypto.KeyConfigError as e:  # configuration, but reported like a failed run
        result, code = {"command": args.command, "ok": False, "error": str(e)}, 2
    except FAILURES as e:
        result, code = {"command": args.command, "ok": False, "error": str(e)}, 1
    except Exception as e:  # named, and reported where operators look, never a traceback
        result = {"command": args.command, "ok": False,
                  "error": f"unexpected failure: {type(e).__name__}: {str(e)[:300]}"}  # fmt: skip
        code = 4
    finally:
        if run is not None and run.lock is not None:
            run.lock.release()
    return _finish(args, s, result, code, started)


def _finish(args: argparse.Namespace, s: settings.Settings | None, result: dict[str, Any],
            code: int, started: dt.datetime) -> int:  # fmt: skip
    """The run's report and status file, its status for the fleet board, and its output."""
    result.setdefault("started", iso(started))
    state_dir = s.state_dir if s is not None else None
    if state_dir is not None and args.command not in ("list", "wal-status"):
        try:
            paths = report.write(result, state_dir, started.strftime("%Y%m%dT%H%M%S%fZ"))
            result["report"] = [str(p) for p in paths]
            if args.command == "run":
                status = {"ok": result["ok"], "time": iso(started),
                          "snapshot": result.get("snapshot"), "error": result.get("error"),
                          "report": result["report"][0]}  # fmt: skip
                (state_dir / "status.json").write_text(json.dumps(status) + "\n")
        except OSError as e:
            print(f"claims-dc-backup: cannot write the report under {state_dir}: {e}",
                  file=sys.stderr)  # fmt: skip
            code = 1
    if s is not None and s.status and args.command in ("run", "verify", "drill"):
        result["status"] = _publish_status((s, s.status), args.command, result)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(report.text(result), end="")
    if not result.get("ok") and result.get("error"):
        print(f"claims-dc-backup: {result['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
