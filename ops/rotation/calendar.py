"""The rotation calendar: when each secret was last rotated, and whether it is due under the
stack's policy (`claims-dc:rotation.everyDays` in Pulumi.<stack>.yaml, carried into the
inventory as claims_dc_rotation_every_days).

A secret's last rotation is the last one of it the ledger shows reaching `retired`. A secret
is
    due         never rotated, or its last rotation is at least its kind's interval old
    not-due     rotated within the interval; the date it falls due is given
    under-way   a rotation of it stopped before `retired` (`rotate` resumes it)

`rotate` starts a new rotation only of a secret that is due, or of any with --early; it always
resumes one under way. After every run it publishes the same entries for the fleet board
(ops/rotation/status.py); `rotate --due --json` prints them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from infra.config import DEFAULT_ROTATION_DAYS, ROTATION_KINDS
from ops.rotation.ledger import Entry, Ledger
from ops.rotation.machine import pending

# The ledger's secret IDs are <prefix>[:<name>]; the policy is per kind.
KIND_OF_PREFIX = {
    "ssh-user-ca": "ssh-user-ca",
    "host-key": "host-keys",
    "db-login": "db-login",
    "tls": "tls",
    "aws-key": "aws",
    "sftp-key": "sftp-key",
}
STATUSES = ("due", "not-due", "under-way")


def kind_of(secret: str) -> str:
    kind = KIND_OF_PREFIX.get(secret.split(":", 1)[0])
    if kind is None:
        raise ValueError(f"secret {secret!r}: no rotation kind of {', '.join(ROTATION_KINDS)}")
    return kind


def policy(every_days: Mapping[str, object] | None) -> dict[str, int]:
    """Days between rotations per kind, from the inventory's claims_dc_rotation_every_days;
    kinds it leaves out, or an inventory older than the policy, keep the defaults."""
    out = dict(DEFAULT_ROTATION_DAYS)
    for kind, days in (every_days or {}).items():
        if kind in out and isinstance(days, int) and not isinstance(days, bool) and days > 0:
            out[kind] = days
    return out


@dataclass(frozen=True)
class Due:
    secret: str
    kind: str
    every_days: int
    status: str  # one of STATUSES
    last_rotated: str | None  # when its last rotation reached retired (ISO, UTC)
    age_days: int | None
    due_on: str | None  # the date it falls due (None: due now, never rotated)
    under_way_at: str | None = None  # the phase an unfinished rotation reached

    def describe(self) -> str:
        if self.status == "under-way":
            return f"a rotation stopped at {self.under_way_at}: rotate resumes it"
        if self.last_rotated is None:
            return "never rotated: due"
        when = f"last rotated {self.last_rotated[:10]} ({self.age_days} days ago)"
        if self.status == "due":
            return f"{when}; every {self.every_days} days: due since {self.due_on}"
        return f"{when}; every {self.every_days} days: due {self.due_on}"


def last_retired(entries: list[Entry], secret: str) -> Entry | None:
    done = [e for e in entries if e.secret == secret and e.phase == "retired" and e.outcome == "ok"]
    return done[-1] if done else None


def due(secret: str, ledger: Ledger, every: Mapping[str, int],
        now: dt.datetime | None = None, entries: list[Entry] | None = None) -> Due:  # fmt: skip
    now = now or dt.datetime.now(dt.UTC)
    kind = kind_of(secret)
    days = every[kind]
    stopped = pending(ledger, secret)
    last = last_retired(entries if entries is not None else ledger.entries(), secret)
    last_at = dt.datetime.fromisoformat(last.at) if last else None
    age = (now - last_at).days if last_at else None
    due_at = last_at + dt.timedelta(days=days) if last_at else None
    if stopped is not None:
        status = "under-way"
    elif due_at is None or now >= due_at:
        status = "due"
    else:
        status = "not-due"
    return Due(
        secret,
        kind,
        days,
        status,
        last.at if last else None,
        age,
        due_at.date().isoformat() if due_at else None,
        stopped.phase if stopped else None,
    )


def calendar(secrets: list[str], ledger: Ledger, every: Mapping[str, int],
             now: dt.datetime | None = None) -> list[Due]:  # fmt: skip
    entries = ledger.entries()
    return [due(s, ledger, every, now, entries) for s in secrets]
