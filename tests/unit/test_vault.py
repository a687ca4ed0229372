"""The inventory's vault: a vault password that exists only wrapped by KMS, the vault-id client
Ansible runs, sealed secret files that Ansible and the tools open, and the scan for plaintext
secrets, against a moto KMS on loopback and Ansible itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from ops.vault import VaultError, sealed
from ops.vault.__main__ import main as vault_main
from ops.vault.keyring import KeyringSettings, create, unwrap
from ops.vault.scan import plaintext_secrets
from ops.vault.sealed import is_sealed, read_secret, unsealed_copy, write_secret
from tests.unit.backup.conftest import moto_endpoint

__all__ = ["moto_endpoint"]
BIN = Path(sys.executable).parent
SECRET = "correct-horse-battery-staple-0123456789"
PEM_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


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
    made = json.loads(proc.stdout)["secrets made"]
    assert made == ["db-claims_owner", "db-claims_owner.salt", "db-claims_app_a",
                    "db-claims_app_a.salt"]  # fmt: skip
    return inventory, key


def test_the_password_exists_only_wrapped_and_the_secrets_only_sealed(
    vault: tuple[Path, str],
) -> None:
    inventory, _ = vault
    path = inventory / "secrets" / "db-claims_owner"
    write_secret(path, SECRET + "\n")
    assert read_secret(path) == (SECRET + "\n").encode()
    password = unwrap(inventory)
    for file in inventory.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert SECRET.encode() not in data and password not in data, file
    assert (inventory / "vault" / "password.kms").stat().st_mode & 0o777 == 0o600
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;claims-dc\n")
    assert all(is_sealed(f) for f in (inventory / "secrets").iterdir())
    assert plaintext_secrets(inventory) == []


def test_ansible_opens_sealed_files_through_the_client(vault: tuple[Path, str]) -> None:
    inventory, _ = vault
    write_secret(inventory / "secrets" / "db-claims_owner", SECRET + "\n")
    (inventory / "inventory.yml").write_text("all:\n  hosts:\n    localhost:\n")
    client = inventory / "vault" / "vault-client"
    lookup = f"{{{{ lookup('ansible.builtin.file', '{inventory}/secrets/db-claims_owner') }}}}"
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-i", str(inventory / "inventory.yml"), "-o",
         "-c", "local", "--vault-id", f"claims-dc@{client}",
         "-m", "ansible.builtin.debug", "-a", f"msg={lookup}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout.split(" => ", 1)[1])["msg"] == SECRET
    copied = inventory.parent / "copied"
    copy = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-i", str(inventory / "inventory.yml"),
         "-c", "local", "--vault-id", f"claims-dc@{client}", "-m", "ansible.builtin.copy",
         "-a", f"src={inventory}/secrets/db-claims_owner dest={copied} mode=0600"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert copy.returncode == 0, copy.stdout + copy.stderr
    assert copied.read_text() == SECRET + "\n"  # the copy module unseals on its way out


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


def test_a_readable_wrapped_password_or_a_plaintext_secret_is_refused(
    vault: tuple[Path, str],
) -> None:
    inventory, _ = vault
    wrapped = inventory / "vault" / "password.kms"
    wrapped.chmod(0o644)
    with pytest.raises(VaultError, match="readable by others"):
        unwrap(inventory)
    wrapped.chmod(0o600)
    path = inventory / "secrets" / "db-claims_owner"
    path.write_text(f"{SECRET}\n")
    with pytest.raises(VaultError, match=f"{path}: a plaintext secret"):
        read_secret(path)
    with pytest.raises(VaultError, match="not inside an inventory with a vault"):
        write_secret(inventory.parent / "elsewhere" / "key", SECRET)


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
    path = inventory / "secrets" / "db-claims_owner"
    sealed._passwords[inventory.resolve()] = b"not-the-password"
    try:
        with pytest.raises(VaultError, match="cannot decrypt"):
            read_secret(path)
    finally:
        sealed._passwords.pop(inventory.resolve())


def test_the_scan_finds_each_kind_of_plaintext_secret_and_names_no_value(
    vault: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, _ = vault
    password = read_secret(inventory / "secrets" / "db-claims_owner").decode().strip()
    (inventory / "notes.txt").write_text(f"owner: {password}\n")
    (inventory / "pki").mkdir()
    (inventory / "pki" / "app-1.key").write_text(PEM_KEY)
    aws = "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    (inventory / "creds").write_text(f"[x]\n{aws}\n")
    found = {(f.path.name, f.what) for f in plaintext_secrets(inventory)}
    assert found == {
        ("notes.txt", "a value of the sealed db-claims_owner"),
        ("app-1.key", "a private key"),
        ("creds", "an AWS secret access key"),
    }
    assert vault_main(["-i", str(inventory), "check"]) == 1
    out = capsys.readouterr().out
    assert "notes.txt" in out and password not in out and "wJalrX" not in out
    assert vault_main(["-i", str(inventory), "seal", *(str(inventory / n)
                       for n in ("notes.txt", "pki/app-1.key", "creds"))]) == 0  # fmt: skip
    assert vault_main(["-i", str(inventory), "check"]) == 0
    assert read_secret(inventory / "pki" / "app-1.key") == PEM_KEY.encode()
    assert vault_main(["-i", str(inventory), "seal", "/etc/hostname"]) == 1
    assert vault_main(["-i", str(inventory), "nosuch"]) == 2


def test_an_unsealed_copy_is_private_and_gone_after_the_call(vault: tuple[Path, str]) -> None:
    inventory, _ = vault
    key = inventory / "ssh-ca" / "user-ca-1"
    write_secret(key, PEM_KEY)
    with unsealed_copy(key) as copy:
        assert copy.read_text() == PEM_KEY and copy.stat().st_mode & 0o777 == 0o600
        assert copy.parent.stat().st_mode & 0o777 == 0o700
        assert inventory not in copy.parents
    assert not copy.exists() and not copy.parent.exists()
