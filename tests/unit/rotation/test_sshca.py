"""The operators' SSH user CA with ssh-keygen alone: certificates carry an identity, the
principals they open, a serial from the CA's counter and a validity of hours; a KRL revokes
serials. (sshd's refusal of an expired certificate, a wrong principal and a revoked serial is
tried on the lab's hosts.)"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from ops.rotation.sshca import CLOCK_SKEW, CAError, UserCA, fingerprint
from ops.rotation.user_ca import VerificationError, ca_rotation
from ops.vault.sealed import is_sealed, read_secret


def user_key(tmp_path: Path, name: str) -> Path:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.with_suffix(".pub")


def test_a_certificate_names_its_holder_principals_serial_and_hours(tmp_path: Path) -> None:
    ca = UserCA(tmp_path / "ca", "user-ca-1").create()
    assert (ca.key.stat().st_mode & 0o077) == 0 and ca.krl.exists()
    cert = ca.issue(user_key(tmp_path, "d0101"), "D0101 佐藤", ["opsadmin"], "+8h")
    assert cert.identity == "D0101 佐藤" and cert.principals == ("opsadmin",)
    assert cert.serial == 1 and cert.signing_ca == fingerprint(ca.public)
    assert (
        dt.timedelta(hours=8) <= cert.valid_to - cert.valid_from <= dt.timedelta(hours=8, minutes=6)
    )
    second = ca.issue(user_key(tmp_path, "d0102"), "D0102", ["opsadmin"], "+1h")
    assert second.serial == 2  # serials are never reused


def _openssh_accepts_at(cert_key: Path, ca_public: Path, principal: str, at: dt.datetime,
                        tmp_path: Path) -> bool:  # fmt: skip
    """Whether OpenSSH itself takes the certificate as valid at `at`, as a host whose clock
    reads `at` would: a message signed with the certificate is verified against the CA at that
    moment (ssh-keygen -Y verify -O verify-time), validity window and principal included."""
    message = tmp_path / "message"
    message.write_text("clock skew\n")
    signature = message.with_suffix(".sig")
    signature.unlink(missing_ok=True)
    cert = cert_key.with_name(cert_key.name + "-cert.pub")
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(cert), "-n", "file",
                    str(message)], check=True, capture_output=True)  # fmt: skip
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"{principal} cert-authority {ca_public.read_text()}")
    proc = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", "file",
         "-s", str(signature), "-O", f"verify-time={at.strftime('%Y%m%d%H%M%S')}Z"],
        input=message.read_text(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    return proc.returncode == 0


def test_a_fresh_certificate_is_valid_on_a_host_whose_clock_is_behind(tmp_path: Path) -> None:
    """The stated tolerance: a host up to CLOCK_SKEW behind accepts a certificate issued this
    instant; one further behind does not (the back-dating is that much, not open-ended)."""
    ca = UserCA(tmp_path / "ca", "user-ca-1").create()
    key = user_key(tmp_path, "l0001").with_suffix("")
    issued = dt.datetime.now(dt.UTC)
    cert = ca.issue(key.with_suffix(".pub"), "L0001", ["opsadmin"], "+8h")
    assert dt.timedelta(minutes=5) == CLOCK_SKEW
    assert cert.valid_to - cert.valid_from == dt.timedelta(hours=8) + CLOCK_SKEW
    behind = issued - CLOCK_SKEW + dt.timedelta(seconds=30)  # four and a half minutes behind
    assert _openssh_accepts_at(key, ca.public, "opsadmin", behind, tmp_path)
    assert _openssh_accepts_at(key, ca.public, "opsadmin", issued, tmp_path)
    too_far = issued - CLOCK_SKEW - dt.timedelta(minutes=1)
    assert not _openssh_accepts_at(key, ca.public, "opsadmin", too_far, tmp_path)
    assert not _openssh_accepts_at(key, ca.public, "someoneelse", behind, tmp_path)


def test_a_revoked_serial_is_in_the_krl_and_others_are_not(tmp_path: Path) -> None:
    ca = UserCA(tmp_path / "ca", "user-ca-1").create()
    kept = ca.issue(user_key(tmp_path, "a"), "A", ["opsadmin"])
    gone = ca.issue(user_key(tmp_path, "b"), "B", ["opsadmin"])
    assert not gone.revoked_by(ca.krl)
    ca.revoke([gone.serial])
    assert gone.revoked_by(ca.krl) and not kept.revoked_by(ca.krl)


@pytest.mark.parametrize(
    ("principals", "validity", "problem"),
    [
        ([], "+8h", "principals"),
        (["Root Account"], "+8h", "principals"),
        (["opsadmin"], "+30d", "at most"),
        (["opsadmin"], "forever", "validity 'forever'"),
    ],
)
def test_bad_requests_are_refused_and_name_the_value(
    tmp_path: Path, principals: list[str], validity: str, problem: str
) -> None:
    ca = UserCA(tmp_path / "ca", "user-ca-1").create()
    with pytest.raises(CAError, match=problem):
        ca.issue(user_key(tmp_path, "k"), "X", principals, validity)
    assert not (tmp_path / "k-cert.pub").exists()


def test_the_trusted_file_holds_exactly_the_cas_named(tmp_path: Path) -> None:
    from ops.rotation.sshca import set_trusted, trusted

    old = UserCA(tmp_path, "user-ca-1").create()
    new = UserCA(tmp_path, "user-ca-2").create()
    assert trusted(tmp_path) == []
    set_trusted(tmp_path, [old, new])  # published: both
    assert trusted(tmp_path) == [fingerprint(old.public), fingerprint(new.public)]
    set_trusted(tmp_path, [new])  # retired: the old one is gone
    assert trusted(tmp_path) == [fingerprint(new.public)]


def test_a_ca_key_kept_in_plaintext_stops_the_rotation_at_staged(tmp_path: Path) -> None:
    old = UserCA(tmp_path / "ca", "user-ca-1").create()
    new = UserCA(tmp_path / "ca", "user-ca-2").create()
    assert is_sealed(new.key)
    rotation = ca_rotation(old, new, user_key(tmp_path, "op"), "L0001", ["opsadmin"],
                           publish=lambda: None, login=lambda _: True)  # fmt: skip
    rotation.do["staged"]()  # sealed and 0600: passes
    new.key.write_bytes(read_secret(new.key))  # what a hand-made key would look like
    with pytest.raises(VerificationError, match="not sealed"):
        rotation.do["staged"]()
