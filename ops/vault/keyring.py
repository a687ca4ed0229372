"""The vault password, kept only wrapped by a KMS key beside the inventory.

    <inventory>/vault/settings.json   which KMS key, region, endpoint (and CA), the context
    <inventory>/vault/password.kms    the KMS ciphertext of the vault password (0600)

The password is 48 random bytes (base64), made here and sent once to KMS Encrypt; it is never
written anywhere in plain. The encryption context names the stack and the inventory's purpose,
so a ciphertext moved to another environment does not decrypt there.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ops.awsapi import Endpoint
from ops.files import FileRefused, read_at_most, write_private
from ops.vault import VaultError

MAX_CIPHERTEXT = 64 * 1024


@dataclass(frozen=True)
class KeyringSettings:
    stack: str
    kms_key_id: str
    region: str
    endpoint_url: str = ""  # empty: AWS's own KMS endpoint
    ca_bundle: str = ""
    config_file: str = ""  # an AWS config file instead of the default credential chain

    @property
    def context(self) -> dict[str, str]:
        return {"claims-dc:stack": self.stack, "claims-dc:purpose": "ansible-vault"}


def _dir(inventory_dir: Path) -> Path:
    return inventory_dir / "vault"


def kms_client(settings: KeyringSettings) -> Any:
    # The control node's AWS API as the rotation reaches it: endpoint, CA, config file.
    endpoint = Endpoint(settings.endpoint_url or None, settings.region,
                        settings.ca_bundle or None, settings.config_file or None)  # fmt: skip
    return endpoint.client("kms")


def read_settings(inventory_dir: Path) -> KeyringSettings:
    path = _dir(inventory_dir) / "settings.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return KeyringSettings(**{k: str(v) for k, v in raw.items()})
    except FileNotFoundError:
        raise VaultError(f"{path}: no vault here; make one with `claims-dc vault init`") from None
    except (OSError, ValueError, TypeError) as e:
        raise VaultError(f"{path}: not the vault's settings ({e})") from None


def create(inventory_dir: Path, settings: KeyringSettings, kms: Any = None) -> bool:
    """Make the wrapped password once; False if there is one already (never replaced here)."""
    wrapped = _dir(inventory_dir) / "password.kms"
    if wrapped.exists():
        return False
    kms = kms or kms_client(settings)
    password = base64.b64encode(secrets.token_bytes(48))
    try:
        blob = kms.encrypt(KeyId=settings.kms_key_id, Plaintext=password,
                           EncryptionContext=settings.context)["CiphertextBlob"]  # fmt: skip
    except (ClientError, BotoCoreError) as e:
        raise VaultError(f"KMS Encrypt with {settings.kms_key_id}: {e}") from None
    write_private(_dir(inventory_dir) / "settings.json",
                   (json.dumps(asdict(settings), indent=2) + "\n").encode())  # fmt: skip
    write_private(wrapped, blob)
    return True


def unwrap(inventory_dir: Path, kms: Any = None) -> bytes:
    """The vault password, from KMS Decrypt of the wrapped one; held in memory only."""
    settings = read_settings(inventory_dir)
    path = _dir(inventory_dir) / "password.kms"
    try:
        blob = read_at_most(path, MAX_CIPHERTEXT, "a KMS ciphertext")
    except FileRefused as e:
        raise VaultError(f"{e}; the vault cannot be opened") from None
    if path.stat().st_mode & 0o077:
        raise VaultError(f"{path}: readable by others; chmod 600 it")
    kms = kms or kms_client(settings)
    try:
        answer = kms.decrypt(CiphertextBlob=blob, EncryptionContext=settings.context,
                             KeyId=settings.kms_key_id)  # fmt: skip
    except (ClientError, BotoCoreError) as e:
        raise VaultError(f"KMS Decrypt of {path} with {settings.kms_key_id}: {e}") from None
    return bytes(answer["Plaintext"])
