"""The generations policy: keep the newest snapshot of each of the last N days, months, years.

Like restic's `forget --keep-daily/--keep-monthly/--keep-yearly`: a snapshot is kept when it is
the newest of a period that is among the newest N periods having snapshots, for any rule. The
newest snapshot is always kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ops.backuplib.repository import parse_iso


@dataclass(frozen=True)
class RetentionPolicy:
    daily: int = 35
    monthly: int = 12
    yearly: int = 5

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> RetentionPolicy:
        out = {}
        for k in ("daily", "monthly", "yearly"):
            v = d.get(k, getattr(cls, k))
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{where}: retention.{k} must be a whole number >= 0, got {v!r}")
            out[k] = v
        if out["daily"] < 1:
            raise ValueError(f"{where}: retention.daily must keep at least 1 snapshot")
        return cls(**out)

    def as_dict(self) -> dict[str, int]:
        return {"daily": self.daily, "monthly": self.monthly, "yearly": self.yearly}


def decide(
    snapshots: list[dict[str, Any]],
    policy: RetentionPolicy,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[str]]]:
    """(keep, forget, reasons by snapshot ID)."""
    ordered = sorted(snapshots, key=lambda s: (s["time"], s["id"]), reverse=True)
    reasons: dict[str, list[str]] = {}

    def bucket(rule: str, count: int, key: Any) -> None:
        seen: list[Any] = []
        for s in ordered:
            t: dt.datetime = parse_iso(s["time"])
            k = key(t)
            if k in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(k)
            reasons.setdefault(s["id"], []).append(f"{rule} {k}")

    bucket("daily", policy.daily, lambda t: t.strftime("%Y-%m-%d"))
    bucket("monthly", policy.monthly, lambda t: t.strftime("%Y-%m"))
    bucket("yearly", policy.yearly, lambda t: t.strftime("%Y"))
    if ordered:
        reasons.setdefault(ordered[0]["id"], []).append("newest")
    keep = [s for s in ordered if s["id"] in reasons]
    forget = [s for s in ordered if s["id"] not in reasons]
    return keep, forget, reasons
