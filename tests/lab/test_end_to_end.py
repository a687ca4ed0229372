"""The day's delivery, end to end: the fund's sender uploads over SFTP, the intake loads the
files into the database, and a caseworker on the LGWAN terminal finds them over HTTPS."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from claimapp.generate import claim_file
from claimapp.uke import parse
from lab import podman as pm
from lab.delivery import (
    create_caseworker,
    db_scalar,
    quarantined,
    receipt_count,
    sftp_upload,
    terminal_browser,
    terminal_get,
    wait_for,
)
from lab.lab import UpReport
from lab.plan import LabPlan
from lab.probes import probe
from tests.lab.conftest import SiteRuns

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def caseworker(converged: SiteRuns, lab_plan: LabPlan) -> tuple[str, str]:
    return create_caseworker(lab_plan)


def test_sftp_delivery_becomes_rows_visible_over_https(
    caseworker: tuple[str, str], lab_plan: LabPlan
) -> None:
    seed = 10**6 + secrets.randbelow(8 * 10**6)
    data = claim_file(seed, receipts=40)
    recipient = parse(data).receipts[0].recipient_number
    before = receipt_count(lab_plan)
    sftp_upload(lab_plan, {f"{seed:07d}.UKE": data})
    wait_for(lambda: receipt_count(lab_plan) == before + 40, "the intake to load 40 receipts")
    found = terminal_get(lab_plan, f"/api/receipts?recipient={recipient}", caseworker)
    assert found["receipts"], found
    assert all(r["recipient_number"] == recipient for r in found["receipts"])
    # The read of personal data went to the audit log, from the terminal's own address.
    reads = db_scalar(
        lab_plan,
        "SELECT count(*) FROM audit_log WHERE actor = :'actor' AND address = '10.232.1.10'",
        actor=caseworker[0],
    )
    assert int(reads) >= 2


def test_a_bad_file_lands_in_quarantine_and_the_database_is_unchanged(
    converged: SiteRuns, lab_plan: LabPlan
) -> None:
    seed = 10**6 + secrets.randbelow(8 * 10**6)
    name = f"{seed:07d}-bad.UKE"
    receipts = receipt_count(lab_plan)
    files = db_scalar(lab_plan, "SELECT count(*) FROM claim_files")
    sftp_upload(lab_plan, {name: claim_file(seed, receipts=30, bad="totals")})
    wait_for(lambda: quarantined(lab_plan, name) is not None, f"{name} to reach quarantine")
    assert (quarantined(lab_plan, name) or {})["reason"] == "totals"
    assert receipt_count(lab_plan) == receipts
    assert db_scalar(lab_plan, "SELECT count(*) FROM claim_files") == files
    # A quarantine is an outcome, not a broken service.
    state = pm.exec_in(
        lab_plan.host("intake-1").container,
        ["systemctl", "is-failed", "claimapp-intake.service"],
        check=False,
    )
    assert state.stdout.strip() != "failed"


def test_the_fund_cannot_reach_the_application_nor_the_terminal_the_database(
    converged: SiteRuns, lab_plan: LabPlan
) -> None:
    fund = probe(lab_plan.host("sender-1").container, ["10.231.10.10:443", "10.231.20.10:5432"])
    assert fund == {"10.231.10.10:443": "EHOSTUNREACH", "10.231.20.10:5432": "EHOSTUNREACH"}
    terminal = probe(
        lab_plan.host("terminal-1").container, ["10.231.20.10:5432", "10.231.30.10:22"]
    )
    assert terminal == {"10.231.20.10:5432": "EHOSTUNREACH", "10.231.30.10:22": "EHOSTUNREACH"}


def test_the_fund_account_gets_no_shell(converged: SiteRuns, lab_plan: LabPlan) -> None:
    proc = pm.exec_in(
        lab_plan.host("sender-1").container,
        ["runuser", "-u", "fund", "--", "ssh", "-o", "BatchMode=yes", "fund@10.231.30.10", "id"],
        check=False,
        timeout=30,
    )
    assert proc.returncode != 0 or "uid=" not in proc.stdout
    assert "uid=" not in proc.stdout


def test_an_intake_that_cannot_run_fails_its_unit_and_alerts_until_a_good_run(
    converged: SiteRuns, lab_plan: LabPlan
) -> None:
    """Exit 2 (broken settings) is not an outcome like a quarantine: the unit fails and the
    alert goes where the backup's goes (critical journal, a FAILED file, the login message)."""
    container = lab_plan.host("intake-1").container
    config = "/etc/claimapp/claimapp.toml"

    def sh(script: str) -> str:
        return pm.exec_in(container, ["bash", "-c", script], check=False).stdout

    sh(f"cp -p {config} /root/claimapp.toml.saved && echo '[database' >> {config}")
    try:
        assert "rc=0" not in sh("systemctl start claimapp-intake.service; echo rc=$?")
        assert sh("systemctl is-failed claimapp-intake.service").strip() == "failed"
        sh("for i in $(seq 50); do test -e /srv/claims/intake-FAILED && break; sleep 0.2; done")
        flag = sh("cat /srv/claims/intake-FAILED")
        assert "claimapp intake FAILED on intake-1" in flag and "not valid TOML" in flag
        assert "intake FAILED" in sh("cat /run/motd.d/50-claimapp-intake")
        assert "not valid TOML" in sh("journalctl -t claimapp-intake -p crit --no-pager -n 5")
    finally:
        sh(f"cp -p /root/claimapp.toml.saved {config} && rm -f /root/claimapp.toml.saved")
    assert "rc=0" in sh("systemctl start claimapp-intake.service; echo rc=$?")
    assert sh("ls /srv/claims/intake-FAILED /run/motd.d/50-claimapp-intake 2>/dev/null") == ""


def test_a_caseworker_uses_the_pages_in_chromium_from_the_lgwan_terminal(
    caseworker: tuple[str, str], lab_plan: LabPlan, lab_up: UpReport, tmp_path: Path
) -> None:
    seed = 10**6 + secrets.randbelow(8 * 10**6)
    data = claim_file(seed, receipts=5)
    recipient = parse(data).receipts[0].recipient_number
    before = receipt_count(lab_plan)
    sftp_upload(lab_plan, {f"{seed:07d}.UKE": data})
    wait_for(lambda: receipt_count(lab_plan) == before + 5, "the intake to load 5 receipts")
    visit = terminal_browser(lab_plan, caseworker, recipient, tmp_path / "shots", lab_up.ca_cert)
    assert visit["ok"], visit["error"]
    pages = visit["pages"]
    assert [p["name"] for p in pages] == ["login", "search", "results", "receipt", "logged-out"]
    assert all(p["url"].startswith(f"https://{lab_plan.first('app').address}/") for p in pages)
    assert all(p["escaped"] == [] and Path(p["screenshot"]).stat().st_size > 0 for p in pages)
    # The browser's requests came from the terminal, over the LGWAN link.
    logins = db_scalar(
        lab_plan,
        "SELECT count(*) FROM audit_log WHERE actor = :'actor' AND action = 'login'"
        " AND success AND address = '10.232.1.10'",
        actor=caseworker[0],
    )
    assert int(logins) >= 1
