"""Claim-file intake: a file loads whole, in one transaction, or not at all.

Any error while reading or loading a file (the parser's reasons, a file too large, a symlink or
anything else that is not a regular file, a month already loaded, the database refusing a row,
or an error nobody foresaw) moves that whole file to the quarantine directory with a reason file
beside it, leaves nothing of it in the database, and the run goes on with the next file. A
loaded file moves to the processed directory. Names that are not UTF-8 are kept as they are on
disk and shown with their odd bytes escaped (\\xNN).

    python -m claimapp.intake FILE --dsn "host=... dbname=claims user=claims_app"
    python -m claimapp.intake --drop /srv/sftp/fund/incoming --dsn ...   # every settled file

Exit codes:
  0  every file loaded (or none was waiting)
  1  the intake itself failed: an error that is not about a file (named on stderr)
  2  usage or settings
  3  the intake could not run: the database unreachable, a directory unusable
  4  done, and at least one file was quarantined (its reason is beside it)
The systemd unit counts 0 and 4 as success; anything else fails it and raises the alert.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import os
import stat
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from claimapp.settings import DEFAULT_MAX_FILE_BYTES, SettingsError
from claimapp.settings import load as load_settings
from claimapp.uke import ClaimFile, ClaimFileError, Receipt, excerpt, parse

SETTLE_SECONDS = 2.0  # a file still being written (SFTP upload) is left for the next run
WAIT_LIMIT_SECONDS = 600.0
ABANDONED_SECONDS = 30.0
MESSAGE_CHARS = 300  # what a reason or a result line may say of any error
EXIT_LOADED, EXIT_FAILED, EXIT_USAGE, EXIT_CANNOT_RUN, EXIT_QUARANTINED = 0, 1, 2, 3, 4


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


class DuplicateContentError(Exception):
    pass


def shown(path: Path | str) -> str:
    """A name or path for people and the database: UTF-8, odd bytes escaped as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def display_name(path: Path) -> str:
    return shown(path.name)


