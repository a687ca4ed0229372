"""Each guard in the roles fires on a bad case: the play stops at it, on the real hosts.

Check mode where the guard runs before anything would change; a real run for the bundle,
whose verification is what stands between a tampered wheel and the host.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from lab import lab
from lab import podman as pm
from lab.plan import LabPlan
from ops import bundle
from ops.playbook import PlaybookRun, run_playbook
from tests.lab.conftest import SiteRuns

pytestmark = pytest.mark.lab


def _stopped_at(run: PlaybookRun, host: str, task: str) -> str:
    assert run.returncode != 0 and run.recap[host]["failed"] == 1, run.summary()
    start = run.stdout.index(f"TASK [{task}")
    return run.stdout[start:]


def _check(converged: SiteRuns, host: str, role: str, extra: dict[str, object]) -> PlaybookRun:
    """site.yml in check mode, on one host, for the role whose guard is tried (its tag)."""
    return run_playbook(converged.inventory, "site.yml", "--check", "--limit", host,
                        "--tags", role, "-e", json.dumps(extra))  # fmt: skip


def test_an_operator_list_without_the_running_account_is_refused(converged: SiteRuns) -> None:
    someone = {"name": "someone", "comment": "x", "public_keys": ["ssh-ed25519 AAAA x"]}
    run = _check(converged, "bastion-1", "base", {"base_operators": [someone]})
    out = _stopped_at(run, "bastion-1", "base : Refuse an operator list")
    assert "must list opsadmin" in out


def test_a_zone_the_policy_does_not_know_gets_no_firewall(converged: SiteRuns) -> None:
    run = _check(converged, "bastion-1", "firewall", {"firewall_zone": "nowhere"})
    out = _stopped_at(run, "bastion-1", "firewall : Refuse to build a firewall")
    assert "firewall_zone = nowhere" in out


def test_a_kernel_setting_that_drifted_is_caught(converged: SiteRuns, lab_plan: LabPlan) -> None:
    host = lab_plan.host("bastion-1")
    pid = str((pm.inspect_container(host.container) or {})["State"]["Pid"])
    key = "net.ipv4.conf.all.accept_redirects"
    subprocess.run(["nsenter", "-t", pid, "-n", "sysctl", "-q", "-w", f"{key}=1"], check=True)
    try:
        run = _check(converged, "bastion-1", "hardening", {})
    finally:
        lab.ensure_sysctls(host)
    out = _stopped_at(run, "bastion-1", "hardening : Assert the kernel settings")
    assert f"{key} = 1 in effect, 0 wanted" in out


@pytest.mark.parametrize(
    "logins",
    [
        [{"name": "claims_app_a", "verifier": "plain-text-password"}],  # a password, not SCRAM
        [{"name": "claims_app_a", "verifier": ""}, {"name": "claims_app_b", "verifier": ""}],
    ],
    ids=["password", "no-login-enabled"],
)
def test_a_password_instead_of_a_scram_verifier_is_refused(
    converged: SiteRuns, logins: list[dict[str, str]]
) -> None:
    run = _check(converged, "db-1", "postgresql", {"postgresql_app_logins": logins})
    out = _stopped_at(run, "db-1", "postgresql : Refuse to run without both verifiers")
    assert "plain-text-password" not in out  # the guard itself is no_log


@pytest.mark.parametrize("tamper", ["wheel", "signer"])
def test_a_tampered_bundle_is_never_installed(
    converged: SiteRuns, lab_plan: LabPlan, tmp_path: Path, tamper: str
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle.DEFAULT_OUT, copy)
    fake = f"{bundle.BASE_VERSION}+tampered.{secrets.token_hex(4)}"
    meta = json.loads((copy / "BUNDLE.json").read_text())
    (copy / "BUNDLE.json").write_text(json.dumps({**meta, "version": fake}))
    if tamper == "wheel":
        wheel = next(copy.glob("blinker-*.whl"))
        wheel.write_bytes(wheel.read_bytes() + b"\0")
    else:
        other = bundle.ensure_signing_key(tmp_path / "other" / "signing")
        (copy / "SHA256SUMS.sig").unlink()
        subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", str(other), "-n", bundle.NAMESPACE,
             "SHA256SUMS"],
            cwd=copy, check=True, capture_output=True,
        )  # fmt: skip
    app = lab_plan.host("app-1").container
    current = pm.exec_in(app, ["readlink", "/opt/claimapp/current"]).stdout
    try:
        run = run_playbook(
            converged.inventory, "install_claim_app.yml", "--limit", "app-1",
            "-e", json.dumps({"claim_app_bundle_dir": str(copy)}),
        )  # fmt: skip
        _stopped_at(run, "app-1", "signed_bundle : Verify the bundle's signature")
        release = pm.exec_in(app, ["test", "-e", f"/opt/claimapp/releases/{fake}"], check=False)
        assert release.returncode != 0, "a release was built from the tampered bundle"
        assert pm.exec_in(app, ["readlink", "/opt/claimapp/current"]).stdout == current
    finally:
        bundles = "/var/lib/claimapp/bundles"
        pm.exec_in(app, ["rm", "-rf", f"{bundles}/{fake}", f"{bundles}/{fake}.tar"])


def test_a_tampered_backup_bundle_is_never_installed(
    converged: SiteRuns, lab_plan: LabPlan, tmp_path: Path
) -> None:
    copy = tmp_path / "backup-bundle"
    shutil.copytree(bundle.BACKUP.out, copy)
    fake = f"{bundle.BASE_VERSION}+tampered.{secrets.token_hex(4)}"
    meta = json.loads((copy / "BUNDLE.json").read_text())
    (copy / "BUNDLE.json").write_text(json.dumps({**meta, "version": fake}))
    wheel = next(copy.glob("zstandard-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    db = lab_plan.host("db-1").container
    current = pm.exec_in(db, ["readlink", "/opt/claims-dc-backup/current"]).stdout
    try:
        run = run_playbook(
            converged.inventory, "daily_backup.yml", "--limit", "db-1",
            "-e", json.dumps({"backup_bundle_dir": str(copy), "daily_backup_run_now": False}),
        )  # fmt: skip
        _stopped_at(run, "db-1", "signed_bundle : Verify the bundle's signature")
        release = pm.exec_in(db, ["test", "-e", f"/opt/claims-dc-backup/releases/{fake}"],
                             check=False)  # fmt: skip
        assert release.returncode != 0, "a release was built from the tampered bundle"
        assert pm.exec_in(db, ["readlink", "/opt/claims-dc-backup/current"]).stdout == current
    finally:
        bundles = "/var/lib/claims-dc-backup/bundles"
        pm.exec_in(db, ["rm", "-rf", f"{bundles}/{fake}", f"{bundles}/{fake}.tar"])


def test_a_host_with_nothing_to_back_up_is_refused(converged: SiteRuns) -> None:
    run = _check(converged, "db-1", "backup", {"backup_sources": []})
    tail = _stopped_at(run, "db-1", "backup : Refuse a host with nothing to back up")
    assert "db-1: backup_sources and backup_repository_url must be set" in tail
