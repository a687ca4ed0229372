"""The lab's own keys: the operator's SSH key and a small CA for TLS inside the lab.

Everything is generated at run time, never printed, and git-ignored. The operator's key lives
in the operator's own directory (.lab/<stack>.operator, as ~/.ssh would), not beside the
inventory; the TLS keys are in the inventory's pki/, sealed by its vault like every secret
there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ops.files import write_private
from ops.vault import VaultError
from ops.vault.sealed import inventory_of, is_sealed, read_secret, seal_in_place, write_secret


def _has_vault(path: Path) -> bool:
    try:
        inventory_of(path)
    except VaultError:
        return False
    return True


def write_key(path: Path, data: bytes) -> None:
    """A TLS private key beside the inventory: sealed by the inventory's vault; made before
    the vault exists only on the lab's first `up`, which seals it (seal_keys) straight after."""
    if _has_vault(path):
        write_secret(path, data)
    else:
        write_private(path, data)


def read_key(path: Path) -> bytes:
    return read_secret(path) if is_sealed(path) else path.read_bytes()


def seal_keys(state_dir: Path) -> list[Path]:
    return [key for key in sorted((state_dir / "pki").glob("*.key")) if seal_in_place(key)]


def ensure_operator_key(operator_dir: Path) -> str:
    """The operator's ed25519 key pair (id_ed25519 in `operator_dir`); the public key line."""
    key_path = operator_dir / "id_ed25519"
    pub_path = operator_dir / "id_ed25519.pub"
    if not key_path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        pub_path.write_text(public.decode() + " claims-dc-lab-operator\n")
    return pub_path.read_text().strip()


def _write_pair(
    cert_path: Path, cert: x509.Certificate, key_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_key(key_path, pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "claims-dc lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ensure_ca(state_dir: Path) -> Path:
    """The lab CA (ECDSA P-256, 1 year); returns the path of its certificate."""
    pki = state_dir / "pki"
    cert_path, key_path = pki / "ca.crt", pki / "ca.key"
    if cert_path.exists() and key_path.exists():
        return cert_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("claims-dc lab CA"))
        .issuer_name(_name("claims-dc lab CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_pair(cert_path, cert, key_path, key)
    return cert_path


def ensure_server_cert(
    state_dir: Path, name: str, address: ipaddress.IPv4Address
) -> tuple[Path, Path]:
    """A TLS server certificate for `name` at `address`, signed by the lab CA."""
    pki = state_dir / "pki"
    cert_path, key_path = pki / f"{name}.crt", pki / f"{name}.key"
    if cert_path.exists() and key_path.exists():
        existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = existing.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if address in sans.get_values_for_type(x509.IPAddress):
            return cert_path, key_path
    ca_cert = x509.load_pem_x509_certificate(ensure_ca(state_dir).read_bytes())
    ca_key = serialization.load_pem_private_key(read_key(pki / "ca.key"), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(address)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_pair(cert_path, cert, key_path, key)
    return cert_path, key_path
