"""A host key a partner pins: the new key is announced with a notice (Japanese and English)
before the switch, and the switch waits for the partner's confirmation or the end of the notice
period; --switch-now goes ahead and says whose logins will fail. (The fund's delivery across a
real rotation, and its failure when the switch is forced early, are in the lab suite.)"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

from ops.rotation.host_keys import KnownHosts, host_key_rotation
from ops.rotation.ledger import Entry, Ledger
from ops.rotation.partners import (
    Notice,
    Terms,
    archive_notice,
    may_switch,
    read_notice,
    write_notice,
)
from ops.rotation.sshca import line_fingerprint

NOW = dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC)


def _key(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _notice(old: str, new: str, days: int = 14) -> Notice:
    return Notice("host-key:intake-1", "intake-1", "10.231.30.10", ("fund",), new,
                  line_fingerprint(new), line_fingerprint(old), NOW.isoformat(),
                  (NOW + dt.timedelta(days=days)).isoformat())  # fmt: skip


def test_the_notice_tells_the_fund_what_to_pin_and_when(tmp_path: Path) -> None:
    old, new = _key(tmp_path, "old"), _key(tmp_path, "new")
    notice = _notice(old, new)
    text = notice.text()
    assert text.startswith("社会保険診療報酬支払基金 御中")
    assert "SSH ホスト鍵更新のお知らせ" in text and "Subject: new SSH host key for intake-1" in text
    assert text.count(line_fingerprint(new)) == 2 and text.count(line_fingerprint(old)) == 2
    assert f"intake-1,10.231.30.10 {new}" in text  # the known_hosts line, as is
    assert "2026-12-17 10:00 JST" in text  # 01:00 UTC + 14 days, in Japan's time
    assert "UpdateHostKeys yes" in text and "PRIVATE" not in text
    written = write_notice(tmp_path / "notices", notice)
    assert written.read_text(encoding="utf-8") == text
    assert read_notice(tmp_path / "notices", "intake-1") == notice
    archive_notice(tmp_path / "notices", "intake-1")
    assert read_notice(tmp_path / "notices", "intake-1") is None
    kept = sorted(p.name for p in (tmp_path / "notices" / "sent").iterdir())
    assert kept == ["host-key-intake-1-20261203T0100.json", "host-key-intake-1-20261203T0100.txt"]


def test_the_switch_waits_for_the_partner_or_the_end_of_the_notice(tmp_path: Path) -> None:
    notice = _notice(_key(tmp_path, "old"), _key(tmp_path, "new"))
    week = dt.timedelta(days=7)
    wait, why = may_switch(notice, Terms(week), NOW + dt.timedelta(days=1))
    assert not wait and "--partner-confirmed fund" in why and "2026-12-17 10:00 JST" in why
    ok, why = may_switch(notice, Terms(week, frozenset({"fund"})), NOW)
    assert ok and "confirmation of fund" in why
    ok, why = may_switch(notice, Terms(week), NOW + dt.timedelta(days=14))
    assert ok and "notice period ended" in why
    ok, why = may_switch(notice, Terms(week, frozenset({"someoneelse"}), switch_now=True), NOW)
    assert ok and "--switch-now" in why and "Host key verification failed" in why


class RecordedSteps:
    def __init__(self) -> None:
        self.ran: list[tuple[str, str]] = []

    def run(self, step: str, hosts: str, **extra: Any) -> None:
        self.ran.append((step, hosts))


def _rotation(tmp_path: Path, ledger: Ledger, terms: Terms, pinned: tuple[str, ...] = ("fund",)
              ) -> tuple[Any, str, RecordedSteps]:  # fmt: skip
    old = (tmp_path / "served").read_text()
    known = KnownHosts(tmp_path / "known_hosts")
    if not known.path.exists():
        known.path.write_text(f"intake-1,10.231.30.10 {old}\n")
    steps = RecordedSteps()
    rotation, stop = host_key_rotation(
        "intake-1", "10.231.30.10", steps, known, tmp_path / "rotation", ledger,  # type: ignore[arg-type]
        pinned_by=pinned, terms=terms,
    )  # fmt: skip
    return rotation, stop, steps


def test_a_pinned_key_stops_at_published_and_resumes_on_confirmation(tmp_path: Path) -> None:
    (tmp_path / "served").write_text(_key(tmp_path, "served"))
    ledger = Ledger(tmp_path / "ledger.jsonl")
    week = dt.timedelta(days=7)
    rotation, stop, _ = _rotation(tmp_path, ledger, Terms(week))
    assert stop == "published" and "announced to fund" in rotation.notes["published"]
    _, stop, _ = _rotation(tmp_path, ledger, Terms(week), pinned=())
    assert stop == "retired"  # nobody outside pins it: no waiting
    # As if the first run had staged and published: the new key handed over, the notice out.
    new = _key(tmp_path, "next")
    out = tmp_path / "rotation"
    out.mkdir(exist_ok=True)
    (out / "intake-1.next.pub").write_text(new + " intake-1\n")
    old_fp = line_fingerprint((tmp_path / "served").read_text())
    for phase in ("staged", "published"):
        ledger.append(
            Entry("host-key:intake-1", "r1", phase, old=old_fp, new=line_fingerprint(new))
        )
    KnownHosts(tmp_path / "known_hosts").add("intake-1", "10.231.30.10", new)
    rotation, stop, steps = _rotation(tmp_path, ledger, Terms(week))
    notice = read_notice(out / "notices", "intake-1")
    assert notice is not None and notice.new_fingerprint == line_fingerprint(new)  # told again
    assert stop == "published" and steps.ran == []
    rotation, stop, _ = _rotation(tmp_path, ledger, Terms(week, frozenset({"fund"})))
    assert stop == "retired" and "confirmation of fund" in rotation.notes["switched"]
    rotation, stop, _ = _rotation(tmp_path, ledger, Terms(week, switch_now=True))
    assert stop == "retired" and "--switch-now" in rotation.notes["switched"]


def test_a_damaged_notice_stops_the_rotation_and_names_the_file(tmp_path: Path) -> None:
    import pytest

    from ops.rotation.steps import StepFailed

    notices = tmp_path / "notices"
    notices.mkdir()
    (notices / "host-key-intake-1.json").write_text("{not json")
    with pytest.raises(StepFailed, match=r"host-key-intake-1\.json: not a notice this tool wrote"):
        read_notice(notices, "intake-1")
