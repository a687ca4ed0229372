"""Operational status that an environment publishes for the fleet board.

Each writer puts one small JSON document per kind into the environment's status bucket:

    status/<writer>/<host>/<kind>.json

<writer> is the host's role (the only IAM role allowed to write under it; the bucket policy
refuses everyone else) or `operations` for what the operators' control node knows (the
rotation ledger). The kinds and what each body holds:

    backup    ok, snapshot, time (the run's end), error if it failed      (backup hosts)
    verify    ok, time, problems                                          (backup hosts)
    drill     ok, time, snapshot, tables, rows                            (database hosts)
    review    time, verdict, findings, accounts, incomplete               (the bastion)
    rotation  time, secrets [{secret, kind, every_days, last_rotated}],
              certificates [{name, not_after}]                            (operations)

Every document carries the format, the stack, the writer, the host, the kind and when it was
written (UTC). A document is only believed when all of these agree with where it was found,
it parses, and it is not from the future: anything else is reported as unreadable, never
quietly taken as good news. The bucket is versioned and Object-Locked, so an old status cannot
be rewritten to look better afterwards.

The backup and review tools publish as part of their run; a failed publication is reported in
the run's output and does not fail the run (the board turns the missing status red by itself).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

FORMAT = "claims-dc-status/1"
PREFIX = "status"
OPERATIONS = "operations"
CONTROL_NODE = "control"  # the host name the operators' control node publishes under
KINDS = ("backup", "verify", "drill", "review", "rotation")
MAX_BYTES = 64 * 1024
# A writer's clock may run ahead of the reader's by this much; more is not believed.
FUTURE_SKEW = dt.timedelta(minutes=10)
# How old each kind of evidence may be before it is late: the fleet board's rules, and the
# evidence pack's staleness.
BACKUP_MAX_AGE = dt.timedelta(hours=26)
DRILL_MAX_AGE = dt.timedelta(days=35)
REVIEW_MAX_AGE = dt.timedelta(days=90)
JST = dt.timezone(dt.timedelta(hours=9), "JST")  # times for people (data keeps UTC)
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
STACK = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class StatusError(Exception):
    """A status that cannot be published, or cannot be believed."""


@dataclass(frozen=True)
class Publisher:
    """Where one writer's documents go: its bucket and its place in it."""

    bucket: str
    stack: str
    writer: str  # the host's role, or "operations"
    host: str

    def __post_init__(self) -> None:
        if not STACK.match(self.stack):
            raise StatusError(f"status: stack {self.stack!r} is not a stack name")
        for what, value in (("writer", self.writer), ("host", self.host)):
            if not NAME.match(value):
                raise StatusError(f"status: {what} {value!r}: lower-case letters, digits, -")

    def key(self, kind: str) -> str:
        if kind not in KINDS:
            raise StatusError(f"status: kind {kind!r}; kinds are {', '.join(KINDS)}")
        return f"{PREFIX}/{self.writer}/{self.host}/{kind}.json"

    def document(self, kind: str, body: dict[str, Any], now: dt.datetime | None = None) -> bytes:
        doc = {
            "format": FORMAT,
            "stack": self.stack,
            "writer": self.writer,
            "host": self.host,
            "kind": kind,
            "written": _iso(now or dt.datetime.now(dt.UTC)),
            **{k: v for k, v in body.items() if k not in HEADER},
        }
        data = json.dumps(doc, ensure_ascii=False, sort_keys=True, default=str).encode()
        if len(data) > MAX_BYTES:
            raise StatusError(f"status {self.key(kind)}: {len(data)} bytes, over {MAX_BYTES}")
        return data

    def publish(self, s3: Any, kind: str, body: dict[str, Any],
                now: dt.datetime | None = None) -> str:  # fmt: skip
        """Put the document; returns its key. Raises StatusError naming the bucket and key."""
        key = self.key(kind)
        data = self.document(kind, body, now)
        try:
            s3.put_object(Bucket=self.bucket, Key=key, Body=data,
                          ContentType="application/json")  # fmt: skip
        except Exception as e:  # botocore's errors, a timeout: named, the caller goes on
            raise StatusError(f"status s3://{self.bucket}/{key} not published: {e}") from e
        return key


HEADER = ("format", "stack", "writer", "host", "kind", "written")


@dataclass(frozen=True)
class Status:
    key: str
    writer: str
    host: str
    kind: str
    written: dt.datetime
    body: dict[str, Any]

    def time(self, field: str = "time") -> dt.datetime | None:
        """A time in the body, parsed (None: absent)."""
        value = self.body.get(field)
        return parse_time(value, f"{self.key}: {field}") if value is not None else None


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(value: object, where: str) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise StatusError(f"{where}: {str(value)[:40]!r} is not an ISO 8601 time")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise StatusError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise StatusError(f"{where}: {value!r} has no time zone")
    return when.astimezone(dt.UTC)


def for_people(value: object) -> str:
    """A time for people: Asia/Tokyo, to the minute (data keeps UTC)."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        return value
    return when.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")


KEY = re.compile(r"^status/(?P<writer>[a-z0-9-]+)/(?P<host>[a-z0-9-]+)/(?P<kind>[a-z]+)\.json$")
# What each kind's body must hold, and of what type.
FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "backup": {"ok": bool, "time": str},
    "verify": {"ok": bool, "time": str, "problems": int},
    "drill": {"ok": bool, "time": str},
    "review": {"time": str, "verdict": str, "findings": int},
    "rotation": {"time": str, "secrets": list, "certificates": list},
}


def parse(key: str, data: bytes, *, stack: str, now: dt.datetime | None = None) -> Status:
    """Believe a document found at `key` in `stack`'s bucket, or say exactly why not."""
    now = now or dt.datetime.now(dt.UTC)
    found = KEY.match(key)
    if found is None or found["kind"] not in KINDS:
        raise StatusError(f"{key}: not a status key (status/<writer>/<host>/<kind>.json)")
    if len(data) > MAX_BYTES:
        raise StatusError(f"{key}: {len(data)} bytes, over {MAX_BYTES}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise StatusError(f"{key}: not UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise StatusError(f"{key}: not JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(doc, dict):
        raise StatusError(f"{key}: not a JSON object")
    if doc.get("format") != FORMAT:
        raise StatusError(f"{key}: format {str(doc.get('format'))[:40]!r}, not {FORMAT}")
    expected = {"stack": stack, "writer": found["writer"], "host": found["host"],
                "kind": found["kind"]}  # fmt: skip
    for field, want in expected.items():
        if doc.get(field) != want:
            raise StatusError(f"{key}: says {field} {str(doc.get(field))[:60]!r} but was found "
                              f"where {want!r}'s is kept")  # fmt: skip
    written = parse_time(doc.get("written"), f"{key}: written")
    if written > now + FUTURE_SKEW:
        raise StatusError(f"{key}: written {_iso(written)}, later than now ({_iso(now)})")
    body = {k: v for k, v in doc.items() if k not in HEADER}
    for field, kind in FIELDS[found["kind"]].items():
        value = body.get(field)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise StatusError(f"{key}: {field} = {str(value)[:60]!r} is missing or mistyped")
    status = Status(key, found["writer"], found["host"], found["kind"], written, body)
    when = status.time()
    if when is not None and when > now + FUTURE_SKEW:
        raise StatusError(f"{key}: time {_iso(when)} is later than now ({_iso(now)})")
    return status
