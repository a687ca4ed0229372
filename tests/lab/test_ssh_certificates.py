"""Operators' SSH certificates on the lab's hosts: a certificate of a
trusted CA opens the account it names; an expired one, one naming another account, one
whose serial is revoked and one of an untrusted CA are each refused by sshd; a user-CA
rotation whose verification fails rolls back (the whole rotation by overlap is in
test_key_rotation.py). The operators' plain keys (the break-glass path) work throughout:
every playbook run here uses one."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import podman as pm
from lab.plan import LabPlan
from ops import cli
from ops.playbook import run_playbook
from ops.rotation.ledger import Ledger
from ops.rotation.machine import rotate
from ops.rotation.sshca import Certificate, UserCA, set_trusted, trusted
from ops.rotation.user_ca import ca_rotation, try_login
from ops.vault.sealed import unsealed_copy
from tests.lab.conftest import SiteRuns
from tests.support.vault import unit_vault

pytestmark = pytest.mark.lab

ACCOUNT = "opsadmin"


class Lab:
    def __init__(self, converged: SiteRuns, plan: LabPlan) -> None:
        self.inventory = converged.inventory
        self.state = converged.inventory.parent
        self.ca_dir = self.state / "ssh-ca"
        self.hosts = [h for h in plan.hosts if h.role in ("app", "db", "intake", "bastion")]

    def publish(self) -> None:
        # To every host at once: what is tried here is what sshd accepts; the rotation
        # driver's one host at a time is tried in test_key_rotation.py.
        run = run_playbook(str(self.inventory), "rotate_keys.yml", "-e", "key_rotation_serial=100%")
        assert run.ok, run.stdout[-3000:] + run.stderr[-1000:]

    def login(self, cert: Certificate, host: str | None = None, user: str = ACCOUNT) -> bool:
        """One fresh SSH connection per host, with the certificate alone."""
        chosen = self.hosts if host is None else [h for h in self.hosts if h.name == host]
        known = self.state / "known_hosts"
        via = self.state / "ssh_config"
        return all(try_login(cert, str(h.address), known, user, via) for h in chosen)


def keypair(tmp: Path, name: str) -> Path:
    key = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.with_suffix(".pub")


def kept_aside(cert: Certificate) -> Certificate:
    """A copy of the certificate and its key, so a rotation's reissue does not overwrite it."""
    key = cert.path.with_name(cert.path.name[: -len("-cert.pub")])
    shutil.copy(key, key.with_name("before"))
    shutil.copy(cert.path, key.with_name("before-cert.pub"))
    return Certificate.read(key.with_name("before-cert.pub"))


@pytest.fixture(scope="module")
def lab(converged: SiteRuns, lab_plan: LabPlan) -> Iterator[Lab]:
    lab = Lab(converged, lab_plan)
    shutil.rmtree(lab.ca_dir, ignore_errors=True)
    ca = UserCA(lab.ca_dir, "user-ca-1").create()
    set_trusted(lab.ca_dir, [ca])
    lab.publish()
    yield lab
    shutil.rmtree(lab.ca_dir, ignore_errors=True)  # back to trusting no CA
    lab.publish()


def test_a_certificate_opens_the_account_it_names_on_every_host(lab: Lab, tmp_path: Path) -> None:
    ca = UserCA(lab.ca_dir, "user-ca-1")
    cert = ca.issue(keypair(tmp_path, "op"), "L0001 lab operator", [ACCOUNT], "+1h")
    assert lab.login(cert)
    assert not lab.login(cert, lab.hosts[0].name, user="claims-dc-review")  # not another account


def test_a_certificate_naming_another_account_is_refused(lab: Lab, tmp_path: Path) -> None:
    ca = UserCA(lab.ca_dir, "user-ca-1")
    cert = ca.issue(keypair(tmp_path, "op"), "L0001 lab operator", ["someoneelse"], "+1h")
    assert not lab.login(cert, lab.hosts[0].name)


def test_an_expired_certificate_is_refused(lab: Lab, tmp_path: Path) -> None:
    ca = UserCA(lab.ca_dir, "user-ca-1")
    pub = keypair(tmp_path, "op")
    # The CA tool issues only from now on; an expired one is made by hand for the test.
    with unsealed_copy(ca.key) as key:
        subprocess.run(["ssh-keygen", "-q", "-s", str(key), "-I", "expired", "-n", ACCOUNT,
                        "-V", "20250101:20250102", "-z", "9000", str(pub)], check=True)  # fmt: skip
    cert = Certificate.read(tmp_path / "op-cert.pub")
    assert cert.valid_to.year == 2025
    assert not lab.login(cert, lab.hosts[0].name)


