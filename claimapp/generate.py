"""Synthetic claim files for tests, the demo and benchmarks: fake people, real format.

Deterministic for a seed. `bad` makes one specific kind of broken file, one per rejection reason
of the parser, so each rejection can be shown firing.

    python -m claimapp.generate --seed 7 --receipts 200 --month 2026-10 -o 1234567.UKE
    python -m claimapp.generate --seed 7 --bad totals -o broken.UKE
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from pathlib import Path

from claimapp.uke import ENCODING, ERA_STARTS, WELFARE_PREFIX

FAMILY = (
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "伊藤",
    "渡辺",
    "山本",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山田",
    "佐々木",
    "松本",
    "井上",
    "木村",
    "林",
    "斎藤",
    "清水",
    "山口",
)
GIVEN = (
    "太郎",
    "花子",
    "一郎",
    "美咲",
    "健太",
    "陽菜",
    "翔",
    "結衣",
    "大輔",
    "さくら",
    "直樹",
    "愛",
    "誠",
    "由美",
    "拓也",
    "真由美",
    "隆",
    "恵子",
    "浩二",
    "和子",
)
BAD_KINDS = ("encoding", "record", "order", "field", "totals", "payer", "duplicate")


def to_era(day: dt.date, with_day: bool = True) -> str:
    for code, start in ERA_STARTS:
        if day >= start:
            yy = day.year - start.year + 1
            return f"{code}{yy:02d}{day.month:02d}" + (f"{day.day:02d}" if with_day else "")
    raise ValueError(f"{day} is before the Meiji era")


def claim_file(
    seed: int,
    *,
    receipts: int = 50,
    month: dt.date = dt.date(2026, 10, 1),
    institution: str | None = None,
    bad: str | None = None,
) -> bytes:
    """One institution's month of welfare claims, as the fund would deliver it (cp932)."""
    if bad is not None and bad not in BAD_KINDS:
        raise ValueError(f"bad={bad!r}: choose one of {', '.join(BAD_KINDS)}")
    rng = random.Random(seed)  # noqa: S311 - reproducible fake data, not a secret
    institution = institution or f"{rng.randrange(10**6, 10**7):07d}"
    lines = [
        f"IR,1,{rng.randrange(1, 48):02d},1,{institution},,医療法人 テスト会 "
        f"第{seed}病院,{to_era(month, with_day=False)}"
    ]
    total = 0
    for number in range(1, receipts + 1):
        birth = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(0, 33000))
        name = f"{rng.choice(FAMILY)}　{rng.choice(GIVEN)}"  # full-width space, as on a receipt
        lines.append(
            f"RE,{number},1112,{to_era(month, with_day=False)},{name},"
            f"{rng.choice('12')},{to_era(birth)}"
        )
        points = 0
        details = []
        for _ in range(rng.randrange(1, 4)):
            details.append(
                f"SY,{rng.randrange(10**6, 10**7):07d},"
                f"{to_era(month - dt.timedelta(days=rng.randrange(0, 400)))},1,"
            )
        for _ in range(rng.randrange(1, 5)):
            p = rng.randrange(50, 5000)
            points += p
            details.append(
                f"SI,{rng.randrange(11, 99):02d},{rng.randrange(10**8, 10**9):09d},1,{p},1"
            )
        for _ in range(rng.randrange(0, 4)):
            p = rng.randrange(1, 800)
            points += p
            details.append(
                f"IY,21,{rng.randrange(10**8, 10**9):09d},"
                f"{rng.randrange(1, 30)}.{rng.randrange(0, 10)},{p},1"
            )
        recipient = f"{rng.randrange(10**6, 10**7):07d}"
        lines.append(
            f"KO,{WELFARE_PREFIX}{rng.randrange(10**5, 10**6):06d},{recipient},"
            f"{rng.randrange(1, 31)},{points}"
        )
        lines.extend(details)
        total += points
    lines.append(f"GO,{receipts},{total}")
    if bad == "record":
        lines.insert(2, "XX,unknown")
    elif bad == "order":
        lines[1], lines[2] = lines[2], lines[1]  # KO before its RE
    elif bad == "field":
        lines[1] = lines[1].rsplit(",", 1)[0] + ",5991399"  # 令和99年13月
    elif bad == "totals":
        lines[-1] = f"GO,{receipts},{total + 1}"  # the last line is the one that is wrong
    elif bad == "payer":
        ko = next(i for i, line in enumerate(lines) if line.startswith("KO,"))
        lines[ko] = "KO,13" + lines[ko][5:]  # a payer other than welfare
    elif bad == "duplicate" and receipts >= 2:
        second = next(i for i, line in enumerate(lines) if line.startswith("RE,2,"))
        lines[second] = lines[second].replace("RE,2,", "RE,1,", 1)
    data = ("\r\n".join(lines) + "\r\n").encode(ENCODING)
    if bad == "encoding":
        data = data.replace(b"RE,1,", b"RE,1,\x81\x20", 1)  # a lead byte with no trail byte
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m claimapp.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seed", type=int, default=1, help="same seed, same file")
    p.add_argument("--receipts", type=int, default=50)
    p.add_argument("--month", default="2026-10", help="billing month, YYYY-MM")
    p.add_argument("--bad", choices=BAD_KINDS, help="make this kind of broken file")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    args = p.parse_args(argv)
    try:
        month = dt.date.fromisoformat(f"{args.month}-01")
    except ValueError:
        p.error(f"--month {args.month!r}: use YYYY-MM")
    data = claim_file(args.seed, receipts=args.receipts, month=month, bad=args.bad)
    if args.output:
        args.output.write_bytes(data)
        print(f"wrote {args.output} ({args.receipts} receipts, {len(data)} bytes)", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
