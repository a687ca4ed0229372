"""The rotation phase machine and its ledger: every phase recorded, a
failure before retirement rolls back what was done (newest first), a stopped run resumes at
the next phase, and no secret value ever reaches the ledger."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from ops.rotation.ledger import PHASES, Entry, Ledger, LedgerError
from ops.rotation.machine import Rotation, rotate

OLD, NEW = "SHA256:" + "o" * 43, "SHA256:" + "n" * 43


def rotation(calls: list[str], fail: str | None = None, undo_fails: str | None = None) -> Rotation:
    def act(phase: str, kind: str) -> object:
        def run() -> None:
            calls.append(f"{kind} {phase}")
            if (kind == "do" and phase == fail) or (kind == "undo" and phase == undo_fails):
                raise RuntimeError(f"{phase} refused")

        return run

    return Rotation(
        "host-key:app-1", OLD, NEW,
        do={p: act(p, "do") for p in PHASES},  # type: ignore[misc]
        undo={p: act(p, "undo") for p in PHASES[:-1]},  # type: ignore[misc]
    )  # fmt: skip


def test_a_rotation_goes_through_every_phase_and_records_each(tmp_path: Path) -> None:
    ledger, calls = Ledger(tmp_path / "ledger.jsonl"), []
    out = rotate(rotation(calls), ledger)
    assert out.outcome == "ok" and out.reached == "retired"
    assert calls == [f"do {p}" for p in PHASES]
    entries = ledger.entries()
    assert [e.phase for e in entries] == list(PHASES)
    assert {e.rotation for e in entries} == {out.rotation} and entries[0].old == OLD
    assert (tmp_path / "ledger.jsonl").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("fail", PHASES)
def test_a_failure_rolls_back_what_was_done_newest_first(tmp_path: Path, fail: str) -> None:
    ledger, calls = Ledger(tmp_path / "ledger.jsonl"), []
    out = rotate(rotation(calls, fail=fail), ledger)
    done = list(PHASES[: PHASES.index(fail)])
    assert out.outcome == "rolled-back" and fail in out.error
    assert calls == [f"do {p}" for p in [*done, fail]] + [f"undo {p}" for p in reversed(done)]
    last = ledger.last("host-key:app-1")
    assert last is not None and last.outcome == "rolled-back" and f"{fail} failed" in last.note


def test_a_failed_undo_is_recorded_and_stops_there(tmp_path: Path) -> None:
    ledger, calls = Ledger(tmp_path / "ledger.jsonl"), []
    out = rotate(rotation(calls, fail="verified", undo_fails="published"), ledger)
    assert out.outcome == "rollback-failed" and out.reached == "published"
    assert calls[-2:] == ["undo switched", "undo published"]  # staged is not undone after it
    last = ledger.last("host-key:app-1")
    assert last is not None and last.outcome == "rollback-failed"


def test_a_stopped_run_resumes_at_the_next_phase(tmp_path: Path) -> None:
    ledger, calls = Ledger(tmp_path / "ledger.jsonl"), []
    first = rotate(rotation(calls), ledger, until="published")  # e.g. an overlap window
    assert first.reached == "published"
    calls.clear()
    second = rotate(rotation(calls), ledger)
    assert second.resumed_from == "published" and second.rotation == first.rotation
    assert calls == ["do switched", "do verified", "do retired"]


def test_a_different_new_credential_waits_for_the_open_rotation(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    rotate(rotation([]), ledger, until="switched")
    other = rotation([])
    other.new = "SHA256:" + "x" * 43
    with pytest.raises(ValueError, match="stopped at switched"):
        rotate(other, ledger)


@pytest.mark.parametrize(
    "leak",
    [
        {"note": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn..."},
        {"details": {"password": "hunter2hunter2"}},
        {"note": "password=hunter2hunter2"},
        {"details": {"keys": ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]}},
    ],
)
def test_no_secret_value_is_ever_written(tmp_path: Path, leak: dict[str, object]) -> None:
    with pytest.raises(LedgerError, match="secret"):
        Entry("db-login:claims_app", "r1", "staged", **leak)  # type: ignore[arg-type]
    assert not (tmp_path / "ledger.jsonl").exists()


def test_bad_entries_name_the_field_and_a_torn_line_is_reported(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="phase 'done'"):
        Entry("host-key:app-1", "r1", "done")
    with pytest.raises(LedgerError, match="secret 'Host Key'"):
        Entry("Host Key", "r1", "staged")
    path = tmp_path / "ledger.jsonl"
    Ledger(path).append(Entry("host-key:app-1", "r1", "staged"))
    with path.open("a") as f:
        f.write('{"secret": "host-key:app-1", "rot')
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:2"):
        Ledger(path).entries()


def _append_many(path: str, n: int) -> None:
    ledger = Ledger(Path(path))
    for i in range(n):
        ledger.append(Entry(f"tls:app-{i % 3}", f"r{i}", "staged", note="x" * 2000))


def test_concurrent_writers_interleave_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    procs = [multiprocessing.Process(target=_append_many, args=(str(path), 200))
             for _ in range(4)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 800 and all(json.loads(line)["note"] == "x" * 2000 for line in lines)


def test_public_identities_are_not_mistaken_for_secrets(tmp_path: Path) -> None:
    e = Entry(
        "aws-key:d0103",
        "r1",
        "retired",
        old="AKIAIOSFODNN7EXAMPLE",
        new=NEW,
        details={"release": "9b1312d0a2c4e6f80123456789abcdef01234567", "serial": 42},
    )
    Ledger(tmp_path / "l.jsonl").append(e)
    assert Ledger(tmp_path / "l.jsonl").entries() == [e]


def test_an_unreachable_host_interrupts_without_rollback_and_a_rerun_resumes(
    tmp_path: Path,
) -> None:
    from ops.rotation.machine import Interrupted, pending

    ledger, calls = Ledger(tmp_path / "ledger.jsonl"), []
    down = {"yes": True}
    r = rotation(calls)

    def switch() -> None:
        calls.append("do switched")
        if down["yes"]:
            raise Interrupted("db-1 unreachable")

    r.do["switched"] = switch
    out = rotate(r, ledger)
    assert out.outcome == "interrupted" and out.reached == "published"
    assert not [c for c in calls if c.startswith("undo")]  # nothing rolled back
    last = ledger.last("host-key:app-1")
    assert last is not None and last.outcome == "failed" and "db-1 unreachable" in last.note
    stopped = pending(ledger, "host-key:app-1")
    assert stopped is not None and stopped.phase == "published"
    down["yes"] = False
    calls.clear()
    again = rotate(r, ledger)
    assert again.outcome == "ok" and again.resumed_from == "published"
    assert again.rotation == out.rotation
    assert calls == ["do switched", "do verified", "do retired"]
    assert pending(ledger, "host-key:app-1") is None


def test_a_failure_after_a_resume_rolls_back_the_earlier_runs_phases_too(tmp_path: Path) -> None:
    ledger, calls = Ledger(tmp_path / "ledger.jsonl"), []
    rotate(rotation(calls), ledger, until="published")
    calls.clear()
    out = rotate(rotation(calls, fail="verified"), ledger)
    assert out.outcome == "rolled-back"
    assert calls == ["do switched", "do verified", "undo switched", "undo published", "undo staged"]
