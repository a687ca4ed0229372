"""Parts of the rotation driver that need no host: known_hosts edits, the failure message
read from Ansible's output, the database login's state files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.rotation.db_login import in_use
from ops.rotation.host_keys import KnownHosts
from ops.rotation.steps import StepFailed, failure

OLD = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJR+pAoh7bl4HJPNHbgv//jqcViZBlP4clC3EeR5uFdp"
NEW = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINNuUF3HhN/R/+7dQ8oRYNbeF4Qe30XTQeFPOw5H5keZ"


def test_known_hosts_holds_both_keys_during_the_overlap_then_the_new_alone(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"app-1,10.0.0.1 {OLD}\ndb-1,10.0.0.2 {OLD}\n")
    known = KnownHosts(path)
    known.add("app-1", "10.0.0.1", NEW)
    known.add("app-1", "10.0.0.1", NEW)  # a resumed run adds nothing twice
    assert known.keys("app-1") == [OLD, NEW]
    known.remove("app-1", OLD)
    assert known.keys("app-1") == [NEW] and known.keys("db-1") == [OLD]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_tasks_own_words_are_read_from_ansibles_output() -> None:
    result = {"changed": False, "msg": "non-zero return code", "stderr": "line 9: Bad option"}
    out = f"TASK [x]\nfatal: [app-1]: FAILED! => {json.dumps(result)}\n"
    assert failure(out) == "app-1: line 9: Bad option"
    hidden = {"censored": "hidden", "changed": False}
    assert failure(f"fatal: [db-1]: FAILED! => {json.dumps(hidden)}\n") == (
        "db-1: (output hidden: no_log)"
    )


def test_the_login_in_use_must_be_one_of_the_two(tmp_path: Path) -> None:
    assert in_use(tmp_path) == "claims_app_a"  # nothing rotated yet
    (tmp_path / "db-app-login").write_text("claims_app_b\n")
    assert in_use(tmp_path) == "claims_app_b"
    (tmp_path / "db-app-login").write_text("postgres\n")
    with pytest.raises(StepFailed, match="'postgres' is not one of"):
        in_use(tmp_path)


def test_a_new_tls_pair_keeps_the_names_matches_its_key_and_chains(tmp_path: Path) -> None:
    import ipaddress
    import shutil

    from cryptography import x509

    from lab.pki import ensure_ca, ensure_server_cert
    from ops.rotation.tls import check_pair, issue_like

    ca = ensure_ca(tmp_path)
    cert, _ = ensure_server_cert(tmp_path, "app-1", ipaddress.IPv4Address("10.0.0.1"))
    new = issue_like(cert, ca, tmp_path / "pki" / "ca.key", tmp_path / "pki" / "app-1.next")
    old = x509.load_pem_x509_certificate(cert.read_bytes())
    assert new.subject == old.subject and new.serial_number != old.serial_number
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName) == (
        old.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    )
    assert (tmp_path / "pki" / "app-1.next.key").stat().st_mode & 0o077 == 0
    # A key that is not the certificate's, and a certificate of another CA, are refused.
    shutil.copy(tmp_path / "pki" / "app-1.key", tmp_path / "pki" / "app-1.next.key")
    with pytest.raises(StepFailed, match="does not match"):
        check_pair(tmp_path / "pki" / "app-1.next", ca)
    other = ensure_ca(tmp_path / "other")
    with pytest.raises(StepFailed, match="does not chain"):
        check_pair(tmp_path / "pki" / "app-1", other)


def test_the_funds_new_key_is_checked_before_anything_changes(tmp_path: Path) -> None:
    import subprocess

    from ops.rotation.sftp_key import check_public_key, parse_window

    def keypair(name: str, *args: str) -> Path:
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-f", str(tmp_path / name), *args],
                       check=True)  # fmt: skip
        return tmp_path / name

    current = keypair("old", "-t", "ed25519").with_suffix(".pub").read_text()
    good = keypair("new", "-t", "ed25519").with_suffix(".pub")
    assert check_public_key(good, current).startswith("ssh-ed25519 ")
    with pytest.raises(StepFailed, match="a private key"):
        check_public_key(tmp_path / "new", current)
    with pytest.raises(StepFailed, match="the key in use already"):
        check_public_key(tmp_path / "old.pub", current)
    weak = keypair("weak", "-t", "rsa", "-b", "2048").with_suffix(".pub")
    with pytest.raises(StepFailed, match="RSA 2048 bits"):
        check_public_key(weak, current)
    two = tmp_path / "two.pub"
    two.write_text(good.read_text() + (tmp_path / "old.pub").read_text())
    with pytest.raises(StepFailed, match="2 keys"):
        check_public_key(two, current)
    assert parse_window("14d").days == 14 and parse_window("48h").total_seconds() == 48 * 3600
    for bad in ("0d", "2w", "91d", ""):
        with pytest.raises(StepFailed, match="window"):
            parse_window(bad)


def test_a_host_key_rotation_refuses_a_known_hosts_it_cannot_read_one_way(tmp_path: Path) -> None:
    from ops.rotation.host_keys import host_key_rotation
    from ops.rotation.ledger import Entry, Ledger
    from ops.rotation.steps import Steps

    path = tmp_path / "known_hosts"
    path.write_text(f"app-1,10.0.0.1 {OLD}\napp-1,10.0.0.1 {NEW}\n")
    ledger, steps = Ledger(tmp_path / "ledger.jsonl"), Steps(tmp_path / "inv.yml", tmp_path / "log")
    with pytest.raises(StepFailed, match="2 keys for app-1"):  # which one is served?
        host_key_rotation("app-1", "10.0.0.1", steps, KnownHosts(path), tmp_path, ledger)
    # A stopped rotation whose old key known_hosts no longer has (the host was remade).
    path.write_text(f"app-1,10.0.0.1 {NEW}\n")
    ledger.append(Entry("host-key:app-1", "r1", "published", old="SHA256:gone", new="SHA256:x"))
    with pytest.raises(StepFailed, match=r"no longer knows its old key SHA256:gone(.|\n)*abandon"):
        host_key_rotation("app-1", "10.0.0.1", steps, KnownHosts(path), tmp_path, ledger)
