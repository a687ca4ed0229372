"""The rotation calendar and what a rerun does: an interrupted run followed by the same command
resumes only what is unfinished; a secret whose rotation finished is not rotated again until
it is due, unless asked (--early); the calendar says when each is due."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import DEFAULT_ROTATION_DAYS
from ops.rotation.__main__ import main
from ops.rotation.calendar import calendar, due, kind_of, policy
from ops.rotation.driver import Options, Planned, run_planned
from ops.rotation.ledger import PHASES, Entry, Ledger
from ops.rotation.machine import Interrupted, Rotation, pending
from ops.rotation.steps import StepFailed

EVERY = dict(DEFAULT_ROTATION_DAYS)


class FakeSecret:
    """A secret whose phases are recorded; `down` makes its `switched` phase unreachable. A
    rotation under way keeps its new credential, as the real ones read it from the ledger."""

    def __init__(self, name: str, calls: list[str], ledger: Ledger) -> None:
        self.name, self.calls, self.ledger, self.down = name, calls, ledger, False

    def planned(self) -> Planned:
        def build() -> tuple[Rotation, str]:
            stopped = pending(self.ledger, self.name)
            new = stopped.new if stopped else f"SHA256:{self.name}-{len(self.calls)}"

            def act(phase: str) -> Any:
                def run() -> None:
                    if phase == "switched" and self.down:
                        raise Interrupted(f"{self.name} unreachable")
                    self.calls.append(f"{self.name} {phase}")

                return run

            return Rotation(self.name, "SHA256:old", new, {p: act(p) for p in PHASES}), "retired"

        return Planned(self.name, build)


def test_a_resume_touches_only_what_is_unfinished(tmp_path: Path) -> None:
    ledger, calls = Ledger(tmp_path / "ledger.jsonl"), []
    names = ("host-key:app-1", "host-key:db-1", "db-login:x")
    secrets = [FakeSecret(n, calls, ledger) for n in names]
    secrets[1].down = True  # db-1 stops answering mid-rotation
    first = run_planned([s.planned() for s in secrets], EVERY, ledger, Options())
    assert [o.outcome for o in first] == ["ok", "interrupted", "ok"]
    secrets[1].down = False
    calls.clear()
    again = run_planned([s.planned() for s in secrets], EVERY, ledger, Options())
    assert [o.outcome for o in again] == ["not-due", "ok", "not-due"]
    assert calls == [f"host-key:db-1 {p}" for p in ("switched", "verified", "retired")]
    assert again[1].resumed_from == "published" and again[1].rotation == first[1].rotation
    assert "every 365 days: due" in again[0].note and "--early" in again[0].note
    # A third run: everything finished, nothing starts.
    calls.clear()
    third = run_planned([s.planned() for s in secrets], EVERY, ledger, Options())
    assert {o.outcome for o in third} == {"not-due"} and calls == []
    # Asked for explicitly, every one rotates again.
    early = run_planned([s.planned() for s in secrets], EVERY, ledger, Options(early=True))
    assert [o.outcome for o in early] == ["ok", "ok", "ok"] and len(calls) == 15


def test_a_secret_whose_interval_has_passed_is_due_again(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=100)).isoformat(timespec="seconds")
    for phase in PHASES:
        ledger.append(Entry("db-login:claims_app", "r1", phase, at=long_ago))
        ledger.append(Entry("host-key:app-1", "r2", phase, at=long_ago))
    login, host = calendar(["db-login:claims_app", "host-key:app-1"], ledger, EVERY)
    assert login.status == "due" and login.age_days == 100  # quarterly
    assert host.status == "not-due" and host.every_days == 365
    assert host.due_on == (dt.datetime.fromisoformat(long_ago) + dt.timedelta(days=365)).date(
    ).isoformat()  # fmt: skip
    calls: list[str] = []
    planned = [
        FakeSecret(n, calls, ledger).planned() for n in ("db-login:claims_app", "host-key:app-1")
    ]
    out = run_planned(planned, EVERY, ledger, Options())
    assert [o.outcome for o in out] == ["ok", "not-due"]


def test_the_calendar_names_never_rotated_and_under_way(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(Entry("tls:app-1", "r1", "staged"))
    ledger.append(Entry("tls:app-1", "r1", "published"))
    never = due("sftp-key:fund", ledger, EVERY)
    assert never.status == "due" and never.last_rotated is None
    assert never.describe() == "never rotated: due"
    stopped = due("tls:app-1", ledger, EVERY)
    assert stopped.status == "under-way" and stopped.under_way_at == "published"
    assert kind_of("aws-key:l0001") == "aws" and kind_of("host-key:db-1") == "host-keys"
    with pytest.raises(ValueError, match="no rotation kind"):
        kind_of("password:x")


def test_the_policy_takes_the_inventorys_days_and_keeps_defaults_for_the_rest() -> None:
    got = policy({"db-login": 30, "host-keys": "yearly", "tls": True, "nope": 3})
    assert got["db-login"] == 30
    assert got["host-keys"] == 365 and got["tls"] == 60  # not a number of days: the default
    assert "nope" not in got and policy(None) == EVERY


def _inventory(tmp_path: Path, every: dict[str, int]) -> Path:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {
        "vars": {"claims_dc_rotation_every_days": every},
        "children": {"datacenter": {"hosts": {
            "app-1": {"ansible_host": "192.0.2.10"},
            "intake-1": {"ansible_host": "192.0.2.30", "claims_dc_host_key_pinned_by": ["fund"]},
        }}, "role_app": {"hosts": {"app-1": None}}},
    }}))  # fmt: skip
    return inventory


def test_rotate_due_lists_the_calendar_with_json_before_or_after(
    tmp_path: Path, capsys: Any
) -> None:
    inventory = _inventory(tmp_path, {"host-keys": 180})
    ledger = Ledger(tmp_path / "rotation" / "ledger.jsonl")
    for phase in PHASES:
        ledger.append(Entry("host-key:app-1", "r1", phase))
    kinds = ["host-keys", "tls"]
    assert main(["-i", str(inventory), "rotate", "--due", *kinds, "--json"]) == 1
    after = json.loads(capsys.readouterr().out)["calendar"]
    assert main(["--json", "-i", str(inventory), "rotate", "--due", *kinds]) == 1
    before = json.loads(capsys.readouterr().out)["calendar"]
    assert [(d["secret"], d["status"]) for d in after] == [
        ("host-key:app-1", "not-due"), ("host-key:intake-1", "due"), ("tls:app-1", "due"),
    ]  # fmt: skip
    assert [(d["secret"], d["status"]) for d in before] == [
        (d["secret"], d["status"]) for d in after
    ]
    assert after[0]["every_days"] == 180 and after[0]["age_days"] == 0
    assert main(["rotate", "-i", str(inventory), "--due", "host-keys"]) == 1
    text = capsys.readouterr().out
    assert "host-key:app-1" in text and "every  180 d" in text and "never rotated" in text
    assert main(["-i", str(inventory), "rotate"]) == 2
    assert "rotate needs KIND" in capsys.readouterr().err
    assert main(["-i", str(inventory), "rotate", "passwords"]) == 2
    assert "unknown kind 'passwords'" in capsys.readouterr().err
    assert main(["-i", str(inventory), "rotate", "host-keys", "--limit", "db-9"]) == 2
    assert "--limit db-9: not a data-center host" in capsys.readouterr().err
    assert main(["-i", str(inventory), "rotate", "host-keys", "--notice", "200d"]) == 2
    assert "at most 90 days" in capsys.readouterr().err


def test_a_user_ca_rotation_under_way_is_not_skipped_silently(tmp_path: Path) -> None:
    """Without the operator key, `rotate all` skips starting a user-CA rotation, but one that
    stopped halfway is a failure to resume, named, not a quiet skip."""
    from ops.rotation.driver import Site, Skip, plan

    site = Site(tmp_path / "inventory.yml", {}, {}, {})
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(Skip, match="no operator key"):
        plan("ssh-user-ca", site, None, ledger, Options())  # type: ignore[arg-type]
    ledger.append(Entry("ssh-user-ca", "r1", "staged"))
    with pytest.raises(StepFailed, match="a rotation is under way"):
        plan("ssh-user-ca", site, None, ledger, Options())  # type: ignore[arg-type]
