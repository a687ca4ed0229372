"""Fuzzing the intake: seeded mutations of generated claim files (bytes flipped, inserted and
cut; fields replaced by hostile values; lines doubled, dropped, swapped) go through the real
intake against the real database. Each file loads whole or is quarantined whole with a reason
the parser gave; no exception escapes and no partial rows remain."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import psycopg

from claimapp.generate import claim_file
from claimapp.intake import MESSAGE_CHARS, ingest

FILES = 360
SEED = 20261203

HOSTILE_VALUES = (
    "",
    " ",
    "-1",
    "+1",
    "0x10",
    "1e999999",
    "1_000",
    "NaN",
    "inf",
    "1.0e3",
    "9" * 300,
    "1" * 25,
    "\x00",
    "\x1b[2J",
    "\x7f",
    "\u3000",
    "\uff10\uff11",
    "ﾃｽﾄ",
    "Ⅳ",
    "12" * 4,
    "5991399",
    "4320101",
    "5000101",
    "3640201",
    "50104",
    "00000",
    "A" * 390,
    "テスト,テスト",
    "\r",
    "sNaN",
    "-NaN",
    "Infinity",
    "1E5",
    "-0",
)


def _bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(b))
        match rng.randrange(4):
            case 0:
                b[at] = rng.randrange(256)
            case 1:
                b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
            case 2:
                del b[at : at + rng.randrange(1, 40)]
            case _:
                del b[at:]
                if not b:
                    b = bytearray(b"GO")
    return bytes(b)


def _fields(rng: random.Random, data: bytes) -> bytes:
    lines = data.decode("cp932", errors="surrogateescape").split("\r\n")
    for _ in range(rng.randrange(1, 3)):
        i = rng.randrange(max(len(lines) - 1, 1))
        fields = lines[i].split(",")
        fields[rng.randrange(1, len(fields)) if len(fields) > 1 else 0] = rng.choice(HOSTILE_VALUES)
        lines[i] = ",".join(fields)
    return "\r\n".join(lines).encode("cp932", errors="surrogateescape")


def _lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    match rng.randrange(5):
        case 0:
            lines.insert(i, lines[j])
        case 1:
            del lines[i]
        case 2:
            lines[i], lines[j] = lines[j], lines[i]
        case 3:
            lines.insert(i, b"   ")
        case _:
            return b"\n".join(lines)  # other line endings only: still the same claims
    return b"\r\n".join(lines)


MUTATIONS: tuple[Callable[[random.Random, bytes], bytes], ...] = (_bytes, _fields, _lines)


def _rows(conn: psycopg.Connection) -> tuple[int, int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM claim_files), (SELECT count(*) FROM receipts),"
        " (SELECT coalesce(sum(jsonb_array_length(details)), 0) FROM receipts)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_every_mutated_file_loads_whole_or_is_quarantined_whole(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    drop, quarantine, processed = tmp_path / "in", tmp_path / "q", tmp_path / "p"
    drop.mkdir()
    outcomes: dict[str, int] = {}
    for n in range(FILES):
        data = claim_file(n, receipts=rng.randrange(1, 6))
        for _ in range(rng.randrange(1, 3)):
            data = rng.choice(MUTATIONS)(rng, data)
        path = drop / f"{n:04d}.UKE"
        path.write_bytes(data)
        before = _rows(db)
        result = ingest(path, db, quarantine, processed)  # raises: the test fails
        after = _rows(db)
        if result.loaded:
            assert after[0] == before[0] + 1 and after[1] == before[1] + result.receipts
            assert (processed / path.name).read_bytes() == data
            outcomes["loaded"] = outcomes.get("loaded", 0) + 1
        else:
            assert after == before, f"{path.name}: partial rows after {result.reason}"
            reason = json.loads((quarantine / f"{path.name}.reason.json").read_text())
            assert reason["reason"] == result.reason
            # Every rejection is the parser's or the intake's own, never the catch-all.
            assert result.reason != "unreadable", f"{path.name}: {result.message}"
            assert len(reason["message"]) <= MESSAGE_CHARS
            outcomes[str(result.reason)] = outcomes.get(str(result.reason), 0) + 1
        assert not path.exists()
    # The mutations reached both outcomes and many kinds of rejection.
    assert outcomes.get("loaded", 0) >= 20, outcomes
    assert len(outcomes) >= 5, outcomes
