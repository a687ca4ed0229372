"""The evidence pack on the lab: playbooks/evidence.yml reads every data-center host's effective
settings through the bastion and changes nothing there, the settings the lab converged to pass
their controls, the matrix lists every requirement, and the signed pack verifies until a file
in it is edited.

What the backups, the review and the rotation controls say depends on which lab tests ran
before this one; the unit tests (tests/unit/test_evidence.py) judge those on fixed evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.evidence import controls, pack
from ops.evidence.__main__ import main
from tests.lab.conftest import SiteRuns

pytestmark = pytest.mark.lab

HOST_CONTROLS = ("NET-HOSTFW", "NET-LISTEN", "NET-TLS", "AUTH-SSH", "AUTH-DB", "SYS-SANDBOX",
                 "NET-CLOSED", "NET-LINES", "NET-FLOWS", "DOCS-CONFIG", "COST")  # fmt: skip


def test_the_pack_of_the_lab(converged: SiteRuns, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "evidence"
    key = tmp_path / "keys" / "evidence"
    code = main(["--stack", "lab", "-i", str(converged.inventory), "--out", str(out),
                 "--key", str(key), "--json"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    rows = {r["id"]: r for r in result["matrix"]}
    assert set(rows) == {r["id"] for r in controls.load()["requirements"]}
    for control in HOST_CONTROLS:
        assert rows[control]["status"] == "PASS", (control, rows[control]["detail"])
    hosts = sorted(p.stem for p in (out / "hosts").glob("*.json"))
    assert hosts == ["app-1", "bastion-1", "db-1", "intake-1"]
    assert not [p for p in result["problems"] if "evidence play" in p], result["problems"]
    db = json.loads((out / "hosts" / "db-1.json").read_text())
    assert "hook input" in db["nftables"] and "passwordauthentication no" in db["sshd"]
    assert json.loads(db["pg_hba"])  # pg_hba_file_rules, as PostgreSQL reads them

    signers = pack.trusted_signers(key)
    assert pack.verify(out, signers) == []
    assert main(["verify", str(out), "--allowed-signers", str(signers)]) == 0
    (out / "hosts" / "app-1.json").write_text("{}")
    assert main(["verify", str(out), "--allowed-signers", str(signers)]) == 1
    assert "hosts/app-1.json: changed since it was signed" in capsys.readouterr().out


def test_reading_the_evidence_changes_nothing_on_a_host(converged: SiteRuns,
                                                         tmp_path: Path) -> None:  # fmt: skip
    from ops.playbook import run_playbook
    from tests.lab.conftest import changed_tasks

    run = run_playbook(converged.inventory.resolve(), "evidence.yml", "-e",
                       f"evidence_probe_dir={tmp_path}")  # fmt: skip
    assert run.ok, run.stdout[-3000:]
    # The only change is each host's file written on the control node.
    assert {task for task, _host in changed_tasks(run.stdout)} <= {
        "evidence_probe : Write the host's evidence on the control node"
    }
    checked = run_playbook(converged.inventory.resolve(), "evidence.yml", "--check", "-e",
                           f"evidence_probe_dir={tmp_path / 'check'}")  # fmt: skip
    assert checked.ok, checked.stdout[-3000:]
