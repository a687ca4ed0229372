"""Parse a claim file in the documented UKE subset (docs/uke-subset.md).

`parse` reads the bytes of one file and returns a `ClaimFile`, or raises `ClaimFileError` naming
the line, the record, the field and the value. Nothing is partial: a file parses whole or not
at all, so the intake can load it in one transaction or quarantine it.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

ENCODING = "cp932"
WELFARE_PREFIX = "12"  # 生活保護: the public-expense payer numbers of welfare begin with 12
# UKE era codes and the first day of each era, newest first.
ERA_STARTS = (("5", dt.date(2019, 5, 1)), ("4", dt.date(1989, 1, 8)),
              ("3", dt.date(1926, 12, 25)), ("2", dt.date(1912, 7, 30)),
              ("1", dt.date(1868, 1, 25)))  # fmt: skip
ERAS = {code: start.year for code, start in ERA_STARTS}  # era code -> its first year
FIELD_COUNTS = {"IR": 8, "RE": 7, "KO": 5, "SY": (4, 5), "SI": 6, "IY": 6, "GO": 3}
MAX_POINTS = 9_999_999
MAX_LINE_CHARS = 400  # the longest line the table allows is about 150 characters
MAX_NAME_CHARS = 40  # institution, patient and disease names
QUANTITY = re.compile(r"[0-9]{1,8}(?:\.[0-9]{1,5})?")  # no sign, exponent, "_" or NaN
EXCERPT_CHARS = 24  # a reason quotes at most this much of a bad value
DAY = re.compile(r"([1-5])([0-9]{2})([0-9]{2})([0-9]{2})")  # GYYMMDD
MONTH = re.compile(r"([1-5])([0-9]{2})([0-9]{2})")  # GYYMM


# Every Unicode "other" character (controls, format, private use, unassigned) of the plane that
# cp932 decodes into: read off the plane once, at import.
_OTHER = [cp for cp in range(0x10000) if unicodedata.category(chr(cp))[0] == "C"]


def _control_class(points: list[int]) -> re.Pattern[str]:
    # As one character class: one regex search, not a lookup per character.
    ranges: list[tuple[int, int]] = []
    for cp in points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return re.compile("[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges) + "]")


CONTROL = _control_class(_OTHER)
# A whole file's text, its line feeds allowed.
CONTROL_BUT_LF = _control_class([cp for cp in _OTHER if cp != ord("\n")])


def excerpt(value: str) -> str:
    """A bad value as a reason may quote it: repr'd, and cut short (never a whole field)."""
    if len(value) <= EXCERPT_CHARS:
        return repr(value)
    return f"{value[:EXCERPT_CHARS]!r}... ({len(value)} characters)"


def _all_full_width(value: str) -> bool:
    # One encode for the whole value: every character of cp932 takes one byte or two.
    try:
        return len(value.encode(ENCODING)) == 2 * len(value)
    except UnicodeEncodeError:
        return False


def _is_full_width(char: str) -> bool:
    """Two bytes in cp932: kanji, kana, full-width letters and the full-width space."""
    try:
        return len(char.encode(ENCODING)) == 2
    except UnicodeEncodeError:
        return False


class ClaimFileError(ValueError):
    """The file is rejected; `reason` is a short code, the message says where and why."""

    def __init__(self, reason: str, message: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}")


class Detail(NamedTuple):  # a tuple: a month has over a hundred thousand of them
    record: str  # SY, SI or IY
    code: str
    fields: tuple[str, ...]


@dataclass
class Receipt:
    number: int
    receipt_type: str
    care_month: dt.date
    patient_name: str
    sex: str
    birth_date: dt.date
    payer_number: str = ""
    recipient_number: str = ""
    days: int = 0
    points: int = 0
    diagnoses: list[Detail] = field(default_factory=list)
    procedures: list[Detail] = field(default_factory=list)
    drugs: list[Detail] = field(default_factory=list)


@dataclass
class ClaimFile:
    sha256: str  # of the bytes: the same file sent twice
    payer_org: str
    prefecture: str
    institution_code: str
    institution_name: str
    billing_month: dt.date
    receipts: list[Receipt]
    total_points: int

    @property
    def content_key(self) -> str:
        """The same month of the same institution, whatever the bytes (line endings, blank
        lines): institution, billing month, receipt numbers and totals."""
        numbers = ",".join(str(n) for n in sorted(r.number for r in self.receipts))
        key = (f"{self.institution_code}|{self.billing_month:%Y-%m}|{len(self.receipts)}|"
               f"{self.total_points}|{numbers}")  # fmt: skip
        return hashlib.sha256(key.encode()).hexdigest()


def _era_bounds(code: str) -> tuple[dt.date, dt.date | None]:
    """The first day of an era and the first day of the next one (None: the present era)."""
    starts = dict(ERA_STARTS)
    newer = [start for c, start in ERA_STARTS if c > code]
    return starts[code], (min(newer) if newer else None)


ERA_BOUNDS = {code: _era_bounds(code) for code, _ in ERA_STARTS}


