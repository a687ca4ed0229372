"""One phase machine for every secret, after AWS Secrets Manager's rotation steps and
Teleport's CA rotation phases:

    staged     the new credential exists; nothing uses or trusts it yet
    published  everything that must trust it does (hosts trust the new CA, operators'
               known_hosts hold the new host key, the fund's key is accepted), the old too
    switched   users of the credential use the new one (the application logs in as the other
               role, nginx serves the new certificate)
    verified   the new one was tried over a fresh connection and works
    retired    the old one is withdrawn (untrusted, revoked, disabled, deleted) and was tried
               and refused

Until `retired`, any failure rolls back the phases done so far, newest first, so the old
credential works throughout; after it, there is nothing to roll back to. Each phase is
recorded in the ledger as it completes, so a run that stopped (a crash) resumes at the next
phase of the same rotation. A phase that could not reach a host raises `Interrupted`: nothing
was refused, so nothing is rolled back (undoing would need the same host); the ledger records
`failed` and the next run resumes at that phase, whose actions are idempotent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from ops.rotation.ledger import PHASES, Entry, Ledger

Action = Callable[[], None]


class Interrupted(Exception):
    """A phase could not finish because a host was unreachable: resume, do not roll back."""


@dataclass
class Rotation:
    """What rotating one secret means: an action per phase and an undo per reversible phase.
    `old` and `new` are the credentials' public identities (fingerprint, serial, key ID)."""

    secret: str
    old: str
    new: str
    do: dict[str, Action]  # phase -> action
    undo: dict[str, Action] = field(default_factory=dict)  # phase -> its reversal
    # phase -> why it happened as it did, or why the rotation waits after it (the ledger's note)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    secret: str
    rotation: str
    reached: str | None  # the last phase completed
    outcome: str  # ok | interrupted | rolled-back | rollback-failed
    resumed_from: str | None = None
    error: str = ""
    old: str = ""  # the credentials' public identities, as in the ledger
    new: str = ""
    note: str = ""  # why it stopped where it did (a partner's confirmation awaited), or why not run


def rotate(rotation: Rotation, ledger: Ledger, *, until: str = "retired") -> Outcome:
    if set(rotation.do) != set(PHASES):
        missing = sorted(set(PHASES) - set(rotation.do))
        raise ValueError(f"{rotation.secret}: no action for {', '.join(missing)}")
    last = pending(ledger, rotation.secret)
    resuming = last is not None
    if resuming and last is not None and last.new != rotation.new:
        raise ValueError(
            f"{rotation.secret}: rotation {last.rotation} to {last.new} stopped at {last.phase}; "
            f"resume it or roll it back before rotating to {rotation.new}"
        )
    rid = last.rotation if resuming and last else secrets.token_hex(6)
    start = PHASES.index(last.phase) + 1 if resuming and last else 0
    done: list[str] = list(PHASES[:start])
    stop = PHASES.index(until)
    for phase in PHASES[start : stop + 1]:
        try:
            rotation.do[phase]()
        except Interrupted as e:
            note = f"{phase} interrupted: {e}; rerun to resume at {phase}"
            ledger.append(
                Entry(rotation.secret, rid, phase, "failed", rotation.old, rotation.new, note[:500])
            )
            return Outcome(
                rotation.secret,
                rid,
                done[-1] if done else None,
                "interrupted",
                PHASES[start - 1] if start else None,
                note,
                old=rotation.old,
                new=rotation.new,
            )
        except Exception as e:
            return _roll_back(
                rotation, ledger, rid, done, phase, e, PHASES[start - 1] if start else None
            )
        note = rotation.notes.get(phase, "")[:500]
        ledger.append(Entry(rotation.secret, rid, phase, "ok", rotation.old, rotation.new, note))
        done.append(phase)
    reached = done[-1] if done else None
    return Outcome(
        rotation.secret,
        rid,
        reached,
        "ok",
        PHASES[start - 1] if start else None,
        old=rotation.old,
        new=rotation.new,
        note=rotation.notes.get(reached, "") if reached and reached != "retired" else "",
    )


def _roll_back(
    rotation: Rotation,
    ledger: Ledger,
    rid: str,
    done: list[str],
    failed: str,
    error: Exception,
    resumed_from: str | None,
) -> Outcome:
    why = f"{failed} failed: {type(error).__name__}: {error}"
    for phase in reversed(done):
        undo = rotation.undo.get(phase)
        if undo is None:
            continue
        try:
            undo()
        except Exception as e:
            note = f"{why}; undoing {phase} failed: {type(e).__name__}: {e}"
            ledger.append(
                Entry(
                    rotation.secret,
                    rid,
                    phase,
                    "rollback-failed",
                    rotation.old,
                    rotation.new,
                    note[:500],
                )
            )
            return Outcome(
                rotation.secret,
                rid,
                phase,
                "rollback-failed",
                resumed_from,
                note,
                old=rotation.old,
                new=rotation.new,
            )
    ledger.append(
        Entry(
            rotation.secret,
            rid,
            done[0] if done else "staged",
            "rolled-back",
            rotation.old,
            rotation.new,
            why[:500],
        )
    )
    return Outcome(
        rotation.secret,
        rid,
        None,
        "rolled-back",
        resumed_from,
        why,
        old=rotation.old,
        new=rotation.new,
    )


def _last_ok(ledger: Ledger, secret: str, rotation_id: str) -> Entry | None:
    """After an interruption: the last phase of that rotation that completed, if any. With
    none, the rotation had not begun, and the next run starts afresh."""
    done = [
        e
        for e in ledger.entries()
        if e.secret == secret and e.rotation == rotation_id and e.outcome == "ok"
    ]
    return done[-1] if done else None


def pending(ledger: Ledger, secret: str) -> Entry | None:
    """The last completed phase of a rotation of `secret` that has not reached `retired`
    (stopped or interrupted): what a rerun resumes. None when there is none."""
    last = ledger.last(secret)
    if last is not None and last.outcome == "failed":
        last = _last_ok(ledger, secret, last.rotation)
    return last if last is not None and last.outcome == "ok" and last.phase != "retired" else None
