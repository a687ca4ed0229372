"""claims-dc vault (or python -m ops.vault): the inventory's vault (Ansible Vault,
its password wrapped by KMS).

    claims-dc vault -i INVENTORY init --stack S --kms-key alias/claims-dc-pulumi-secrets
    claims-dc vault -i INVENTORY names          # the sealed files and their sizes
    claims-dc vault -i INVENTORY check          # open every sealed file, then look for
                                                    # plaintext secrets; exit 1 if any
    claims-dc vault -i INVENTORY seal FILE...   # seal plaintext secret files in place

`init` makes the wrapped password (once), installs INVENTORY/vault/vault-client and the first
secrets site.yml reads (database passwords and salts, sealed). Every secret beside the
inventory is a sealed file; Ansible opens them with
`--vault-id claims-dc@INVENTORY/vault/vault-client` (python -m ops.playbook and the rotation
add it by themselves).

exit codes: 0 ok; 1 the vault cannot be opened or written, or `check` found a plaintext
secret; 2 usage; 4 an unexpected failure (named).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ops.cli import run_tool
from ops.vault import VaultError
from ops.vault.environment import init
from ops.vault.keyring import KeyringSettings, unwrap
from ops.vault.scan import files, plaintext_secrets
from ops.vault.sealed import is_sealed, read_secret, seal_in_place

REPO = Path(__file__).resolve().parents[2]
PROG = "claims-dc vault"


def _sealed(inventory: Path) -> list[Path]:
    return [p for p in files(inventory) if is_sealed(p)]


def _run(args: argparse.Namespace, inventory: Path) -> tuple[dict[str, object], int]:
    if args.command == "init":
        settings = KeyringSettings(args.stack, args.kms_key, args.region, args.endpoint_url,
                                   args.ca_bundle, args.aws_config_file)  # fmt: skip
        return init(inventory, settings, sys.executable, REPO), 0
    if args.command == "seal":
        outside = [f for f in args.files if inventory.resolve() not in f.resolve().parents]
        if outside:
            raise VaultError(f"{outside[0]}: not inside {inventory}")
        return {"sealed": [str(f) for f in args.files if seal_in_place(f)]}, 0
    unwrap(inventory)  # the vault opens, or the reason why not
    sealed = {
        str(p.relative_to(inventory)): f"{len(read_secret(p))} bytes" for p in _sealed(inventory)
    }
    if args.command == "names":
        return {"sealed": sealed}, 0
    found = [str(f) for f in plaintext_secrets(inventory)]
    return {"sealed": sealed, "plaintext secrets": found}, 1 if found else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--inventory", type=Path, required=True,
                        help="the inventory directory (or its inventory.yml)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    # --json may follow the subcommand too; SUPPRESS keeps one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="results as JSON on stdout")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser(
        "init", parents=[common], help="make the wrapped password, the client, the first secrets"
    )
    make.add_argument("--stack", required=True)
    make.add_argument("--kms-key", required=True, help="KMS key ID, ARN or alias/NAME")
    make.add_argument("--region", default="ap-northeast-1")
    make.add_argument("--endpoint-url", default="", help="a KMS-compatible endpoint")
    make.add_argument("--ca-bundle", default="")
    make.add_argument("--aws-config-file", default="")
    sub.add_parser(
        "names", parents=[common], help="the sealed files and their sizes, never their contents"
    )
    sub.add_parser(
        "check", parents=[common], help="open every sealed file; find plaintext secrets (exit 1)"
    )
    seal = sub.add_parser("seal", parents=[common], help="seal plaintext secret files in place")
    seal.add_argument("files", nargs="+", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_tool(PROG, build_parser(), _command, argv)


def _command(args: argparse.Namespace) -> int:
    inventory = args.inventory if args.inventory.is_dir() else args.inventory.parent
    try:
        result, code = _run(args, inventory)
    except (VaultError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else
          "\n".join(f"{k}: {v}" for k, v in result.items()))  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
