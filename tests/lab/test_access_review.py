"""The access review on the lab: access_review.yml runs the review from the bastion
against the real hosts, PostgreSQL on db-1 and the IAM of the lab's AWS endpoint, with three
problems seeded; the report is signed there and fetched. A source that cannot be read makes
the review INCOMPLETE, never PASS."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import StackConfig
from lab import podman as pm
from lab import review
from lab.fleet import published
from lab.lab import UpReport
from lab.plan import LabPlan
from ops.awsapi import Endpoint
from ops.playbook import PlaybookRun, run_playbook
from tests.lab.conftest import SiteRuns

pytestmark = pytest.mark.lab

CLI = "/usr/local/sbin/claims-dc-access-review"
CONFIG = "/etc/claims-dc/access-review"
HOME = "/var/lib/claims-dc-review"


def _findings(r: dict[str, Any]) -> set[tuple[str, str, str]]:
    # The lab suite's own throwaway caseworkers (test_end_to_end, cw.<hex>) are orphans by
    # design; they are not this test's concern.
    return {
        (f["check"], f["system"], f["account"])
        for f in r["findings"]
        if not (f["system"] == "app" and f["account"].startswith("cw."))
    }


@pytest.fixture(scope="module")
def seeded(converged: SiteRuns, lab_plan: LabPlan, lab_up: UpReport) -> Iterator[Path]:
    inventory_dir = converged.inventory.parent
    review.seed(lab_plan, inventory_dir, lab_up.endpoint_url, lab_up.ca_cert)
    yield inventory_dir
    review.unseed(lab_plan, lab_up.endpoint_url, lab_up.ca_cert)


@pytest.fixture(scope="module")
def first(seeded: Path, converged: SiteRuns) -> tuple[PlaybookRun, Path, dict[str, Any]]:
    shutil.rmtree(seeded / review.REPORTS, ignore_errors=True)
    run = run_playbook(str(converged.inventory), "access_review.yml")
    assert run.ok, run.stdout[-4000:] + run.stderr[-1500:]
    out = review.latest_report(seeded)
    assert out is not None
    return run, out, review.read_report(out)


def bastion_cli(plan: LabPlan, *args: str) -> tuple[int, dict[str, Any]]:
    """The installed review on the bastion, as its service account, with the play's inputs."""
    argv = [
        "runuser", "-u", "claims-dc-review", "--", CLI, "run", "--json",
        f"--roster={CONFIG}/roster.csv", f"--keys={CONFIG}/keys.csv",
        f"--service-accounts={CONFIG}/services.toml", f"--inventory={CONFIG}/targets.yml",
        "--host-group=reviewed", "--ssh-user=claims-dc-review",
        f"--ssh-key={HOME}/keys/probe_ed25519", f"--known-hosts={CONFIG}/known_hosts",
        "--timeout=10", *args,
    ]  # fmt: skip
    proc = pm.exec_in(plan.first("bastion").container, argv, check=False, timeout=300)
    return proc.returncode, json.loads(proc.stdout or "null") or {"stderr": proc.stderr}


def test_every_layer_is_read_completely_from_the_bastion(
    first: tuple[PlaybookRun, Path, dict[str, Any]],
    lab_plan: LabPlan,
    lab_config: StackConfig,
    lab_endpoint: Endpoint,
) -> None:
    _, _, r = first
    # The verdict went to the fleet board too, from the bastion's own place.
    status = published(lab_endpoint, lab_config, "bastion", "bastion-1", "review")
    assert (status.body["verdict"], status.body["findings"]) == (r["verdict"], len(r["findings"]))
    assert status.body["incomplete"] == 0
    scopes = {s["system"]: s for s in r["scopes"]}
    datacenter = [h.name for h in lab_plan.hosts if h.role in ("app", "db", "intake", "bastion")]
    assert set(scopes) == {"aws", "db", "app"} | {f"host:{h}" for h in datacenter}
    assert all(s["status"] == "COMPLETE" for s in scopes.values()), scopes
    assert all(scopes[f"host:{h}"]["population"] >= 20 for h in datacenter)
    assert scopes["db"]["population"] >= 3 and "through host db-1" in scopes["db"]["reason"]
    assert scopes["aws"]["population"] >= 2  # the seeded user and the stack's roles
    assert r["roster"]["people"] == 5


def test_the_seeded_problems_are_found_and_nothing_else(
    first: tuple[PlaybookRun, Path, dict[str, Any]], lab_plan: LabPlan
) -> None:
    _, _, r = first
    assert r["verdict"] == "FINDINGS"
    assert _findings(r) == review.seeded_findings(lab_plan)
    by_check = {f["check"]: f for f in r["findings"]}
    assert "left on" in by_check["ACR-002"]["evidence"]
    assert "never used" in by_check["IAM-005"]["evidence"]
    assert "in no one's name" in by_check["ACR-006"]["evidence"]
    assert any("CIS AWS Foundations Benchmark v3.0.0 1.11" in x
               for x in by_check["IAM-005"]["references"])  # fmt: skip


def test_accepted_risks_are_suppressed_with_their_approval(
    first: tuple[PlaybookRun, Path, dict[str, Any]],
) -> None:
    _, _, r = first
    suppressed = {(f["check"], f["account"]) for f in r["suppressed"]}
    assert ("DB-001", "postgres") in suppressed and ("HOST-003", "opsadmin") in suppressed
    assert all(f["exception"]["approver"] and f["exception"]["expiry"] for f in r["suppressed"])


