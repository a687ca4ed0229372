"""Keys and sealing.

The repository master key is 64 random bytes. HKDF-SHA256 derives from it the AES-256-GCM
key that seals every blob and every metadata object, the HMAC key that names blobs (a keyed
ID, so an observer cannot confirm that a known file is in the repository), and the chunker's
seed. The master key is stored only wrapped: by a KMS customer managed key (envelope
encryption, the normal case; rotation is KMS's), or by a local key file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE = 12
TAG = 16


class KeyError_(Exception):
    """The key cannot be had or does not open the repository."""


class KeyConfigError(KeyError_):
    """The configured key file is wrong (missing, readable by others, malformed, or not this
    repository's): the settings are at fault, not the moment (exit 2, as settings are)."""


class IntegrityError(Exception):
    """Stored data does not authenticate: corrupted, truncated or not ours."""


def _derive(master: bytes, label: bytes, size: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=size, salt=None, info=label).derive(master)


@dataclass(frozen=True)
class MasterKey:
    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != 64:
            raise KeyError_("the master key must be 64 bytes")

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(64))

    @property
    def _aead(self) -> AESGCM:
        cached = self.__dict__.get("_aead_cache")
        if cached is None:
            cached = AESGCM(_derive(self.material, b"claims-dc seal v1", 32))
            object.__setattr__(self, "_aead_cache", cached)
        return cached

    @property
    def _id_key(self) -> bytes:
        cached = self.__dict__.get("_id_cache")
        if cached is None:
            cached = _derive(self.material, b"claims-dc blob id v1", 32)
            object.__setattr__(self, "_id_cache", cached)
        return cached

    @property
    def chunker_seed(self) -> int:
        # FastCDC shifts the seed left by one into a uint64: keep it to 62 bits.
        return int(struct.unpack(">Q", _derive(self.material, b"claims-dc chunker v1", 8))[0]) >> 2

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return hmac.digest(self._id_key, data, hashlib.sha256)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes | memoryview, aad: bytes, what: str) -> bytes:
        if len(sealed) < NONCE + TAG:
            raise IntegrityError(f"{what}: truncated ({len(sealed)} bytes)")
        try:
            return self._aead.decrypt(bytes(sealed[:NONCE]), bytes(sealed[NONCE:]), aad)
        except InvalidTag:
            raise IntegrityError(f"{what}: does not authenticate (corrupted or not ours)") from None

    def seal_json(self, obj: Any, aad: bytes) -> bytes:
        return self.seal(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode(), aad)

    def open_json(self, sealed: bytes, aad: bytes, what: str) -> Any:
        return json.loads(self.open(sealed, aad, what))


# --- wrapping ------------------------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def wrap_with_kms(kms: Any, key_id: str, repo_id: str) -> tuple[MasterKey, dict[str, Any]]:
    """A new master key from KMS GenerateDataKey, bound to this repository by its context.

    GenerateDataKey (not Encrypt) is used so that the same grant the hosts hold (GenerateDataKey
    and Decrypt) suffices, and the plaintext key never exists outside this process.
    """
    try:
        out = kms.generate_data_key(
            KeyId=key_id, NumberOfBytes=64, EncryptionContext={"claims-dc-repository": repo_id}
        )
    except Exception as e:
        raise KeyError_(f"KMS GenerateDataKey with key {key_id!r} failed: {_aws_reason(e)}") from e
    return MasterKey(bytes(out["Plaintext"])), {
        "kind": "kms",
        "kms_key_id": str(out.get("KeyId") or key_id),
        "wrapped": _b64(bytes(out["CiphertextBlob"])),
    }


def unwrap_with_kms(kms: Any, record: dict[str, Any], repo_id: str) -> MasterKey:
    key_id = record["kms_key_id"]
    try:
        out = kms.decrypt(
            CiphertextBlob=base64.b64decode(record["wrapped"]),
            KeyId=key_id,
            EncryptionContext={"claims-dc-repository": repo_id},
        )
    except Exception as e:
        raise KeyError_(f"KMS Decrypt with key {key_id!r} failed: {_aws_reason(e)}") from e
    return MasterKey(bytes(out["Plaintext"]))


def read_key_file(path: Path) -> bytes:
    """A local wrapping key: 32 random bytes, base64, in a file only its owner may read."""
    try:
        st = path.stat()
        text = path.read_text().strip()
    except OSError as e:
        raise KeyConfigError(f"key file {path}: {e.strerror}") from e
    if st.st_mode & 0o077:
        raise KeyConfigError(
            f"key file {path}: mode {st.st_mode & 0o777:o} lets others read it; chmod 600 it"
        )
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise KeyConfigError(f"key file {path}: not 32 bytes of base64")
    return key


def make_key_file(path: Path) -> None:
    if path.exists():
        raise KeyConfigError(f"key file {path} exists; refusing to overwrite a key")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_b64(os.urandom(32)) + "\n")


def wrap_with_file(path: Path, repo_id: str) -> tuple[MasterKey, dict[str, Any]]:
    key = read_key_file(path)
    master = MasterKey.generate()
    nonce = os.urandom(NONCE)
    wrapped = nonce + AESGCM(key).encrypt(nonce, master.material, repo_id.encode())
    digest = hashlib.sha256(key).hexdigest()[:16]
    return master, {"kind": "file", "key_file_digest": digest, "wrapped": _b64(wrapped)}


def unwrap_with_file(path: Path, record: dict[str, Any], repo_id: str) -> MasterKey:
    key = read_key_file(path)
    blob = base64.b64decode(record["wrapped"])
    try:
        return MasterKey(AESGCM(key).decrypt(blob[:NONCE], blob[NONCE:], repo_id.encode()))
    except InvalidTag:
        raise KeyConfigError(f"key file {path} does not open this repository (wrong key)") from None


def _aws_reason(e: Exception) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".strip()
    return str(e)