def test_a_revoked_serial_is_refused_once_the_krl_is_published(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = UserCA(lab.ca_dir, "user-ca-1")
    cert = ca.issue(keypair(tmp_path, "op"), "D0102 leaver", [ACCOUNT], "+1h")
    assert lab.login(cert, lab.hosts[0].name)
    # One command: the serial into the KRL, and the KRL to every host at once.
    argv = ["rotate", "--ca-dir", str(lab.ca_dir), "revoke", "--ca", "user-ca-1",
            str(cert.serial), "-i", str(lab.inventory), "--json"]  # fmt: skip
    assert cli.main(argv) == 0
    published = json.loads(capsys.readouterr().out)
    assert published["published"] and published["not_published"] == []
    assert len(published["hosts"]) == len(lab.hosts)
    assert not lab.login(cert)
    kept = ca.issue(keypair(tmp_path, "other"), "L0001 lab operator", [ACCOUNT], "+1h")
    assert lab.login(kept)  # only that serial


def test_a_revocation_list_sshd_could_not_read_is_never_installed(lab: Lab, tmp_path: Path) -> None:
    """sshd refuses every key when it cannot read its list: a damaged one must stop at the
    host's check, leaving the old list, and the operators' logins, as they were."""

    def lists() -> dict[str, str]:
        return {h.name: pm.exec_in(h.container, ["sha256sum", "/etc/ssh/revoked_keys"]).stdout
                for h in lab.hosts}  # fmt: skip

    before = lists()
    extra = tmp_path / "krl.json"
    for damaged in (b"not a KRL", b""):
        extra.write_text(json.dumps({"key_rotation_krl_b64": base64.b64encode(damaged).decode()}))
        run = run_playbook(str(lab.inventory), "rotate_keys.yml", "-e",
                           "key_rotation_step=ssh-revocations", "-e", "key_rotation_serial=100%",
                           "-e", f"@{extra}", secrets=False)  # fmt: skip
        assert not run.ok and all(c.get("failed") for c in run.recap.values()), run.summary()
        assert lists() == before
    ca = UserCA(lab.ca_dir, "user-ca-1")
    assert lab.login(ca.issue(keypair(tmp_path, "op"), "L0001 lab operator", [ACCOUNT], "+1h"))


def test_a_certificate_of_an_untrusted_ca_is_refused(lab: Lab, tmp_path: Path) -> None:
    unit_vault(tmp_path)  # the rogue's own, outside the lab's inventory
    rogue = UserCA(tmp_path / "rogue", "rogue-ca").create()
    cert = rogue.issue(keypair(tmp_path, "op"), "L0001 lab operator", [ACCOUNT], "+1h")
    assert not lab.login(cert, lab.hosts[0].name)


def test_a_rotation_whose_verification_fails_rolls_back_to_the_old_ca(
    lab: Lab, tmp_path: Path
) -> None:
    current = max(lab.ca_dir.glob("user-ca-*.pub")).name[: -len(".pub")]
    old = UserCA(lab.ca_dir, current)
    operator = keypair(tmp_path, "operator")
    before = kept_aside(old.issue(operator, "L0001 lab operator", [ACCOUNT], "+1h"))
    ledger = Ledger(tmp_path / "ledger.jsonl")

    def login_fails_for_the_new_ca(cert: Certificate) -> bool:
        return False if cert.signing_ca != old_fp else lab.login(cert)

    from ops.rotation.sshca import fingerprint

    old_fp = fingerprint(old.public)
    rotation = ca_rotation(old, UserCA(lab.ca_dir, "user-ca-broken"), operator,
                           "L0001 lab operator", [ACCOUNT], lab.publish,
                           login_fails_for_the_new_ca)  # fmt: skip
    out = rotate(rotation, ledger)
    assert out.outcome == "rolled-back" and "verified failed" in out.error
    assert trusted(lab.ca_dir) == [old_fp]  # the new CA is no longer trusted
    restored = Certificate.read(tmp_path / "operator-cert.pub")
    assert restored.signing_ca == old_fp and lab.login(restored) and lab.login(before)
    assert ledger.entries()[-1].outcome == "rolled-back"