@functools.lru_cache(maxsize=65536)  # a month of claims repeats its dates many times over
def era_date(value: str, with_day: bool) -> dt.date:
    """`GYYMMDD` (or `GYYMM`) in UKE era codes to a date; ValueError when it is not one, or
    falls outside its era (平成32年, 昭和64年2月, 令和元年4月)."""
    m = (DAY if with_day else MONTH).fullmatch(value)
    if m is None:
        raise ValueError(f"not {'GYYMMDD' if with_day else 'GYYMM'}")
    if m.group(2) == "00":
        raise ValueError("era year 00 does not exist (the first year is 01)")
    year = ERAS[m.group(1)] + int(m.group(2)) - 1
    day = dt.date(year, int(m.group(3)), int(m.group(4)) if with_day else 1)
    start, end = ERA_BOUNDS[m.group(1)]
    # A month belongs to an era if any day of it does (昭和64年1月 and 平成元年1月 both exist).
    first, last = (day, day) if with_day else (day, _month_end(day))
    if last < start or (end is not None and first >= end):
        raise ValueError("outside its era")
    return day


def _month_end(first: dt.date) -> dt.date:
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


@functools.cache
def _digits_of(high: int) -> int:
    return len(str(high))


class _Line:
    __slots__ = ("fields", "kind", "number")

    def __init__(self, number: int, fields: list[str]) -> None:
        self.number, self.fields = number, fields
        self.kind = fields[0]

    def fail(self, index: int, what: str) -> ClaimFileError:
        value = self.fields[index] if index < len(self.fields) else ""
        return ClaimFileError(
            "field", f"{self.kind} field {index + 1} = {excerpt(value)}: {what}", self.number
        )

    def digits(self, index: int, count: int | tuple[int, int], what: str) -> str:
        low, high = count if isinstance(count, tuple) else (count, count)
        value = self.fields[index]
        if not (value.isascii() and value.isdigit() and low <= len(value) <= high):
            size = f"{low}" if low == high else f"{low}-{high}"
            raise self.fail(index, f"{what} must be {size} digits")
        return value

    def number_in(self, index: int, low: int, high: int, what: str) -> int:
        value = self.fields[index]
        # The length first: int() of thousands of digits is slow, and refused past 4,300.
        if value.isascii() and value.isdigit() and len(value) <= _digits_of(high):
            number = int(value)
            if low <= number <= high:
                return number
        raise self.fail(index, f"{what} must be a whole number from {low} to {high}")

    def choice(self, index: int, choices: tuple[str, ...], what: str) -> str:
        if self.fields[index] not in choices:
            raise self.fail(index, f"{what} must be one of {', '.join(choices)}")
        return self.fields[index]

    def date(self, index: int, with_day: bool, what: str) -> dt.date:
        try:
            return era_date(self.fields[index], with_day)
        except ValueError as exc:
            raise self.fail(index, f"{what}: {exc}") from exc

    def decimal(self, index: int, what: str) -> Decimal:
        value = self.fields[index]
        if not QUANTITY.fullmatch(value):
            raise self.fail(
                index, f"{what} must be a decimal number (up to 8 digits, 5 after the point)"
            )
        return Decimal(value)

    def name(self, index: int, what: str, *, required: bool, full_width: bool) -> str:
        value = self.fields[index]
        low = 1 if required else 0
        if not low <= len(value) <= MAX_NAME_CHARS or value != value.strip():
            raise self.fail(index, f"{what} must be {low} to {MAX_NAME_CHARS} characters")
        if full_width and not _all_full_width(value):
            odd = next(c for c in value if not _is_full_width(c))
            raise self.fail(index, f"{what} must be full width: {odd!r} is not")
        return value


def _split(data: bytes) -> list[_Line]:
    try:
        text = data.decode(ENCODING)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ClaimFileError("encoding", f"byte {exc.start}: not Shift_JIS (cp932)", line) from exc
    text = text.replace("\r\n", "\n")
    # One search of the whole text; only a file with a control character in it is searched
    # line by line, to say where.
    suspect = CONTROL_BUT_LF.search(text) is not None
    lines = []
    for number, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_CHARS:
            raise ClaimFileError(
                "field", f"the line is {len(raw)} characters, at most {MAX_LINE_CHARS}", number
            )
        fields = raw.split(",")
        kind = fields[0]
        expected = FIELD_COUNTS.get(kind)
        if expected is None:
            raise ClaimFileError(
                "record", f"record type {excerpt(kind)} is not part of the subset", number
            )
        if suspect and CONTROL.search(raw):
            index, value, control = next(
                (i, v, m) for i, v in enumerate(fields) if (m := CONTROL.search(v))
            )
            raise ClaimFileError(
                "field",
                f"{kind} field {index + 1} = {excerpt(value)}: control character "
                f"U+{ord(control.group()):04X}",
                number,
            )
        allowed = expected if isinstance(expected, tuple) else (expected,)
        if len(fields) not in allowed:
            raise ClaimFileError(
                "field",
                f"{kind} has {len(fields)} fields, expected {' or '.join(map(str, allowed))}",
                number,
            )
        lines.append(_Line(number, fields))
    if not lines:
        raise ClaimFileError("record", "the file is empty")
    return lines


