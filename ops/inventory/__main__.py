"""claims-dc inventory (or python -m ops.inventory): the Ansible inventory of a deployed
stack."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.config import ConfigError, load_file
from ops.cli import run_tool
from ops.inventory import InventoryError
from ops.inventory.generate import CONNECT_MODES, write_inventory
from ops.inventory.operators import load_operators
from ops.inventory.outputs import load_outputs

EPILOG = """\
examples:
  pulumi stack output --stack omuta-prod --json > omuta-prod.outputs.json
  claims-dc inventory --stack omuta-prod --outputs omuta-prod.outputs.json \\
      --operators operators.yml --as tanaka --out inventories/omuta-prod
  ansible-playbook -i inventories/omuta-prod/inventory.yml playbooks/site.yml

what it writes in --out (mode 0700):
  inventory.yml, group_vars/all/00-stack.yml, ssh_config, known_hosts (kept if present)

exit codes:
  0  written
  1  a file could not be written
  4  an unexpected failure, named
  2  usage, or bad input: the stack file, the outputs or the operators file (every problem
     is named with its file, key and value)
"""


PROG = "claims-dc inventory"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write the Ansible inventory of one environment from its stack config "
        "(Pulumi.<stack>.yaml), its stack outputs (`pulumi stack output --json`) and its "
        "operators file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--stack", required=True, help="the stack: reads Pulumi.<stack>.yaml")
    p.add_argument("--stack-file", type=Path, help="the stack file, if not ./Pulumi.<stack>.yaml")
    p.add_argument("--outputs", type=Path, required=True,
                   help="what `pulumi stack output --json` printed for the stack")  # fmt: skip
    p.add_argument("--operators", type=Path, required=True,
                   help="the operators file (YAML: name, staff_id, public_keys)")  # fmt: skip
    p.add_argument("--as", dest="operator", metavar="NAME",
                   help="the operator Ansible runs as (default: the file's first)")  # fmt: skip
    p.add_argument("--identity", type=Path, help="that operator's private key file, if not "
                   "the SSH agent's")  # fmt: skip
    p.add_argument("--connect", choices=CONNECT_MODES, default="ssm",
                   help="ssm: the bastion by Session Manager, the rest through it (default); "
                   "bastion: the bastion on its address, the rest through it; "
                   "direct: this node is inside the management network")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="the inventory directory")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_tool(PROG, build_parser(), _write, argv)


def _write(args: argparse.Namespace) -> int:
    stack_file = args.stack_file or Path(f"Pulumi.{args.stack}.yaml")
    try:
        config = load_file(stack_file)
        if config.stack != args.stack:
            raise InventoryError([f"{stack_file}: is stack {config.stack!r}, not {args.stack!r}"])
        outputs = load_outputs(args.outputs, config)
        operators = load_operators(args.operators)
        written = write_inventory(
            config, outputs, operators, args.out,
            operator_name=args.operator, connect=args.connect, identity=args.identity,
        )  # fmt: skip
    except ConfigError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except InventoryError as e:
        for problem in e.problems:
            print(f"{PROG}: {problem}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: cannot write the inventory: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"stack": config.stack, "written": [str(p) for p in written]}))
    else:
        for path in written:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
