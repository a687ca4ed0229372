"""The vault-id client Ansible runs for the vault password: unwraps it with KMS Decrypt and
prints it to Ansible alone (stdout is Ansible's pipe). Installed into each inventory as
<inventory>/vault/vault-client by `claims-dc vault init`.

    ansible-playbook -i INVENTORY --vault-id claims-dc@INVENTORY/vault/vault-client site.yml

exit codes: 0 the password was printed; 1 it could not be unwrapped (the reason on stderr);
2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ops.vault import VAULT_ID, VaultError


def main(inventory_dir: Path, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vault-client", description=__doc__)
    parser.add_argument("--vault-id", default=VAULT_ID)
    args = parser.parse_args(argv)
    if args.vault_id != VAULT_ID:
        print(
            f"error: vault id {args.vault_id!r}: this client serves {VAULT_ID!r}", file=sys.stderr
        )
        return 2
    try:
        # Here, not at the top: every playbook run imports this module for vault_args, and
        # only the client itself needs boto3.
        from ops.vault.keyring import unwrap

        password = unwrap(inventory_dir)
    except VaultError as e:
        print(f"failed: {e}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(password + b"\n")
    return 0


SCRIPT = """#!{python}
# Ansible's vault-id client for this inventory (ops/vault/client.py); prints the vault
# password, which it unwraps with KMS Decrypt. No password is kept in this file or beside it.
import sys
from pathlib import Path

sys.path.insert(0, {repo!r})
from ops.vault.client import main

sys.exit(main(Path(__file__).resolve().parent.parent, sys.argv[1:]))
"""


def install(inventory_dir: Path, python: str, repo: Path) -> Path:
    path = client_path(inventory_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(SCRIPT.format(python=python, repo=str(repo)))
    path.chmod(0o700)
    return path


def client_path(inventory_dir: Path) -> Path:
    return inventory_dir / "vault" / "vault-client"


def vault_args(inventory_dir: Path) -> list[str]:
    """ansible-playbook's arguments for this inventory's vault (none if it has no vault)."""
    client = client_path(inventory_dir)
    return ["--vault-id", f"{VAULT_ID}@{client}"] if client.exists() else []
