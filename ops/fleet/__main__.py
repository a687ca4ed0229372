"""claims-dc fleet (or python -m ops.fleet): the municipalities the service runs, as one
directory of stack files.

    claims-dc fleet new --code 402028 --name 大牟田市 [--region ap-northeast-1] \\
        [--stack omuta-prod] [--lgwan-line vpn|dx] [--fund-line vpn|dx] \\
        [--operations-account ID] --fleet DIR
    claims-dc fleet check --fleet DIR [--jobs N]
    claims-dc fleet status --fleet DIR [--out DIR] [--aws-endpoint URL --aws-ca FILE]
    claims-dc fleet run PLAYBOOK --fleet DIR --inventories DIR [--parallel N] [--out DIR]

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

`status` is the fleet board: for each tenant it assumes the tenant's fleet-reader role (the
stack's aws:allowedAccountIds and claims-dc:fleetReader; the operations account's credentials
come from the default chain), reads what the environment published under status/
(ops/status.py) and colours it: red for a backup older than 26 hours or failed, a failed
verify or drill, an expired certificate, or a status that cannot be read or believed; amber
for a drill older than 35 days, an access review older than 90 days, a secret past its
rotation age, a certificate expiring within 30 days; green for none. The text board goes to
stdout; --out DIR also writes board.html (prints on A4), board.csv (UTF-8 with BOM) and
board.json.

`run` runs one of site.yml, daily_backup.yml, access_review.yml or rotate_keys.yml for every
tenant, at most --parallel (4) at once, through ansible-runner: each tenant with its own
inventory (INVENTORIES/<stack>/inventory.yml, as ops.inventory writes it) and its own
directory and log (OUT/<run>/<stack>/artifacts/). A tenant that fails, or has no inventory, is
named in the summary; the others run on.

Results on stdout (--json for machines), errors on stderr. Exit codes: 0 written, or every
tenant and the fleet hold, or every tenant is green or amber, or every tenant's run succeeded;
1 a tenant or the fleet fails a check, a tenant is red or unreadable, a tenant's run fails;
4 an unexpected failure (named); 2 bad input (a wrong code or name, a tenant already in the
fleet, an unreadable stack file in DIR, no free network left, no stack file in DIR, a
playbook not run fleet-wide).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ops.fleet.codes import CodeError, look_up
from ops.fleet.onboard import FleetError, new_tenant

PROG = "claims-dc fleet"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
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
    new.add_argument("--operations-account", metavar="ID",
                     help="the operations account whose board reads the tenant's status "
                     "(12 digits; left to fill in if not given)")  # fmt: skip
    check = sub.add_parser("check", help="config, policy pack and proof of every tenant, and "
                           "the tenants against each other")  # fmt: skip
    check.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    check.add_argument("--fleet", type=Path, required=True, help="the fleet's directory")
    check.add_argument("--jobs", type=int, help="processes (default: one per core)")
    status = sub.add_parser("status", help="the fleet board: every tenant's backups, drills, "
                            "reviews, keys and certificates, red/amber/green")  # fmt: skip
    status.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    status.add_argument("--fleet", type=Path, required=True, help="the fleet's directory")
    status.add_argument("--out", type=Path, help="write board.html, board.csv, board.json here")
    status.add_argument("--aws-endpoint", help="the AWS API's URL (default: AWS's own)")
    status.add_argument("--aws-ca", help="the CA bundle of the endpoint's certificate")
    status.add_argument("--region", default="ap-northeast-1", help="for STS (%(default)s)")
    status.add_argument("--workers", type=int, default=16, help="tenants read at once (16)")
    run = sub.add_parser("run", help="a playbook over every tenant, a few at once")
    run.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    run.add_argument("playbook", help="site.yml, daily_backup.yml, access_review.yml or "
                     "rotate_keys.yml")  # fmt: skip
    run.add_argument("--fleet", type=Path, required=True, help="the fleet's directory")
    run.add_argument(
        "--inventories",
        type=Path,
        required=True,
        help="where each tenant's inventory is: <DIR>/<stack>/inventory.yml",
    )
    run.add_argument("--parallel", type=int, default=4, help="tenants at once (4)")
    run.add_argument(
        "--out",
        type=Path,
        default=Path("fleet-runs"),
        help="each run's directory and logs (default ./fleet-runs)",
    )
    run.add_argument("--timeout", type=float, default=3600, help="seconds per tenant (3600)")
    run.add_argument("--stacks", help="only these tenants (comma-separated stack names)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return 2 if e.code not in (0, None) else 0
    handler, failure = {
        "new": (_new, "unexpected error"),
        "check": (_check, "the check could not run"),
        "status": (_status, "the board could not be made"),
        "run": (_run, "the run failed"),
    }[args.command]
    try:
        return handler(args)
    except Exception as e:  # named, never a traceback
        print(f"{PROG}: {failure}: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
        return 4


def _check(args: argparse.Namespace) -> int:
    from infra.check import fleet_check

    return fleet_check(args.fleet, args.json, args.jobs)


def _new(args: argparse.Namespace) -> int:
    try:
        municipality = look_up(args.code, args.name)
        path, blanks = new_tenant(
            args.fleet, municipality, region=args.region, stack=args.stack or municipality.code,
            lines={"lgwan": args.lgwan_line, "fund": args.fund_line},
            operations_account=args.operations_account,
        )  # fmt: skip
    except (CodeError, FleetError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
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


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from ops.fleet.runner import FLEET_PLAYBOOKS, run_fleet

    if args.playbook not in FLEET_PLAYBOOKS:
        print(f"{PROG}: run {args.playbook}: one of {', '.join(FLEET_PLAYBOOKS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.parallel < 1:
        print(f"{PROG}: --parallel {args.parallel}: at least 1", file=sys.stderr)
        return 2
    files = sorted(args.fleet.glob("Pulumi.*.yaml")) if args.fleet.is_dir() else []
    stacks = [p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in files]
    if args.stacks:
        wanted = [s.strip() for s in args.stacks.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(stacks))
        if unknown:
            print(f"{PROG}: --stacks {unknown[0]}: not a tenant in {args.fleet}",
                  file=sys.stderr)  # fmt: skip
            return 2
        stacks = [s for s in stacks if s in wanted]
    if not stacks:
        print(f"{PROG}: run: no Pulumi.<stack>.yaml in {args.fleet}", file=sys.stderr)
        return 2
    out = args.out / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{args.playbook}"
    print(f"{PROG}: {args.playbook} on {len(stacks)} tenants, {args.parallel} at once; "
          f"logs under {out}", file=sys.stderr)  # fmt: skip
    started = time.monotonic()
    runs = run_fleet(stacks, args.inventories, args.playbook, out, parallel=args.parallel,
                     timeout=args.timeout)  # fmt: skip
    seconds = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps({"playbook": args.playbook, "seconds": seconds, "out": str(out),
                          "tenants": [dataclasses.asdict(r) for r in runs]}))  # fmt: skip
    else:
        for r in runs:
            hosts = ", ".join(
                f"{h} failed={c.get('failures', 0)} unreachable={c.get('dark', 0)}"
                for h, c in r.hosts.items()
                if c.get("failures") or c.get("dark")
            )
            print(f"{r.stack:24} {r.status:12} {r.seconds:7.1f}s  {r.error or hosts or ''}")
            if r.log:
                print(f"{'':24} log {r.log}")
        good = sum(1 for r in runs if r.ok)
        print(f"{good} of {len(runs)} tenants succeeded in {seconds}s")
    return 0 if all(r.ok for r in runs) else 1


def _status(args: argparse.Namespace) -> int:
    import datetime as dt

    from ops.awsapi import Endpoint
    from ops.fleet import board

    files = sorted(args.fleet.glob("Pulumi.*.yaml")) if args.fleet.is_dir() else []
    if not files:
        print(f"{PROG}: status: no Pulumi.<stack>.yaml in {args.fleet}", file=sys.stderr)
        return 2
    now = dt.datetime.now(dt.UTC)
    reader = board.Reader(Endpoint(args.aws_endpoint, args.region, args.aws_ca))
    print(f"{PROG}: reading {len(files)} tenants' status", file=sys.stderr)
    rows = board.board(files, reader, workers=args.workers, now=now)
    written = []
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, data in (
            ("board.html", board.to_html(rows, now).encode("utf-8")),
            ("board.csv", board.to_csv(rows)),
            ("board.json", json.dumps(board.to_json(rows, now), ensure_ascii=False,
                                      indent=1).encode("utf-8")),
        ):  # fmt: skip
            (args.out / name).write_bytes(data)
            written.append(str(args.out / name))
    if args.json:
        print(json.dumps({**board.to_json(rows, now), "files": written}, ensure_ascii=False))
    else:
        for r in rows:
            print(f"{r.colour:6} {r.code:6} {r.stack:24} {r.name}")
            for f in r.findings:
                print(f"         {f.colour:5} {f.rule:18} {f.detail}")
        for path in written:
            print(f"board: {path}")
    return 1 if any(r.colour == board.RED for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
