"""The inventory's vault: a vault password that exists only wrapped by KMS, the vault-id client
Ansible runs, and the vaulted secrets file, against a moto KMS on loopback and Ansible itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from ops.vault import VaultError
from ops.vault.keyring import KeyringSettings, create, unwrap
from ops.vault.store import SecretStore, store_path
from tests.unit.backup.conftest import moto_endpoint

__all__ = ["moto_endpoint"]
BIN = Path(sys.executable).parent
SECRET = "correct-horse-battery-staple-0123456789"


@pytest.fixture
def vault(tmp_path: Path, moto_endpoint: str) -> tuple[Path, str]:
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="ap-northeast-1")
    key = kms.create_key(Description="vault test")["KeyMetadata"]["Arn"]
    inventory = tmp_path / "inv"
    inventory.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "ops.vault", "-i", str(inventory), "--json", "init",
         "--stack", "lab", "--kms-key", key, "--endpoint-url", moto_endpoint],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return inventory, key


def test_the_password_exists_only_wrapped_and_the_secrets_only_encrypted(
    vault: tuple[Path, str],
) -> None:
    inventory, _ = vault
    store = SecretStore(store_path(inventory), unwrap(inventory))
    store.set(db_claims_owner_password=SECRET)
    assert store.get("db_claims_owner_password") == SECRET
    assert store.ensure("db_claims_owner_salt", lambda: "00" * 16) == "00" * 16
    assert store.ensure("db_claims_owner_salt", lambda: "ff" * 16) == "00" * 16  # kept
    password = unwrap(inventory)
    for path in inventory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and password not in data, path
    assert (inventory / "vault" / "password.kms").stat().st_mode & 0o777 == 0o600
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;claims-dc\n")


def test_ansible_reads_the_vaulted_secrets_through_the_client(vault: tuple[Path, str]) -> None:
    inventory, _ = vault
    SecretStore(store_path(inventory), unwrap(inventory)).set(db_claims_owner_password=SECRET)
    (inventory / "inventory.yml").write_text("all:\n  hosts:\n    localhost:\n")
    client = inventory / "vault" / "vault-client"
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-i", str(inventory / "inventory.yml"), "-o",
         "-c", "local", "--vault-id", f"claims-dc@{client}",
         "-m", "ansible.builtin.debug", "-a", "var=db_claims_owner_password"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout.split(" => ", 1)[1])["db_claims_owner_password"] == SECRET
    view = subprocess.run(
        [str(BIN / "ansible-vault"), "view", "--vault-id", f"claims-dc@{client}",
         str(store_path(inventory))],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert view.returncode == 0 and SECRET in view.stdout


def test_a_ciphertext_moved_to_another_stack_does_not_open(
    vault: tuple[Path, str], tmp_path: Path, moto_endpoint: str
) -> None:
    inventory, key = vault
    other = tmp_path / "other"
    create(other, KeyringSettings("omuta-prod", key, "ap-northeast-1", moto_endpoint))
    (other / "vault" / "password.kms").write_bytes(
        (inventory / "vault" / "password.kms").read_bytes()
    )
    with pytest.raises(VaultError, match="KMS Decrypt"):
        unwrap(other)


def test_a_readable_wrapped_password_or_a_plaintext_secrets_file_is_refused(
    vault: tuple[Path, str],
) -> None:
    inventory, _ = vault
    wrapped = inventory / "vault" / "password.kms"
    wrapped.chmod(0o644)
    with pytest.raises(VaultError, match="readable by others"):
        unwrap(inventory)
    wrapped.chmod(0o600)
    path = store_path(inventory)
    path.write_text(f"db_claims_owner_password: {SECRET}\n")
    with pytest.raises(VaultError, match="not vault-encrypted"):
        SecretStore(path, unwrap(inventory)).read()


def test_the_client_fails_with_a_reason_and_never_a_password(tmp_path: Path) -> None:
    from ops.vault.client import install

    client = install(tmp_path, sys.executable, Path(__file__).resolve().parents[2])
    proc = subprocess.run([str(client), "--vault-id", "claims-dc"], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    assert "no vault here" in proc.stderr and "Traceback" not in proc.stderr
    other = subprocess.run([str(client), "--vault-id", "someone-else"], capture_output=True,
                           text=True, timeout=60, check=False)  # fmt: skip
    assert other.returncode == 2


def test_a_wrong_password_is_a_named_failure(vault: tuple[Path, str]) -> None:
    inventory, _ = vault
    SecretStore(store_path(inventory), unwrap(inventory)).set(a=SECRET)
    with pytest.raises(VaultError, match="cannot decrypt"):
        SecretStore(store_path(inventory), b"not-the-password").read()
