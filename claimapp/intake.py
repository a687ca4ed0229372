"""Claim-file intake: a file loads whole, in one transaction, or not at all.

Any error (the parser's reasons, a file already loaded by its SHA-256, the database refusing
a row) moves the whole file to the quarantine directory with a reason file beside it and leaves
nothing in the database. A loaded file moves to the processed directory.

    python -m claimapp.intake FILE --dsn "host=... dbname=claims user=claims_app"
    python -m claimapp.intake --drop /srv/sftp/fund/incoming --dsn ...   # every settled file

Exit codes: 0 every file loaded, 1 a file was quarantined (its reason is beside it), 2 usage
or settings, 3 the intake could not run (the database unreachable, a directory unusable).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from claimapp.settings import SettingsError
from claimapp.settings import load as load_settings
from claimapp.uke import ClaimFile, ClaimFileError, parse

SETTLE_SECONDS = 2.0  # a file still being written (SFTP upload) is left for the next run
WAIT_LIMIT_SECONDS = 600.0
ABANDONED_SECONDS = 30.0


@dataclass(frozen=True)
class IngestResult:
    file: str
    loaded: bool
    receipts: int
    reason: str | None = None
    message: str | None = None
    moved_to: str | None = None


class DuplicateFileError(Exception):
    pass


def _move(path: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / path.name
    if target.exists():  # never overwrite what an operator may still need to read
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = directory / f"{path.name}.{stamp}"
    shutil.move(str(path), target)
    return target


def quarantine(
    path: Path, directory: Path, reason: str, message: str, line: int | None, sha256: str | None
) -> Path:
    target = _move(path, directory)
    record = {
        "file": path.name,
        "reason": reason,
        "message": message,
        "line": line,
        "sha256": sha256,
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    reason_file = target.with_name(target.name + ".reason.json")
    reason_file.write_text(
        json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return target


def _load(conn: psycopg.Connection, claim: ClaimFile, file_name: str) -> None:
    with conn.transaction():
        if conn.execute("SELECT 1 FROM claim_files WHERE sha256 = %s", (claim.sha256,)).fetchone():
            raise DuplicateFileError(claim.sha256)
        (file_id,) = conn.execute(
            "INSERT INTO claim_files (sha256, file_name, payer_org, prefecture, institution_code,"
            " institution_name, billing_month, receipt_count, total_points)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (claim.sha256, file_name, claim.payer_org, claim.prefecture, claim.institution_code,
             claim.institution_name, claim.billing_month, len(claim.receipts),
             claim.total_points),
        ).fetchone() or (None,)  # fmt: skip
        for r in claim.receipts:
            (receipt_id,) = conn.execute(
                "INSERT INTO receipts (claim_file_id, receipt_number, receipt_type, care_month,"
                " patient_name, sex, birth_date, payer_number, recipient_number, days, points)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (file_id, r.number, r.receipt_type, r.care_month, r.patient_name, r.sex,
                 r.birth_date, r.payer_number, r.recipient_number, r.days, r.points),
            ).fetchone() or (None,)  # fmt: skip
            details = [*r.diagnoses, *r.procedures, *r.drugs]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO receipt_details (receipt_id, position, record, code, fields)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(receipt_id, i, d.record, d.code, list(d.fields))
                     for i, d in enumerate(details)],
                )  # fmt: skip


def ingest(
    path: Path, conn: psycopg.Connection, quarantine_dir: Path, processed_dir: Path
) -> IngestResult:
    data = path.read_bytes()
    try:
        claim = parse(data)
    except ClaimFileError as exc:
        moved = quarantine(path, quarantine_dir, exc.reason, str(exc), exc.line, None)
        return IngestResult(path.name, False, 0, exc.reason, str(exc), str(moved))
    try:
        _load(conn, claim, path.name)
    except DuplicateFileError:
        message = f"already loaded (sha256 {claim.sha256})"
        moved = quarantine(path, quarantine_dir, "duplicate-file", message, None, claim.sha256)
        return IngestResult(path.name, False, 0, "duplicate-file", message, str(moved))
    except psycopg.Error as exc:
        message = f"the database refused the file: {exc.diag.message_primary or exc}"
        moved = quarantine(path, quarantine_dir, "database", message, None, claim.sha256)
        return IngestResult(path.name, False, 0, "database", message, str(moved))
    moved = _move(path, processed_dir)
    return IngestResult(path.name, True, len(claim.receipts), moved_to=str(moved))


def settled_files(drop: Path, now: float | None = None) -> list[Path]:
    now = now or time.time()
    return sorted(p for p in drop.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and now - p.stat().st_mtime >= SETTLE_SECONDS)  # fmt: skip


def pending_files(drop: Path) -> list[Path]:
    """Uploads still in progress: unsettled files, and hidden (temporary) files written in the
    last ABANDONED_SECONDS; an older hidden file is an abandoned upload, not worth waiting for."""
    now = time.time()
    settled = set(settled_files(drop, now))
    return sorted(
        p
        for p in drop.iterdir()
        if p.is_file()
        and p not in settled
        and (not p.name.startswith(".") or now - p.stat().st_mtime < ABANDONED_SECONDS)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m claimapp.intake",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", nargs="?", type=Path, help="one claim file to ingest")
    p.add_argument("--drop", type=Path, help="ingest every settled file in this directory")
    p.add_argument(
        "--dsn",
        help="libpq connection string of the application role, never the "
        "owner (default: the settings file and environment)",
    )
    p.add_argument("--quarantine", type=Path, help="default: paths.quarantine")
    p.add_argument("--processed", type=Path, help="default: paths.processed")
    p.add_argument("--json", action="store_true", help="one JSON line per file")
    p.add_argument(
        "--wait",
        action="store_true",
        help="with --drop: also wait for files still being written, until none is left "
        f"(at most {WAIT_LIMIT_SECONDS:.0f}s); for the path unit, which fires once",
    )
    args = p.parse_args(argv)
    if (args.file is None) == (args.drop is None):
        p.error("give exactly one of FILE or --drop DIR")
    if args.dsn is None or args.quarantine is None or args.processed is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        args.dsn = args.dsn or settings.dsn
        args.quarantine = args.quarantine or settings.quarantine
        args.processed = args.processed or settings.processed
    try:
        failed = _run(args)
    except (psycopg.Error, OSError) as exc:
        print(f"error: could not run the intake: {exc}", file=sys.stderr)
        return 3
    return 1 if failed else 0


def _run(args: argparse.Namespace) -> int:
    """Ingest the file or the drop directory; returns how many files were quarantined."""
    failed = 0
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        while True:
            files = [args.file] if args.file else settled_files(args.drop)
            for path in files:
                result = ingest(path, conn, args.quarantine, args.processed)
                failed += not result.loaded
                if args.json:
                    print(json.dumps(result.__dict__, ensure_ascii=False), flush=True)
                else:
                    verdict = (
                        f"loaded {result.receipts} receipts"
                        if result.loaded
                        else f"QUARANTINED ({result.reason}): {result.message}"
                    )
                    print(f"{result.file}: {verdict}", flush=True)
            if not (args.wait and args.drop and pending_files(args.drop)):
                break
            if time.monotonic() > deadline:
                print(f"files still being written after {WAIT_LIMIT_SECONDS:.0f}s: "
                      f"{[p.name for p in pending_files(args.drop)]}", file=sys.stderr)  # fmt: skip
                break
            time.sleep(SETTLE_SECONDS / 4)
    return failed


if __name__ == "__main__":
    sys.exit(main())
