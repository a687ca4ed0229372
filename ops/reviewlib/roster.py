"""The staff roster and the SSH key registry: the truth every account is checked against.

Roster CSV (UTF-8 with a BOM, or cp932, as Excel in a Japanese office saves it; other files by
the rule of ops/reviewlib/inputs.py):

    staff_id,name,organisation,job,roles,start,end
    S001,山田太郎,city-welfare,caseworker,app:caseworker,2024-04-01,
    D010,佐藤花子,dc-operator,operator,aws:readonly host:operator db:none,2023-10-01,2026-03-31

`roles` lists the approved role per system as `system:role`, separated by spaces or `;`.
`end` is empty for current staff, and is the last working day: the person is current on it and
a leaver from the next day. Staff IDs are read as ops/reviewlib/inputs.py normalises them
(full-width, lower case and spaced spellings are the same ID). Key registry CSV:
`fingerprint,staff_id[,comment]` with OpenSSH SHA256 fingerprints (`SHA256:...`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ops.reviewlib.inputs import STAFF_ID, InputError, excerpt, normalise_staff_id
from ops.reviewlib.inputs import decode as decode_input

ORGANISATIONS = ("city-welfare", "dc-operator")
SYSTEMS = ("aws", "host", "app", "db")
COLUMNS = ("staff_id", "name", "organisation", "job", "roles", "start", "end")
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
# A machine account's key (the fund's delivery key, the review's own) is registered to
# "service:<account name>" instead of a person.
SERVICE_OWNER = re.compile(r"^service:[a-z_][a-z0-9_.-]{0,31}$")


class RosterError(InputError):
    """The roster cannot be trusted as given; every problem is listed with file and line."""


@dataclass(frozen=True)
class Person:
    staff_id: str
    name: str
    organisation: str
    job: str
    roles: dict[str, str]
    start: dt.date
    end: dt.date | None

    def current(self, on: dt.date) -> bool:
        """On the roster from `start` through `end`, both days included."""
        return self.start <= on and (self.end is None or on <= self.end)


@dataclass
class Roster:
    people: dict[str, Person]
    keys: dict[str, str] = field(default_factory=dict)  # fingerprint -> staff_id | service:x
    source: str = ""
    encoding: str = ""

    def person(self, staff_id: str) -> Person | None:
        return self.people.get(normalise_staff_id(staff_id))


def _rows(data: bytes, source: str, encoding: str | None) -> tuple[list[list[str]], str]:
    try:
        text = decode_input(data, source, encoding)
        return list(csv.reader(io.StringIO(text.text))), text.encoding
    except InputError as e:
        raise RosterError(e.problems) from None
    except csv.Error as e:
        raise RosterError([f"{source}: not a CSV file ({e})"]) from None


def _date(value: str, where: str, column: str, problems: list[str]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        problems.append(f"{where}: {column} {value!r} is not a date (YYYY-MM-DD)")
        return None


def parse_roster(data: bytes, source: str, encoding: str | None = None) -> Roster:
    rows, encoding = _rows(data, source, encoding)
    if not rows:
        raise RosterError([f"{source}: empty"])
    header = [h.strip().lower() for h in rows[0]]
    if tuple(header) != COLUMNS:
        raise RosterError(
            [f"{source}:1: header must be {','.join(COLUMNS)}, got {','.join(header)}"]
        )
    problems: list[str] = []
    people: dict[str, Person] = {}
    for n, row in enumerate(rows[1:], start=2):
        where = f"{source}:{n}"
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(COLUMNS):
            problems.append(f"{where}: {len(row)} columns, expected {len(COLUMNS)}")
            continue
        raw_sid, name, org, job, roles_s, start_s, end_s = (c.strip() for c in row)
        sid = normalise_staff_id(raw_sid)
        if not STAFF_ID.match(sid):
            problems.append(f"{where}: staff_id {excerpt(raw_sid)} is not a letter and 3-6 digits")
        if sid in people:
            problems.append(f"{where}: staff_id {sid} appears twice")
        if not name:
            problems.append(f"{where}: name is empty")
        if org not in ORGANISATIONS:
            problems.append(
                f"{where}: organisation {excerpt(org)} is not one of {', '.join(ORGANISATIONS)}"
            )
        roles: dict[str, str] = {}
        for item in re.split(r"[\s;]+", roles_s):
            if not item:
                continue
            system, _, role = item.partition(":")
            if system not in SYSTEMS or not role:
                problems.append(f"{where}: role {excerpt(item)} is not system:role with system in "
                                f"{', '.join(SYSTEMS)}")  # fmt: skip
            elif system in roles:
                problems.append(f"{where}: two roles for {system}")
            else:
                roles[system] = role
        start = _date(start_s, where, "start", problems)
        end = _date(end_s, where, "end", problems) if end_s else None
        if start and end and end < start:
            problems.append(f"{where}: end {end} is before start {start}")
        if start is not None:
            people[sid] = Person(sid, name, org, job, roles, start, end)
    if problems:
        raise RosterError(problems)
    return Roster(people, source=source, encoding=encoding)


def parse_keys(
    data: bytes, source: str, roster: Roster, encoding: str | None = None
) -> dict[str, str]:
    rows, _ = _rows(data, source, encoding)
    problems: list[str] = []
    keys: dict[str, str] = {}
    for n, row in enumerate(rows, start=1):
        if (
            not row
            or not any(c.strip() for c in row)
            or (n == 1 and row[0].strip() == "fingerprint")
        ):
            continue
        where = f"{source}:{n}"
        fp, raw = row[0].strip(), (row[1].strip() if len(row) > 1 else "")
        sid = raw if raw.startswith("service:") else normalise_staff_id(raw)
        if not FINGERPRINT.match(fp):
            problems.append(
                f"{where}: fingerprint {excerpt(fp)} is not an OpenSSH SHA256 fingerprint"
            )
        elif fp in keys:
            problems.append(f"{where}: fingerprint {fp} registered twice")
        if roster.person(sid) is None and not SERVICE_OWNER.match(sid):
            problems.append(
                f"{where}: staff_id {excerpt(raw)} is not in the roster (nor service:<account>)"
            )
        keys[fp] = sid
    if problems:
        raise RosterError(problems)
    return keys


def load(roster_path: Path, keys_path: Path | None = None, encoding: str | None = None) -> Roster:
    roster = parse_roster(read_input(roster_path), str(roster_path), encoding)
    if keys_path is not None:
        roster.keys = parse_keys(read_input(keys_path), str(keys_path), roster, encoding)
    return roster


def read_input(path: Path) -> bytes:
    """A file's bytes, refused by its size before it is read whole."""
    from ops.files import FileRefused, read_at_most
    from ops.reviewlib.inputs import MAX_FILE_BYTES

    try:
        return read_at_most(path, MAX_FILE_BYTES, "an input of the review")
    except FileRefused as e:
        raise RosterError([str(e)]) from None
    except OSError as e:
        raise RosterError([f"{path}: cannot read ({e.strerror})"]) from None
