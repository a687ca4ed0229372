"""Rotating the operators' SSH user CA by overlap, as one `Rotation` of the phase machine:

    staged     the new CA key is made on the control node
    published  hosts trust the old and the new CA (the trust file, distributed)
    switched   the operator's certificate comes from the new CA
    verified   a login with it succeeds, over a fresh connection, on every host
    retired    hosts trust the new CA alone, and a certificate of the old one is refused

`publish` distributes the CA directory's trust file and KRL (rotate_keys.yml);
`login(certificate)` tries one fresh login per host and says whether every one succeeded.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from ops.rotation.machine import Rotation
from ops.rotation.reach import proxy_options
from ops.rotation.sshca import Certificate, UserCA, fingerprint, set_trusted
from ops.vault.sealed import is_sealed, scratch


class VerificationError(Exception):
    pass


def ca_rotation(old: UserCA, new: UserCA, operator_key: Path, identity: str,
                principals: list[str], publish: Callable[[], None],
                login: Callable[[Certificate], bool]) -> Rotation:  # fmt: skip
    """`operator_key`: the operator's public key, whose certificate moves to the new CA."""
    new.create()  # a key nothing trusts yet; its fingerprint names the rotation in the ledger
    held: dict[str, Certificate] = {}

    def stage() -> None:
        if (new.key.stat().st_mode & 0o077) != 0 or not is_sealed(new.key):
            raise VerificationError(f"{new.key}: readable by others or not sealed")

    def publish_both() -> None:
        set_trusted(new.directory, [old, new])
        publish()

    def switch() -> None:
        held["new"] = new.issue(operator_key, identity, principals)

    def verify() -> None:
        if not login(held.get("new") or Certificate.read(_cert_path(operator_key))):
            raise VerificationError(f"a certificate of {new.name} does not log in everywhere")

    def retire() -> None:
        set_trusted(new.directory, [new])
        publish()
        with scratch() as tmp:
            probe = tmp / "retired-ca-probe"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(probe)],
                           check=True)  # fmt: skip
            if login(old.issue(probe.with_suffix(".pub"), "retired-ca-probe", principals, "+5m")):
                raise VerificationError(f"a certificate of the retired {old.name} still logs in")

    def unpublish() -> None:
        set_trusted(new.directory, [old])
        publish()

    def unswitch() -> None:
        old.issue(operator_key, identity, principals)

    return Rotation(
        "ssh-user-ca",
        fingerprint(old.public),
        fingerprint(new.public),
        {"staged": stage, "published": publish_both, "switched": switch,
         "verified": verify, "retired": retire},
        {"published": unpublish, "switched": unswitch},
    )  # fmt: skip


def try_login(
    cert: Certificate, address: str, known_hosts: Path, user: str, via: Path | None = None
) -> bool:
    """One fresh SSH connection with the certificate alone (no config, agent or multiplexed
    session to lean on), host key checked: does it open `user` on `address`? `via` is the
    inventory's SSH configuration, whose way in (the bastion) the connection takes."""
    key = cert.path.with_name(cert.path.name[: -len("-cert.pub")])
    proc = subprocess.run(
        ["ssh", "-F", "/dev/null", *proxy_options(via, address),
         "-i", str(key), "-o", f"CertificateFile={cert.path}",
         "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
         "-o", "ControlPath=none", "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
         f"{user}@{address}", "true"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return proc.returncode == 0


def _cert_path(public_key: Path) -> Path:
    return public_key.with_name(public_key.name[: -len(".pub")] + "-cert.pub")
