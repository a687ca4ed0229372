"""The national list of local government codes (全国地方公共団体コード), shipped as data:
ops/fleet/data/municipalities.csv, whose header names its source and date. A tenant's code must
carry the right check digit (JIS X 0402, as the stack loader checks) and be on the list, and the
name given must be the list's.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from infra.config import municipality_check_digit

DATA = Path(__file__).resolve().parent / "data" / "municipalities.csv"


class CodeError(ValueError):
    pass


@dataclass(frozen=True)
class Municipality:
    code: str
    prefecture: str
    city: str  # empty for a prefecture itself

    @property
    def name(self) -> str:
        return self.city or self.prefecture


@cache
def code_list() -> dict[str, Municipality]:
    with DATA.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {r["code"]: Municipality(r["code"], r["prefecture"], r["city"]) for r in rows}


def source() -> str:
    """The list's own statement of where it comes from and as of when."""
    with DATA.open(encoding="utf-8") as f:
        return " ".join(line[1:].strip() for line in f if line.startswith("#"))


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def look_up(code: str, name: str) -> Municipality:
    """The municipality `code` names, if the code is well formed, on the list, and `name` is
    its name (alone, or after its prefecture's)."""
    code = _norm(code)
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        raise CodeError(f"--code {code!r}: a local government code is six digits, e.g. 402028")
    digit = municipality_check_digit(code[:5])
    if int(code[5]) != digit:
        raise CodeError(f"--code {code}: its check digit must be {digit} (JIS X 0402), "
                        f"not {code[5]}: {code[:5]}{digit}?")  # fmt: skip
    found = code_list().get(code)
    if found is None:
        raise CodeError(f"--code {code}: not on the list of local government codes ({source()})")
    given = _norm(name)
    if given not in (found.name, found.prefecture + found.city):
        raise CodeError(f"--name {name!r}: code {code} is {found.prefecture}{found.city}, "
                        f"so the name is {found.name!r}")  # fmt: skip
    return found