def read_claim_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file in the drop directory, refusing without following a
    symlink (O_NOFOLLOW), anything that is not a regular file, and a file over `max_bytes`
    (by its size before reading, then by what is read: it may still be growing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ClaimFileError("not-a-file", "a symbolic link; it was not followed") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ClaimFileError("not-a-file", f"{kind}; it was not read")
    with os.fdopen(fd, "rb") as file:
        if info.st_size > max_bytes:
            raise ClaimFileError(
                "too-large", f"{info.st_size} bytes, more than the limit of {max_bytes}"
            )
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ClaimFileError("too-large", f"more than the limit of {max_bytes} bytes")
    return data


def _move(path: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / path.name
    if os.path.lexists(target):  # never overwrite what an operator may still need to read
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = directory / f"{path.name}.{stamp}"
    os.rename(path, target)  # the entry itself: a symlink moves as a link, never followed
    return target


def quarantine(
    path: Path, directory: Path, reason: str, message: str, line: int | None, sha256: str | None
) -> Path:
    target = _move(path, directory)
    record = {
        "file": display_name(path),
        "reason": reason,
        "message": message[:MESSAGE_CHARS],
        "line": line,
        "sha256": sha256,
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    reason_file = target.with_name(target.name + ".reason.json")
    reason_file.write_text(
        json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return target


# The receipts' columns as the intake writes them, with the type each goes as in binary COPY
# (no text formatting of dates or JSON on either side; char(n) takes text's bytes).
RECEIPT_COLUMNS = {
    "claim_file_id": "int8", "institution_code": "text", "receipt_number": "int4",
    "receipt_type": "text", "care_month": "date", "patient_name": "text", "sex": "text",
    "birth_date": "date", "payer_number": "text", "recipient_number": "text", "days": "int4",
    "points": "int4", "details": "jsonb",
}  # fmt: skip
Row = tuple[object, ...]


def details(receipt: Receipt) -> list[dict[str, object]]:
    """The receipt's diagnoses, procedures and drugs in file order, as receipts.details holds
    them."""
    return [{"record": d.record, "code": d.code, "fields": list(d.fields)}
            for d in (*receipt.diagnoses, *receipt.procedures, *receipt.drugs)]  # fmt: skip


def receipt_rows(claim: ClaimFile, file_id: int) -> Iterator[Row]:
    """The claim's receipts as rows of RECEIPT_COLUMNS, in file order."""
    for r in claim.receipts:
        yield (file_id, claim.institution_code, r.number, r.receipt_type, r.care_month,
               r.patient_name, r.sex, r.birth_date, r.payer_number, r.recipient_number,
               r.days, r.points, Jsonb(details(r)))  # fmt: skip


def copy_rows(cur: psycopg.Cursor[Any], table: str, columns: dict[str, str],
              rows: Iterable[Row]) -> None:  # fmt: skip
    """Rows into a table by one binary COPY: one stream, not a round trip per row."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cur.copy(statement) as copy:
        copy.set_types(list(columns.values()))
        for row in rows:
            copy.write_row(row)


def _load(conn: psycopg.Connection, claim: ClaimFile, file_name: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        if cur.execute("SELECT 1 FROM claim_files WHERE sha256 = %s", (claim.sha256,)).fetchone():
            raise DuplicateFileError(claim.sha256)
        earlier = cur.execute(
            "SELECT file_name, loaded_at FROM claim_files WHERE content_key = %s",
            (claim.content_key,),
        ).fetchone()
        if earlier:
            raise DuplicateContentError(
                f"the same month as {earlier[0]!r}, loaded {earlier[1]:%Y-%m-%d %H:%M %Z} "
                f"(institution {claim.institution_code}, {claim.billing_month:%Y-%m}, "
                f"{len(claim.receipts)} receipts, {claim.total_points} points)"
            )
        (file_id,) = cur.execute(
            "INSERT INTO claim_files (sha256, content_key, file_name, payer_org, prefecture,"
            " institution_code, institution_name, billing_month, receipt_count, total_points)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (claim.sha256, claim.content_key, file_name, claim.payer_org, claim.prefecture,
             claim.institution_code, claim.institution_name, claim.billing_month,
             len(claim.receipts), claim.total_points),
        ).fetchone() or (None,)  # fmt: skip
        copy_rows(cur, "receipts", RECEIPT_COLUMNS, receipt_rows(claim, file_id))


def ingest(
    path: Path,
    conn: psycopg.Connection,
    quarantine_dir: Path,
    processed_dir: Path,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> IngestResult:
    """Load one file whole or quarantine it whole; never raises for anything about the file
    (an error with the quarantine or processed directory itself is the intake's, and does)."""
    name = display_name(path)
    sha256: str | None = None

    def refuse(reason: str, message: str, line: int | None = None) -> IngestResult:
        moved = quarantine(path, quarantine_dir, reason, message, line, sha256)
        return IngestResult(name, False, 0, reason, message[:MESSAGE_CHARS], shown(moved))

    try:
        claim = parse(read_claim_file(path, max_bytes))
        sha256 = claim.sha256
        _load(conn, claim, name)
    except ClaimFileError as exc:
        return refuse(exc.reason, str(exc), exc.line)
    except DuplicateFileError:
        return refuse("duplicate-file", f"already loaded (sha256 {sha256})")
    except DuplicateContentError as exc:
        return refuse("duplicate-content", str(exc))
    except psycopg.OperationalError:
        raise  # the database went away: the intake cannot run, the file is not at fault
    except psycopg.Error as exc:
        said = (exc.diag.message_primary or str(exc))[:120]
        return refuse("database", f"the database refused the file: {said}")
    except Exception as exc:  # whatever it is, it is this file's, not the run's
        return refuse("unreadable", f"the file could not be read: {type(exc).__name__}")
    moved = _move(path, processed_dir)
    return IngestResult(name, True, len(claim.receipts), moved_to=shown(moved))


def _entries(drop: Path) -> list[tuple[Path, float]]:
    """Every entry of the drop directory with its own mtime (lstat: a link is not followed)."""
    found = []
    with os.scandir(drop) as it:
        for entry in it:
            try:
                found.append((Path(entry.path), entry.stat(follow_symlinks=False).st_mtime))
            except FileNotFoundError:
                continue  # renamed away meanwhile (an upload finishing)
    return found


def settled_files(drop: Path, now: float | None = None) -> list[Path]:
    """What to ingest: every entry not hidden and unchanged for SETTLE_SECONDS. Not only
    regular files: a symlink or a directory is quarantined, not left lying there."""
    now = now or time.time()
    return sorted(p for p, mtime in _entries(drop)
                  if not p.name.startswith(".") and now - mtime >= SETTLE_SECONDS)  # fmt: skip


def pending_files(drop: Path) -> list[Path]:
    """Uploads not yet finished: unsettled entries, and hidden (temporary) files written in the
    last ABANDONED_SECONDS; an older hidden file is an abandoned upload, not worth waiting for."""
    now = time.time()
    return sorted(
        p
        for p, mtime in _entries(drop)
        if now - mtime < (ABANDONED_SECONDS if p.name.startswith(".") else SETTLE_SECONDS)
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
    p.add_argument(
        "--max-bytes",
        type=int,
        help="refuse a file larger than this, before reading it (default: intake.max_file_bytes)",
    )
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
    if args.max_bytes is not None and args.max_bytes < 1:
        p.error(f"--max-bytes {args.max_bytes}: must be at least 1")
    if None in (args.dsn, args.quarantine, args.processed):
        try:
            settings = load_settings()
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        args.dsn = args.dsn or settings.dsn
        args.quarantine = args.quarantine or settings.quarantine
        args.processed = args.processed or settings.processed
        args.max_bytes = args.max_bytes or settings.max_file_bytes
    args.max_bytes = args.max_bytes or DEFAULT_MAX_FILE_BYTES
    try:
        failed = _run(args)
    except (psycopg.Error, OSError) as exc:
        print(f"error: could not run the intake: {excerpt(str(exc))}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except Exception as exc:  # a named failure, never a traceback
        print(f"error: the intake failed: {type(exc).__name__}: {excerpt(str(exc))}",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    return EXIT_QUARANTINED if failed else EXIT_LOADED


def _run(args: argparse.Namespace) -> int:
    """Ingest the file or the drop directory; returns how many files were quarantined."""
    failed = 0
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        while True:
            files = [args.file] if args.file else settled_files(args.drop)
            for path in files:
                if not os.path.lexists(path):
                    continue  # renamed or removed since the directory was read
                result = ingest(path, conn, args.quarantine, args.processed, args.max_bytes)
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
