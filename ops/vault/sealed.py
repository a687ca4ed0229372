"""Secret files on the control node, each sealed whole with Ansible Vault.

Every secret kept beside the inventory (database passwords and salts, the AWS keys' credentials
file, the internal CA's and the hosts' TLS keys, the SSH user CA keys) is a file in Ansible
Vault's format under the vault id `claims-dc`, encrypted with the inventory's vault password
(`keyring`). Ansible opens such a file by itself wherever it reads one (the file lookup, the
copy module's src) when it runs with `--vault-id claims-dc@<inventory>/vault/vault-client`; the
tools read and write them here, and never put a plaintext copy on disk, except `unsealed_copy`
for a program that takes a key only as a file (ssh-keygen -s), in memory and for that call.

The inventory a file belongs to is the nearest parent directory holding vault/password.kms;
its password is unwrapped once per process (one KMS Decrypt).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret

from ops.files import FileRefused, read_at_most, write_private
from ops.vault import VAULT_ID, VaultError
from ops.vault.keyring import unwrap

HEADER = b"$ANSIBLE_VAULT;"
MAX_BYTES = 1024 * 1024
_passwords: dict[Path, bytes] = {}


def inventory_of(path: Path) -> Path:
    """The inventory directory whose vault seals `path`."""
    for parent in path.resolve().parents:
        if (parent / "vault" / "password.kms").exists():
            return parent
    raise VaultError(
        f"{path}: not inside an inventory with a vault; make one with `claims-dc vault init`"
    )


def _vault(path: Path) -> tuple[VaultLib, VaultSecret]:
    inventory = inventory_of(path)
    if inventory not in _passwords:
        _passwords[inventory] = unwrap(inventory)
    secret = VaultSecret(_passwords[inventory])
    return VaultLib([(VAULT_ID, secret)]), secret


def is_sealed(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(HEADER)) == HEADER


def write_secret(path: Path, data: str | bytes) -> None:
    """Seal `data` into `path`: encrypted in memory, written 0600 from the first byte and whole
    (a temporary file renamed over the old one)."""
    raw = data.encode() if isinstance(data, str) else data
    vault, secret = _vault(path)
    write_private(path, vault.encrypt(raw, secret=secret, vault_id=VAULT_ID))


def read_secret(path: Path) -> bytes:
    """The plaintext of a sealed file; a plaintext secret file is refused, not read."""
    try:
        blob = read_at_most(path, MAX_BYTES, "a sealed secret")
    except FileRefused as e:
        raise VaultError(str(e)) from None
    if not blob.startswith(HEADER):
        raise VaultError(f"{path}: a plaintext secret; seal it (claims-dc vault seal)")
    vault, _ = _vault(path)
    try:
        return bytes(vault.decrypt(blob))
    except AnsibleVaultError as e:
        raise VaultError(f"{path}: cannot decrypt ({e}): another vault's password?") from None


def read_secret_text(path: Path) -> str:
    try:
        return read_secret(path).decode("utf-8")
    except UnicodeDecodeError:
        raise VaultError(f"{path}: not UTF-8 text") from None


def seal_in_place(path: Path) -> bool:
    """Seal a plaintext file where it lies (one a program wrote, such as ssh-keygen's key);
    False if it was sealed already."""
    if is_sealed(path):
        return False
    write_secret(path, path.read_bytes())
    return True


def _memory_dir() -> str | None:
    # Memory-backed on Linux, so an unsealed key never reaches a disk; mkdtemp makes a fresh
    # 0700 directory there with a random name, so a shared /dev/shm is safe.
    memory = "/dev/shm"  # noqa: S108
    return memory if os.access(memory, os.W_OK) else None


@contextmanager
def scratch() -> Iterator[Path]:
    """A private 0700 directory in memory for a key in plaintext, removed on leaving."""
    private = Path(tempfile.mkdtemp(prefix="claims-dc-", dir=_memory_dir()))
    try:
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)


@contextmanager
def unsealed_copy(path: Path) -> Iterator[Path]:
    """A plaintext copy of a sealed file for one call of a program that reads keys only from
    files: 0600 in `scratch`, removed when the call is done."""
    with scratch() as private:
        copy = private / path.name
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(read_secret(path))
        yield copy
