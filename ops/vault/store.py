"""The vaulted secrets file: one YAML mapping, encrypted whole with Ansible Vault.

It lives at <inventory>/group_vars/all/secrets.vault.yml, so Ansible decrypts it as the
inventory's variables (`--vault-id claims-dc@<inventory>/vault/vault-client`), and the tools
(rotation, set-up) read and write single secrets through `SecretStore`, which never writes a
plaintext copy: each change is encrypted in memory and replaces the file whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret

from ops.vault import VaultError

VAULT_ID = "claims-dc"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_BYTES = 1024 * 1024


def store_path(inventory_dir: Path) -> Path:
    return inventory_dir / "group_vars" / "all" / "secrets.vault.yml"


class SecretStore:
    def __init__(self, path: Path, password: bytes) -> None:
        self.path = path
        self._secret = VaultSecret(password)
        self._vault = VaultLib([(VAULT_ID, self._secret)])

    def read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        if len(data) > MAX_BYTES:
            raise VaultError(f"{self.path}: larger than {MAX_BYTES} bytes")
        if not data.startswith(b"$ANSIBLE_VAULT;"):
            raise VaultError(f"{self.path}: not vault-encrypted; refusing to read it as secrets")
        try:
            document = yaml.safe_load(self._vault.decrypt(data))
        except AnsibleVaultError as e:
            raise VaultError(
                f"{self.path}: cannot decrypt ({e}): another vault's password?"
            ) from None
        if document is None:
            return {}
        if not isinstance(document, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in document.items()
        ):
            raise VaultError(f"{self.path}: expected a mapping of names to strings")
        return document

    def _write(self, values: dict[str, str]) -> None:
        text = "# claims-dc secrets; change them only through the tools.\n" + yaml.safe_dump(
            dict(sorted(values.items())), default_flow_style=False
        )
        blob = self._vault.encrypt(text.encode(), secret=self._secret, vault_id=VAULT_ID)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def get(self, name: str) -> str:
        values = self.read()
        if name not in values:
            raise VaultError(f"{self.path}: no secret {name!r}")
        return values[name]

    def set(self, **values: str) -> None:
        for name in values:
            if not NAME.match(name):
                raise VaultError(f"secret name {name!r}: lower case, digits and _ only")
        self._write({**self.read(), **values})

    def ensure(self, name: str, make: Callable[[], str]) -> str:
        """The secret `name`, made by `make` and stored the first time it is asked for."""
        values = self.read()
        if name in values:
            return values[name]
        value = make()
        self.set(**{name: value})
        return value

    def names(self) -> list[str]:
        return sorted(self.read())


def describe(values: dict[str, Any]) -> dict[str, str]:
    """What may be shown of secrets: their names and lengths, never a value."""
    return {k: f"{len(str(v))} characters" for k, v in values.items()}
