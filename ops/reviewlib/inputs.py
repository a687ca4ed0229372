"""Every file the review reads from outside, and every staff ID it meets, through one door.

Files (roster, key registry, exceptions, service accounts):

- **Size.** At most MAX_FILE_BYTES, no line over MAX_LINE_CHARS: a bigger one is refused by
  name before any parsing.
- **Encoding.** A UTF-8 BOM says UTF-8 (Excel's "CSV UTF-8"); `--encoding utf-8|cp932` says
  what it says; otherwise the bytes are tried both ways. ASCII, or valid in only one of the two,
  decides itself. Valid in both, the file is UTF-8 only if every non-ASCII character it would
  have is one of UTF-8's three- or four-byte ones (kana, kanji, full-width forms): cp932's
  half-width katakana (0xA1-0xDF) read as UTF-8 can only ever make two-byte characters
  (U+0080-U+07FF), so a file with any of those is refused as ambiguous, and needs a BOM or
  `--encoding`. A cp932 file of half-width katakana is never shown with wrong names.

Staff IDs, wherever they come from (roster, registry, exceptions, IAM `StaffId` tags, account
names, service-account files): Unicode NFKC (full-width letters and digits become ASCII), then
trimmed of every kind of space, then upper case, then checked against STAFF_ID.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_LINE_CHARS = 8192
ENCODINGS = ("utf-8", "cp932")
STAFF_ID = re.compile(r"^[A-Z][0-9]{3,6}$")
BOM = b"\xef\xbb\xbf"


class InputError(Exception):
    """A file the review cannot trust as given: each problem names the file, line and value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Text:
    text: str
    encoding: str  # utf-8-sig, utf-8, cp932, ascii


def normalise_staff_id(value: object) -> str:
    """One spelling of a staff ID, whatever width, case or spacing it came in."""
    if not isinstance(value, str):
        return ""
    return unicodedata.normalize("NFKC", value).strip().upper()


def staff_id_or_none(value: object) -> str | None:
    """The normalised ID when it is one, else None."""
    sid = normalise_staff_id(value)
    return sid if STAFF_ID.match(sid) else None


def excerpt(value: str, limit: int = 40) -> str:
    """A value as an error quotes it: short, and with its control characters visible."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def decode(data: bytes, source: str, encoding: str | None = None) -> Text:
    """The text of an input file, by the rule in this module's docstring."""
    if len(data) > MAX_FILE_BYTES:
        raise InputError([f"{source}: {len(data):,} bytes, over the {MAX_FILE_BYTES:,} limit"])
    if encoding is not None and encoding not in ENCODINGS:
        raise InputError([f"{source}: encoding {encoding!r} is not one of {', '.join(ENCODINGS)}"])
    if data.startswith(BOM):
        if encoding == "cp932":
            raise InputError([f"{source}: has a UTF-8 BOM but --encoding cp932 was given"])
        text, name = _strict(data[3:], "utf-8", source), "utf-8-sig"
    elif encoding is not None:
        text, name = _strict(data, encoding, source), encoding
    elif data.isascii():
        text, name = data.decode("ascii"), "ascii"
    else:
        readings = {}
        for candidate in ENCODINGS:
            try:
                readings[candidate] = data.decode(candidate)
            except UnicodeDecodeError:
                continue
        if not readings:
            raise InputError([f"{source}: neither UTF-8 nor cp932: save it as CSV UTF-8"])
        two_byte = [c for c in readings.get("utf-8", "") if 0x80 <= ord(c) < 0x800]
        if len(readings) == 2 and two_byte:
            sample = two_byte[0]
            raise InputError([
                f"{source}: ambiguous: valid UTF-8 and valid cp932 with different text (for "
                f"example {sample!r} in UTF-8); save it with a BOM (CSV UTF-8) or give "
                f"--encoding utf-8|cp932"
            ])  # fmt: skip
        name, text = next(iter(readings.items()))  # UTF-8 first, when it may be
    long_lines = [n for n, line in enumerate(text.splitlines(), 1) if len(line) > MAX_LINE_CHARS]
    if long_lines:
        raise InputError(
            [f"{source}:{n}: a line over {MAX_LINE_CHARS} characters" for n in long_lines[:5]]
        )
    if "\x00" in text:
        raise InputError([f"{source}: contains NUL characters: not a text file"])
    return Text(text, name)


def _strict(data: bytes, encoding: str, source: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise InputError([f"{source}: not valid {encoding} (byte {e.start})"]) from None