DETAILS = ("KO", "SY", "SI", "IY")  # what may end a receipt
MAY_FOLLOW: dict[str, tuple[str, ...]] = {
    "IR": (), "GO": DETAILS, "RE": ("IR", *DETAILS), "KO": ("RE",),
    "SY": DETAILS, "SI": DETAILS, "IY": DETAILS,
}  # fmt: skip


def _order(lines: list[_Line]) -> None:
    if lines[0].kind != "IR":
        raise ClaimFileError(
            "order", f"the first record is {lines[0].kind}, not IR", lines[0].number
        )
    if lines[-1].kind != "GO":
        raise ClaimFileError(
            "order", f"the last record is {lines[-1].kind}, not GO", lines[-1].number
        )
    previous = "IR"
    for line in lines[1:]:
        if previous not in MAY_FOLLOW[line.kind] or (line.kind == "GO" and line is not lines[-1]):
            raise ClaimFileError("order", f"{line.kind} cannot follow {previous}", line.number)
        previous = line.kind


def parse(data: bytes) -> ClaimFile:
    # The parse makes about ten objects a line and no reference cycles: the cycle collector,
    # which allocation counts keep waking, would take a third of the time and find nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(data)
    finally:
        if collecting:
            gc.enable()


def _parse(data: bytes) -> ClaimFile:
    # Long on purpose: the records of one claim file in the order the format gives them (IR, then
    # each RE with its SY, SI and other lines), each checked where it is read
    lines = _split(data)
    _order(lines)
    ir = lines[0]
    claim = ClaimFile(
        sha256=hashlib.sha256(data).hexdigest(),
        payer_org=ir.choice(1, ("1", "2"), "payer organisation"),
        prefecture=ir.digits(2, 2, "prefecture"),
        institution_code="",
        institution_name="",
        billing_month=dt.date.min,
        receipts=[],
        total_points=0,
    )
    if not 1 <= int(claim.prefecture) <= 47:
        raise ir.fail(2, "prefecture must be 01 to 47")
    ir.choice(3, ("1",), "score table")
    claim.institution_code = ir.digits(4, 7, "institution code")
    claim.institution_name = ir.name(6, "institution name", required=True, full_width=False)
    claim.billing_month = ir.date(7, False, "billing month")
    seen: set[int] = set()
    receipt: Receipt | None = None
    for line in lines[1:-1]:
        if line.kind == "RE":
            number = line.number_in(1, 1, 999_999, "receipt number")
            if number in seen:
                raise ClaimFileError(
                    "duplicate",
                    f"RE field 2 = {number}: receipt number used twice in this file",
                    line.number,
                )
            seen.add(number)
            care = line.date(3, False, "month of care")
            if care > claim.billing_month:
                raise line.fail(3, "month of care is after the billing month")
            name = line.name(4, "patient name", required=True, full_width=True)
            receipt = Receipt(
                number,
                line.digits(2, 4, "receipt type"),
                care,
                name,
                line.choice(5, ("1", "2"), "sex"),
                line.date(6, True, "birth date"),
            )
            claim.receipts.append(receipt)
            continue
        assert receipt is not None  # guaranteed by _order
        if line.kind == "KO":
            payer = line.digits(1, 8, "payer number")
            if not payer.startswith(WELFARE_PREFIX):
                raise ClaimFileError(
                    "payer",
                    f"KO field 2 = {payer!r}: payer is not welfare "
                    f"(生活保護 payer numbers begin with {WELFARE_PREFIX})",
                    line.number,
                )
            receipt.payer_number = payer
            receipt.recipient_number = line.digits(2, 7, "recipient number")
            receipt.days = line.number_in(3, 0, 31, "days")
            receipt.points = line.number_in(4, 0, MAX_POINTS, "points")
        elif line.kind == "SY":
            code = line.digits(1, 7, "disease code")
            line.date(2, True, "start date")
            line.choice(3, ("1", "2", "3", "4"), "outcome")
            if len(line.fields) == 5:
                line.name(4, "disease name", required=False, full_width=True)
            receipt.diagnoses.append(Detail("SY", code, tuple(line.fields[2:])))
        else:  # SI, IY
            line.digits(1, 2, "care category")
            code = line.digits(2, 9, "procedure code" if line.kind == "SI" else "drug code")
            line.decimal(3, "quantity")
            line.number_in(4, 0, MAX_POINTS, "points")
            line.number_in(5, 1, 99, "count")
            target = receipt.procedures if line.kind == "SI" else receipt.drugs
            target.append(Detail(line.kind, code, tuple(line.fields[1:])))
    go = lines[-1]
    count = go.number_in(1, 0, 999_999, "receipt count")
    total = go.number_in(2, 0, 10**12, "total points")
    claim.total_points = sum(r.points for r in claim.receipts)
    if count != len(claim.receipts):
        raise ClaimFileError(
            "totals", f"GO says {count} receipts, the file has {len(claim.receipts)}", go.number
        )
    if total != claim.total_points:
        raise ClaimFileError(
            "totals",
            f"GO says {total} points, the receipts add up to {claim.total_points}",
            go.number,
        )
    return claim
