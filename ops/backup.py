"""claims-dc-backup: the daily backup, its verification, restore drills and pruning.

A repository (FORMAT.md in ops/backuplib) on S3 with Object Lock or in a local directory:
content-defined chunks, deduplicated across snapshots, zstd-compressed and sealed with
AES-256-GCM under a master key that KMS wraps (or a local key file).

    python -m ops.backup --config /etc/claims-dc/backup/backup.toml init
    python -m ops.backup run                     # one snapshot of the configured sources
    python -m ops.backup list | show SNAPSHOT
    python -m ops.backup verify [--read-data [--subset 10%]]
    python -m ops.backup drill                   # restore into a scratch PostgreSQL, compare
    python -m ops.backup restore --target DIR [--snapshot ID | --as-of 2026-11-20] [--source S]
    python -m ops.backup prune [--dry-run]       # needs the maintenance role, not the hosts'

Results go to stdout (`--json` for machines), progress to stderr; every command but list and
show writes a JSON and a text report under <state dir>/reports/.

Exit codes:
  0  ok
  1  a failure or a finding: verify problems, a drill mismatch, storage, KMS or source errors,
     another run holding the lock, or an unexpected error (named on stderr, never a traceback)
  2  usage or configuration: a bad argument, the settings file (each wrong key or type named),
     a key file that is missing, readable by others, malformed or not this repository's
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any

from ops.backuplib import archiver, crypto, drill, report, settings
from ops.backuplib.repository import KeyOptions, Repository, RepositoryError, iso, utcnow
from ops.backuplib.retention import RetentionPolicy
from ops.backuplib.sources import SourceError
from ops.backuplib.storage import StorageError, open_storage

DEFAULT_CONFIG = Path(
    os.environ.get("CLAIMS_DC_BACKUP_CONFIG", "/etc/claims-dc/backup/backup.toml")
)


class UsageError(Exception):
    pass


def _clients(s: settings.Settings) -> tuple[Any, KeyOptions]:
    """The storage (S3Storage builds its own client) and, in KMS mode, the KMS client."""
    kms = None
    if s.kms_key_id:
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {"region_name": s.region}
        if s.endpoint_url:
            kwargs["endpoint_url"] = s.endpoint_url
        if s.ca_bundle:
            kwargs["verify"] = s.ca_bundle
        kms = boto3.client(
            "kms",
            config=Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5),
            **kwargs,
        )
    s3_options: dict[str, Any] = {}
    if s.url.startswith("s3://"):
        s3_options = {"endpoint_url": s.endpoint_url, "region": s.region, "ca_bundle": s.ca_bundle}
    storage = open_storage(s.url, **s3_options)
    return storage, KeyOptions(kms=kms, kms_key_id=s.kms_key_id, key_file=s.key_file)


def _parse_as_of(text: str) -> dt.datetime:
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


def main(argv: list[str] | None = None) -> int:
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code not in (0, None) else 0

    started = utcnow()
    state_dir: Path | None = None
    lock: _LocalLock | None = None
    try:
        s = settings.load(args.config)
        state_dir = s.state_dir
        storage, keys = _clients(s)
        if args.command == "init":
            if args.new_key_file and s.key_file:
                crypto.make_key_file(s.key_file)
            repo = Repository.init(storage, keys, lock_days=s.lock_days)
            result: dict[str, Any] = {
                "command": "init",
                "ok": True,
                "repository": storage.url,
                "repository_id": repo.config.repo_id,
                "key": {"kind": repo.key_kind, "kms_key_id": repo.kms_key_id},
                "lock_days": s.lock_days,
                "chunker": repo.config.chunker.as_dict(),
            }
        else:
            repo = Repository.open(storage, keys)
            if args.command == "run":
                specs = [x for x in s.sources if not args.source or x.name in args.source]
                missing = set(args.source) - {x.name for x in s.sources}
                if missing or not specs:
                    raise UsageError(
                        f"{s.origin}: no such source(s) {sorted(missing)}"
                        if missing
                        else f"{s.origin}: no [[source]] configured"
                    )
                lock = _LocalLock(s.state_dir)
                result = archiver.backup(repo, specs, tags=args.tag, quiet=args.quiet)
            elif args.command == "list":
                unreadable: list[str] = []
                snaps = archiver.list_report(repo, unreadable)
                for problem in unreadable:
                    print(f"claims-dc-backup: {problem}", file=sys.stderr)
                if args.json:
                    print(json.dumps(snaps, indent=2))
                else:
                    for x in snaps:
                        print(
                            f"{x['id'][:12]}  {x['time']}  {x['hostname']:<12} "
                            f"{','.join(x['sources']):<32} {x['logical']:>14,d} B  "
                            f"locked until {x['retain_until'] or '-'}"
                        )
                return 1 if unreadable else 0
            elif args.command == "show":
                skipped: list[str] = []
                snap = archiver.select_snapshot(repo, args.snapshot, None, skipped)
                for problem in skipped:
                    print(f"claims-dc-backup: {problem}", file=sys.stderr)
                if args.json:
                    print(json.dumps(snap, indent=2))
                else:
                    print(
                        f"snapshot {snap['id']}\ntime {snap['time']}  host {snap['hostname']}"
                        f"  locked until {snap.get('retain_until')}"
                    )
                    for src in snap["sources"]:
                        size = sum(e.get("size", 0) for e in src["entries"])
                        print(
                            f"source {src['name']} ({src['kind']}): {len(src['entries'])} "
                            f"entries, {size:,d} bytes"
                        )
                        for entry in src["entries"][:20]:
                            print(
                                f"  {entry['type']:<7} {entry['mode']:o} "
                                f"{entry['user']}:{entry['group']} "
                                f"{entry.get('size', 0):>12,d}  {entry['path']}"
                            )
                        if len(src["entries"]) > 20:
                            print(f"  ... {len(src['entries']) - 20} more")
                return 1 if skipped else 0
            elif args.command == "verify":
                result = archiver.verify(
                    repo,
                    read_data=args.read_data,
                    subset=_subset(args.subset),
                    state_dir=s.state_dir,
                    quiet=args.quiet,
                )
            elif args.command == "drill":
                pg = [
                    x
                    for x in s.sources
                    if x.kind == "postgres" and (args.source is None or x.name == args.source)
                ]
                if not pg:
                    raise UsageError(
                        f"{s.origin}: no postgres source"
                        + (f" named {args.source!r}" if args.source else "")
                    )
                live = drill.Target(pg[0].run_as, pg[0].pg_options, pg[0].database, drill.PG_LIB)
                result = drill.drill(
                    repo,
                    live,
                    source=pg[0].name,
                    snapshot=args.snapshot,
                    compare_live=not args.no_compare,
                )
            elif args.command == "restore":
                as_of = _parse_as_of(args.as_of) if args.as_of else None
                if as_of and args.snapshot:
                    raise UsageError("give --snapshot or --as-of, not both")
                result = archiver.restore(
                    repo,
                    args.target,
                    snapshot=args.snapshot,
                    as_of=as_of,
                    source=args.source,
                    quiet=args.quiet,
                )
            elif args.command == "prune":
                pol = s.retention
                policy = RetentionPolicy(
                    daily=args.keep_daily if args.keep_daily is not None else pol.daily,
                    monthly=args.keep_monthly if args.keep_monthly is not None else pol.monthly,
                    yearly=args.keep_yearly if args.keep_yearly is not None else pol.yearly,
                )
                lock = _LocalLock(s.state_dir)
                result = archiver.prune(repo, policy, dry_run=args.dry_run, quiet=args.quiet)
            else:  # pragma: no cover - argparse refuses other commands
                raise UsageError(args.command)
        code = 0 if result.get("ok") else 1
    except (UsageError, settings.SettingsError) as e:
        print(f"claims-dc-backup: {e}", file=sys.stderr)
        return 2
    except crypto.KeyConfigError as e:  # configuration, but reported like a failed run
        result = {"command": args.command, "ok": False, "error": str(e)}
        code = 2
    except (
        RepositoryError,
        StorageError,
        crypto.KeyError_,
        crypto.IntegrityError,
        SourceError,
        drill.DrillError,
        OSError,
    ) as e:
        result = {"command": args.command, "ok": False, "error": str(e)}
        code = 1
    except Exception as e:  # named, and reported where operators look, never a traceback
        result = {"command": args.command, "ok": False,
                  "error": f"unexpected error: {type(e).__name__}: {str(e)[:300]}"}  # fmt: skip
        code = 1
    finally:
        if lock is not None:
            lock.release()
    result.setdefault("started", iso(started))
    if state_dir is not None and args.command != "list":
        try:
            paths = report.write(result, state_dir, started.strftime("%Y%m%dT%H%M%S%fZ"))
            result["report"] = [str(p) for p in paths]
            if args.command == "run":
                (state_dir / "status.json").write_text(
                    json.dumps(
                        {
                            "ok": result["ok"],
                            "time": iso(started),
                            "snapshot": result.get("snapshot"),
                            "error": result.get("error"),
                            "report": result["report"][0],
                        }
                    )
                    + "\n"
                )
        except OSError as e:
            print(
                f"claims-dc-backup: cannot write the report under {state_dir}: {e}", file=sys.stderr
            )
            code = 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(report.text(result), end="")
    if not result.get("ok") and result.get("error"):
        print(f"claims-dc-backup: {result['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
