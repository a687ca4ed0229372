"""The lab owns its rotation ledger: a rerun closes the host-key rotations of hosts made anew
(their old key is gone) and leaves every other unfinished rotation to resume."""

from __future__ import annotations

from pathlib import Path

from lab.rotation import settle_remade_hosts
from ops.rotation.driver import Site
from ops.rotation.ledger import Entry, Ledger
from ops.rotation.machine import pending
from ops.rotation.sshca import line_fingerprint
from tests.support.inventory import make_key


def test_a_rerun_closes_only_the_rotations_of_hosts_made_anew(tmp_path: Path) -> None:
    old = {h: make_key(tmp_path / f"{h}-old") for h in ("app-1", "db-1")}
    new = {h: make_key(tmp_path / f"{h}-new") for h in ("app-1", "db-1")}
    remade = make_key(tmp_path / "db-1-remade")
    ledger = Ledger(tmp_path / "rotation" / "ledger.jsonl")
    (tmp_path / "rotation").mkdir()
    for host in ("app-1", "db-1"):
        for phase in ("staged", "published"):
            fingerprints = line_fingerprint(old[host]), line_fingerprint(new[host])
            ledger.append(Entry(f"host-key:{host}", f"r-{host}", phase, "ok", *fingerprints))
    ledger.append(Entry("db-login:claims_app", "r-db", "published", "ok", "claims_app_a",
                        "claims_app_b"))  # fmt: skip
    # app-1 still serves its old key beside the new one; db-1 was made anew by `lab up`.
    (tmp_path / "known_hosts").write_text(
        f"app-1,10.0.0.1 {' '.join(old['app-1'].split()[:2])}\n"
        f"app-1,10.0.0.1 {' '.join(new['app-1'].split()[:2])}\n"
        f"db-1,10.0.0.2 {' '.join(remade.split()[:2])}\n"
    )
    site = Site(tmp_path / "inventory.yml", {"app-1": "10.0.0.1", "db-1": "10.0.0.2"}, {}, {})
    assert settle_remade_hosts(site, ledger) == ["host-key:db-1"]
    assert pending(ledger, "host-key:db-1") is None
    closed = ledger.last("host-key:db-1")
    assert closed is not None and closed.outcome == "rolled-back"
    assert "made anew" in closed.note
    assert pending(ledger, "host-key:app-1") is not None  # resumes
    assert pending(ledger, "db-login:claims_app") is not None
    assert settle_remade_hosts(site, ledger) == []  # nothing left to close
