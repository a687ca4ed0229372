"""An inventory vault for unit tests of the tools that seal secrets, without a KMS: its
password is put where one KMS Decrypt would have left it for this process. The KMS side of the
vault (wrapping, unwrapping, the client Ansible runs) is tested in tests/unit/test_vault.py
against moto's KMS."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from ops.vault import sealed


def unit_vault(inventory: Path) -> bytes:
    vault = inventory / "vault"
    vault.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(vault / "password.kms", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(b"unit tests: not a KMS ciphertext")
    password = base64.b64encode(secrets.token_bytes(32))
    sealed._passwords[inventory.resolve()] = password
    return password