def test_the_fetched_report_verifies_and_an_edit_is_caught(
    first: tuple[PlaybookRun, Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, out, _ = first
    assert review.verify(out) == []
    copy = tmp_path / "review"
    shutil.copytree(out, copy)
    csv = copy / "review.csv"
    edited = csv.read_bytes().replace(b",critical,", b",low,")  # the leaver, played down
    assert edited != csv.read_bytes()
    csv.write_bytes(edited)
    assert review.verify(copy) == ["review.csv: changed since it was signed"]


def test_the_review_key_runs_the_probe_and_nothing_else(
    first: tuple[PlaybookRun, Path, dict[str, Any]], lab_plan: LabPlan, tmp_path: Path
) -> None:
    db = lab_plan.first("db")
    ssh = [
        "runuser", "-u", "claims-dc-review", "--", "ssh", "-i", f"{HOME}/keys/probe_ed25519",
        "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={CONFIG}/known_hosts",
        "-o", "StrictHostKeyChecking=yes", f"claims-dc-review@{db.address}",
    ]  # fmt: skip
    bastion = lab_plan.first("bastion").container
    asked = pm.exec_in(bastion, [*ssh, "cat /etc/shadow; id"], check=False, timeout=60)
    data = json.loads(asked.stdout)  # whatever is asked, the forced command runs the probe
    assert data["format"] and "postgres" in data and "root:" not in asked.stdout
    sudo = pm.exec_in(db.container, ["sudo", "-l", "-U", "claims-dc-review"]).stdout
    assert 'NOPASSWD: /usr/local/libexec/claims-dc-access-probe ""' in sudo
    assert "(ALL" not in sudo.split("may run the following commands")[-1]
    # The key itself, from anywhere but the bastion, is refused (from=). The control node
    # cannot reach db-1 at all (only the bastion), so "elsewhere" is db-1 itself, over loopback.
    key = pm.exec_in(bastion, ["cat", f"{HOME}/keys/probe_ed25519"]).stdout
    pm.podman("exec", "-i", db.container, "sh", "-c",
              "umask 077 && cat > /root/stolen_probe_key", input_bytes=key.encode())  # fmt: skip
    try:
        elsewhere = pm.exec_in(
            db.container,
            ["ssh", "-i", "/root/stolen_probe_key", "-o", "BatchMode=yes",
             "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
             "claims-dc-review@127.0.0.1", "true"],
            check=False, timeout=60,
        )  # fmt: skip
    finally:
        pm.exec_in(db.container, ["rm", "-f", "/root/stolen_probe_key"])
    assert elsewhere.returncode == 255 and "Permission denied" in elsewhere.stderr


def test_an_unreachable_host_makes_the_review_incomplete(
    first: tuple[PlaybookRun, Path, dict[str, Any]], lab_plan: LabPlan
) -> None:
    intake = lab_plan.first("intake")
    pm.exec_in(intake.container, ["systemctl", "stop", "ssh.service"])
    try:
        code, r = bastion_cli(lab_plan, "--out=/tmp/review-unreachable")
    finally:
        pm.exec_in(intake.container, ["systemctl", "start", "ssh.service"])
    assert code == 3 and r["verdict"] == "INCOMPLETE"
    scope = next(s for s in r["scopes"] if s["system"] == f"host:{intake.name}")
    assert scope["status"] == "INCOMPLETE" and str(intake.address) in scope["reason"]


def test_a_database_the_probe_cannot_read_fails_the_play_closed(
    first: tuple[PlaybookRun, Path, dict[str, Any]],
    converged: SiteRuns,
    lab_plan: LabPlan,
    seeded: Path,
) -> None:
    db = lab_plan.first("db")
    pm.exec_in(db.container, ["systemctl", "stop", "postgresql@15-main.service"])
    try:
        run = run_playbook(str(converged.inventory), "access_review.yml")
    finally:
        pm.exec_in(db.container, ["systemctl", "start", "postgresql@15-main.service"])
    assert not run.ok and "INCOMPLETE: db, app could not be read completely" in run.stdout
    out = review.latest_report(seeded)
    assert out is not None and review.read_report(out)["verdict"] == "INCOMPLETE"
    assert review.verify(out) == []  # written, signed and fetched all the same


def test_the_next_review_diffs_against_the_last(
    first: tuple[PlaybookRun, Path, dict[str, Any]],
    converged: SiteRuns,
    lab_plan: LabPlan,
    seeded: Path,
) -> None:
    app = lab_plan.first("app")
    pm.exec_in(app.container, ["userdel", "--remove", review.LEAVER])  # the leaver is removed
    run = run_playbook(str(converged.inventory), "access_review.yml")
    assert run.ok, run.stdout[-3000:]
    out = review.latest_report(seeded)
    assert out is not None
    diff = review.read_report(out)["diff"]
    resolved = {(f["check"], f["account"]) for f in diff["resolved"]}
    unchanged = {(f["check"], f["account"]) for f in diff["unchanged"]}
    assert ("ACR-002", review.LEAVER) in resolved
    assert {("IAM-005", review.NEVER_USED), ("ACR-006", review.UNKNOWN_KEY)} <= unchanged
