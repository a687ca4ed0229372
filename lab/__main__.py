"""claims-dc lab (or python -m lab): the local data-center lab.

Exit codes: 0 ok, 1 failure (or an unhealthy lab for `status`), 2 usage or a bad config,
4 an unexpected failure (named).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from infra.config import ConfigError
from lab import lab
from ops.cli import run_tool

PROG = "claims-dc lab"

DESCRIPTION = """\
The local data-center lab for one stack: real Debian 12 hosts (podman, systemd, sshd) on one
internal network per zone, a router that forwards exactly the stack's flow policy and has no
uplink, a caseworker's terminal in lgwan, the fund's sender in fund, and the AWS endpoints
(a moto server behind TLS) in endpoints. Everything comes from Pulumi.<stack>.yaml.
"""

EPILOG = """\
examples:
  claims-dc lab up                 build the image if needed, then create or repair the lab
  claims-dc lab status --json      hosts, addresses and health, for machines
  claims-dc lab ssh app-1          a shell on app-1 as the lab operator
  claims-dc lab ssh db-1 -- systemctl is-system-running
  claims-dc lab down               remove every container, network and process of the lab

files (under .lab/<stack>/, git-ignored, private keys mode 0600):
  inventory.yml   Ansible inventory: groups zone_<zone>, role_<role>, datacenter, stand_ins
  ssh_config      OpenSSH config with the lab key and the hosts' own host keys
  lab.json        where things are: endpoint URL, CA certificate, addresses
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--stack", default="lab", help="stack name: reads Pulumi.<stack>.yaml")
    p.add_argument("--config", type=Path, help="a stack file to use instead (Pulumi.<s>.yaml)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    # --json is also accepted after the command; SUPPRESS keeps a global --json from being reset.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print results as JSON"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", parents=[common], help="create the lab, or repair a half-made one")
    d = sub.add_parser("down", parents=[common], help="remove exactly what the lab made")
    d.add_argument("--images", action="store_true", help="also remove the golden host image")
    sub.add_parser(
        "status", parents=[common], help="hosts, addresses and health; exit 1 if unhealthy"
    )
    r = sub.add_parser("router", parents=[common],
                       help="reload the router's rules from the (given) stack file")  # fmt: skip
    r.add_argument("action", choices=["apply", "show"])
    s = sub.add_parser("ssh", help="ssh to a lab host as the operator")
    s.add_argument("host", help="host name from the stack config, e.g. app-1")
    s.add_argument("remote", nargs=argparse.REMAINDER, help="command to run (after --)")
    return p


def _print_status(st: dict[str, object]) -> None:
    hosts = st["hosts"]
    assert isinstance(hosts, list)
    cols = ("name", "zone", "role", "address", "state", "systemd", "sshd", "memory")
    widths = [max(len(c), *(len(str(h[c])) for h in hosts)) for c in cols]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)))
    for h in hosts:
        print("  ".join(str(h[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))
    print(f"router rules: {st['router_rules']}   control-node guard: {st['control_node_guard']}")
    print(f"AWS endpoints: {st['endpoint_url']} (moto {st['moto_server']})")
    print(f"state: {st['state_dir']}")
    print("healthy" if st["healthy"] else "UNHEALTHY")


def main(argv: list[str] | None = None) -> int:
    return run_tool(PROG, build_parser(), _command, argv)


def _command(args: argparse.Namespace) -> int:
    try:
        config = lab.load(args.stack, args.config)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.command == "up":
        report = lab.up(config, args.config)
        if args.json:
            print(json.dumps(asdict(report), indent=2))
        else:
            print(f"lab {config.stack} is up in {report.seconds}s (image {report.image})")
            for name, addr in report.hosts.items():
                print(f"  {name:12} {addr}")
            print(f"inventory:     {report.inventory}")
            print(f"AWS endpoints: {report.endpoint_url} (CA {report.ca_cert})")
            print(
                f"AWS resources: {report.aws['created']} created by the program, "
                f"{report.aws['skipped']} skipped (the lines); backups in "
                f"{report.aws['backup_bucket']}"
            )
        return 0
    if args.command == "down":
        down = lab.down(config, images=args.images)
        if args.json:
            print(json.dumps(asdict(down), indent=2))
        else:
            print(
                f"removed {len(down.containers)} containers, {len(down.networks)} networks, "
                f"{len(down.processes)} processes, guard table: {down.host_table}, "
                f"images: {len(down.images)}"
            )
        return 0
    if args.command == "status":
        st = lab.status(config)
        if args.json:
            print(json.dumps(st, indent=2))
        else:
            _print_status(st)
        return 0 if st["healthy"] else 1
    if args.command == "router":
        if args.action == "show":
            from lab.plan import router_ruleset

            ruleset = router_ruleset(config)
            print(json.dumps({"ruleset": ruleset}) if args.json else ruleset, end="")
        else:
            lab.apply_router_rules(config)
            print(json.dumps({"applied": str(config.source)}) if args.json else
                  f"router rules applied from {config.source}")  # fmt: skip
        return 0
    if args.command == "ssh":
        if args.host not in config.hosts:
            print(
                f"{PROG}: unknown host {args.host!r}; hosts: {', '.join(config.hosts)}",
                file=sys.stderr,
            )
            return 2
        cfg = lab.state_dir(config.stack) / "ssh_config"
        if not cfg.exists():
            print(f"{PROG}: {cfg} missing; run `claims-dc lab up` first", file=sys.stderr)
            return 1
        remote = [a for a in args.remote if a != "--"]
        os.execvp("ssh", ["ssh", "-F", str(cfg), args.host, *remote])  # noqa: S606 - replaces us
    return 2


if __name__ == "__main__":
    sys.exit(main())
