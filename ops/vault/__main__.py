"""python -m ops.vault: the inventory's vault (Ansible Vault, its password wrapped by KMS).

    python -m ops.vault init -i INVENTORY --stack S --kms-key alias/claims-dc-pulumi-secrets
    python -m ops.vault names -i INVENTORY       # the secrets' names and lengths, never values
    python -m ops.vault check -i INVENTORY       # unwrap and decrypt; exit 1 if it cannot

`init` makes the wrapped password (once), installs INVENTORY/vault/vault-client and creates the
empty vaulted secrets file; run Ansible with
`--vault-id claims-dc@INVENTORY/vault/vault-client`.

exit codes: 0 ok; 1 the vault cannot be opened or written; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ops.vault import VaultError
from ops.vault.client import install
from ops.vault.keyring import KeyringSettings, create, unwrap
from ops.vault.store import SecretStore, describe, store_path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.vault",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--inventory", type=Path, required=True,
                        help="the inventory directory (or its inventory.yml)")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="make the wrapped password and the vault client")
    init.add_argument("--stack", required=True)
    init.add_argument("--kms-key", required=True, help="KMS key ID, ARN or alias/NAME")
    init.add_argument("--region", default="ap-northeast-1")
    init.add_argument("--endpoint-url", default="", help="a KMS-compatible endpoint")
    init.add_argument("--ca-bundle", default="")
    init.add_argument("--aws-config-file", default="")
    sub.add_parser("names", help="the stored secrets' names and lengths")
    sub.add_parser("check", help="unwrap the password and decrypt the secrets")
    args = parser.parse_args(argv)
    inventory = args.inventory if args.inventory.is_dir() else args.inventory.parent
    try:
        if args.command == "init":
            settings = KeyringSettings(args.stack, args.kms_key, args.region, args.endpoint_url,
                                       args.ca_bundle, args.aws_config_file)  # fmt: skip
            made = create(inventory, settings)
            client = install(inventory, sys.executable, REPO)
            store = SecretStore(store_path(inventory), unwrap(inventory))
            if not store.path.exists():
                store.set()
            result = {"created": made, "client": str(client), "store": str(store.path)}
        else:
            store = SecretStore(store_path(inventory), unwrap(inventory))
            result = {"store": str(store.path), "secrets": describe(store.read())}
    except VaultError as e:
        print(f"failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else
          "\n".join(f"{k}: {v}" for k, v in result.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
