"""python -m ops.fleet: the municipalities the service runs, as one directory of stack files.

    python -m ops.fleet new --code 402028 --name 大牟田市 [--region ap-northeast-1] \\
        [--stack omuta-prod] [--lgwan-line vpn|dx] [--fund-line vpn|dx] --fleet DIR
    python -m ops.fleet check --fleet DIR [--jobs N]

`new` writes DIR/Pulumi.<stack>.yaml for a municipality joining the service. The code must
carry its JIS X 0402 check digit and be on the national list of local government codes
(ops/fleet/data/municipalities.csv, with its source and date), and --name must be the list's
name. The VPC, its zones, the hosts and a private BGP ASN per line are allocated so that
nothing overlaps or repeats another tenant in DIR (a tenant still being filled in included).
What only the municipality or the fund can give (their networks, each line's router address
or Direct Connect connection) is written as `FILL IN: ...`, and the stack loader refuses the
file, naming each one, until it is filled in. The file is checked before it is written.

`check` checks every tenant's config, policy pack and proof in parallel over the cores (one
process each; a tenant whose config is refused or whose check fails is named, and the others
are still checked), then the tenants against each other: tenants sharing a line must not
overlap, and none may route towards another's VPC (infra.check --fleet is the same check).

Results on stdout (--json for machines), errors on stderr. Exit codes: 0 written, or every
tenant and the fleet hold; 1 a tenant or the fleet fails a check, or an unexpected failure
(named); 2 bad input (a wrong code or name, a tenant already in the fleet, an unreadable stack
file in DIR, no free network left, no stack file to check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ops.fleet.codes import CodeError, look_up
from ops.fleet.onboard import FleetError, new_tenant


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.fleet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    sub = p.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="write a new municipality's stack file into the fleet")
    new.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    new.add_argument("--code", required=True, help="the local government code, e.g. 402028")
    new.add_argument("--name", required=True, help="its name as on the list, e.g. 大牟田市")
    new.add_argument("--region", default="ap-northeast-1", help="ap-northeast-1 or -3")
    new.add_argument("--stack", help="the stack's name (default: the code)")
    new.add_argument("--lgwan-line", choices=("vpn", "dx"), default="vpn")
    new.add_argument("--fund-line", choices=("vpn", "dx"), default="vpn")
    new.add_argument("--fleet", type=Path, required=True, help="the fleet's directory")
    check = sub.add_parser("check", help="config, policy pack and proof of every tenant, and "
                           "the tenants against each other")  # fmt: skip
    check.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    check.add_argument("--fleet", type=Path, required=True, help="the fleet's directory")
    check.add_argument("--jobs", type=int, help="processes (default: one per core)")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code not in (0, None) else 0
    if args.command == "check":
        from infra.check import fleet_check

        try:
            return fleet_check(args.fleet, args.json, args.jobs)
        except Exception as e:  # named, never a traceback
            print(f"ops.fleet: the check could not run: {type(e).__name__}: {str(e)[:300]}",
                  file=sys.stderr)  # fmt: skip
            return 1
    try:
        municipality = look_up(args.code, args.name)
        path, blanks = new_tenant(
            args.fleet, municipality, region=args.region, stack=args.stack or municipality.code,
            lines={"lgwan": args.lgwan_line, "fund": args.fund_line},
        )  # fmt: skip
    except (CodeError, FleetError) as e:
        print(f"ops.fleet: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # named, never a traceback
        print(f"ops.fleet: unexpected error: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"stack_file": str(path), "municipality": municipality.code,
                          "fill_in": [{"key": k, "what": v} for k, v in blanks]},
                         ensure_ascii=False))  # fmt: skip
    else:
        print(f"{path}: {municipality.prefecture}{municipality.city} ({municipality.code})")
        print(f"fill in before it loads ({len(blanks)}):")
        for key, what in blanks:
            print(f"  {key}: {what.removeprefix('FILL IN:').strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
