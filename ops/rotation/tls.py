"""Rotating a web host's TLS certificate from the internal CA, as one `Rotation` of the phase
machine (nginx on the application hosts):

    staged     a new key and certificate, issued by the internal CA on the control node with
               the current certificate's names; the key matches the certificate and
               `openssl verify` chains it to the CA
    published  the pair waits on the host beside the served one, checked there again
    switched   the files swap while nginx serves the old pair from memory, `nginx -t`, then a
               reload; the previous pair is kept on the host (claimapp.prev.*) and on the
               control node (<host>.prev.*) for rollback
    verified   a fresh TLS connection, verified against the host's CAs, is served the new serial
    retired    no listener serves the old serial any more

The internal CA is the control node's pki/ca.crt and pki/ca.key (sealed, as every key in
pki/ is; the lab's own CA there).
Rolling back `switched` puts the previous pair back on both sides and reloads nginx.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.config import TLS_CERT_DAYS
from ops.rotation.ledger import Ledger
from ops.rotation.machine import Rotation, pending
from ops.rotation.steps import StepFailed, Steps
from ops.vault.sealed import read_secret, write_secret

VALIDITY = dt.timedelta(days=TLS_CERT_DAYS)


def _file(stem: Path, ext: str) -> Path:
    """stem + ext: `app-1.next` + `.crt` (with_suffix would replace `.next`)."""
    return stem.with_name(stem.name + ext)


def _serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "X")


def issue_like(current: Path, ca_cert: Path, ca_key: Path, out: Path) -> x509.Certificate:
    """A new key and certificate with `current`'s subject, names and usages, signed by the CA;
    written to out.crt and out.key (sealed)."""
    old = x509.load_pem_x509_certificate(current.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(read_secret(ca_key), password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise StepFailed(f"{ca_key}: an EC CA key is expected")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )
    for ext in old.extensions:
        if not isinstance(ext.value, x509.SubjectKeyIdentifier | x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, ext.critical)
    cert = builder.sign(signer, hashes.SHA256())
    write_secret(
        _file(out, ".key"),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _file(out, ".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    check_pair(out, ca_cert)
    return cert


def check_pair(stem: Path, ca_cert: Path) -> None:
    """The key matches the certificate, and the certificate chains to the CA (openssl)."""
    cert = x509.load_pem_x509_certificate(_file(stem, ".crt").read_bytes())
    key = serialization.load_pem_private_key(read_secret(_file(stem, ".key")), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if cert.public_key().public_bytes(pem, spki) != key.public_key().public_bytes(pem, spki):
        raise StepFailed(f"{stem}.key does not match {stem}.crt")
    proc = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_cert), str(_file(stem, ".crt"))],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise StepFailed(f"{stem}.crt does not chain to {ca_cert}: {proc.stdout}{proc.stderr}")


def tls_rotation(host: str, pki: Path, steps: Steps, ledger: Ledger) -> Rotation:
    current, nxt, prev = pki / host, pki / f"{host}.next", pki / f"{host}.prev"
    ca_cert, ca_key = pki / "ca.crt", pki / "ca.key"
    if not ca_key.exists():
        raise StepFailed(f"{ca_key}: the internal CA's key is needed to issue {host}'s certificate")
    staged_cert = _file(nxt, ".crt")
    resumed = pending(ledger, f"tls:{host}")
    if resumed is not None:  # a run that stopped: the same pair, wherever it stands
        rotation = Rotation(f"tls:{host}", resumed.old, resumed.new, {}, {})
    else:
        cert = x509.load_pem_x509_certificate(_file(current, ".crt").read_bytes())
        rotation = Rotation(f"tls:{host}", _serial(cert), "", {}, {})

    def swap(a: Path, b: Path) -> None:
        for ext in (".crt", ".key"):
            shutil.copy2(_file(a, ext), _file(b, ext))

    def stage() -> None:
        if not staged_cert.exists():
            rotation.new = _serial(issue_like(_file(current, ".crt"), ca_cert, ca_key, nxt))
        check_pair(nxt, ca_cert)

    def publish() -> None:
        steps.run("tls-publish", host, key_rotation_tls_src=str(nxt))

    def switch() -> None:
        steps.run("tls-switch", host)
        if staged_cert.exists():
            swap(current, prev)
            swap(nxt, current)  # site.yml installs the served pair from here on
            for ext in (".crt", ".key"):
                _file(nxt, ext).unlink()

    def unswitch() -> None:
        steps.run("tls-unswitch", host)
        if _file(prev, ".crt").exists():
            swap(current, nxt)
            swap(prev, current)

    def served(serial: str) -> None:
        steps.run("tls-served", host, key_rotation_tls_serial=serial)

    def retire() -> None:
        served(rotation.new)  # a fresh connection: the old serial is no longer served

    rotation.do = {"staged": stage, "published": publish, "switched": switch,
                   "verified": lambda: served(rotation.new), "retired": retire}  # fmt: skip

    def unstage() -> None:
        for ext in (".crt", ".key"):
            _file(nxt, ext).unlink(missing_ok=True)

    rotation.undo = {"staged": unstage, "switched": unswitch}
    return rotation
