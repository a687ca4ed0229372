"""claims-dc access review: every account on every layer against the staff roster.

    python -m ops.access_review run --roster roster.csv --keys keys.csv --out review/ \\
        [--aws [--aws-endpoint URL --aws-ca FILE]] \\
        [--inventory inventory.yml --ssh-user U --ssh-key KEY --known-hosts FILE \\
         [--db-via-host db-1]] [--db-dsn DSN] [--app-dsn DSN] [--service-accounts services.toml] \\
        [--exceptions exceptions.csv] [--previous previous-review/] [--sign-key KEY]
    python -m ops.access_review verify review/ --allowed-signers FILE --signer NAME

Collectors run in parallel and are each bounded in time; a source that cannot be read
completely makes its scope INCOMPLETE, and the review with it, never PASS. Database passwords
come from PGPASSWORD or a pgpass file, never from a flag. The service-accounts file lists the
machine accounts and their documented purpose, per system:

    [host]
    fund = "the fund's SFTP delivery account"
    [db]
    claims_owner = "owns the schema; migrations only"

Writes review.json, review.csv (UTF-8 with BOM), review.html and SHA256SUMS (signed with
--sign-key). Exit codes: 0 PASS, 1 FINDINGS or INCOMPLETE (or a failed verification), 2 usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from ops.reviewlib import checks, database, hosts, iam, report
from ops.reviewlib.model import Account, Scope
from ops.reviewlib.roster import RosterError, load


def _inventory_hosts(path: Path, group: str) -> list[hosts.HostTarget]:
    doc = yaml.safe_load(path.read_text()) or {}
    root = doc.get("all", {})
    hostvars = {n: v or {} for n, v in root.get("hosts", {}).items()}
    members = root.get("children", {}).get(group, {}).get("hosts", {})
    names = sorted(members) if members else sorted(hostvars)
    return [
        hosts.HostTarget(
            n,
            str(hostvars.get(n, {}).get("ansible_host", n)),
            int(hostvars.get(n, {}).get("ansible_port", 22)),
        )
        for n in names
    ]


def _aws_iam(endpoint: str | None, ca: str | None, timeout: float) -> Any:
    import boto3
    from botocore.config import Config

    # Every call bounded: a stalled endpoint makes the scope INCOMPLETE, not the review hang.
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 3})
    kwargs: dict[str, Any] = {"region_name": "us-east-1", "config": config}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if ca:
        kwargs["verify"] = ca
    return boto3.client("iam", **kwargs)


def run(args: argparse.Namespace) -> int:
    try:
        roster = load(args.roster, args.keys)
        exceptions = (
            report.parse_exceptions(args.exceptions.read_bytes(), str(args.exceptions))
            if args.exceptions
            else []
        )
    except (RosterError, report.ExceptionsError, OSError) as e:
        print(f"access_review: {e}", file=sys.stderr)
        return 2
    service: dict[str, dict[str, str]] = {}
    if args.service_accounts:
        service = tomllib.loads(args.service_accounts.read_text())
    today = dt.date.fromisoformat(args.today) if args.today else dt.date.today()
    jobs: list[Any] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        if args.aws:
            jobs.append(pool.submit(lambda: _aws(args, service)))
        if args.inventory:
            targets = _inventory_hosts(args.inventory, args.host_group)
            jobs.append(
                pool.submit(
                    lambda: hosts.collect(
                        targets,
                        user=args.ssh_user,
                        key_file=args.ssh_key,
                        known_hosts=args.known_hosts,
                        service=service,
                        database_host=args.db_via_host,
                        timeout=args.timeout,
                    )
                )
            )
        if args.db_dsn:
            jobs.append(
                pool.submit(
                    lambda: _one(database.collect_db_roles(args.db_dsn, service.get("db", {})))
                )
            )
        if args.app_dsn:
            jobs.append(
                pool.submit(
                    lambda: _one(
                        database.collect_app_accounts(args.app_dsn, service.get("app", {}))
                    )
                )
            )
        accounts: list[Account] = []
        scopes: list[Scope] = []
        for job in jobs:
            accs, scs = job.result()
            accounts += accs
            scopes += scs
    if not scopes:
        print(
            "access_review: nothing to review: give --aws, --inventory, --db-dsn or --app-dsn",
            file=sys.stderr,
        )
        return 2
    findings = checks.review(accounts, checks.Context(roster, today, args.dormant_days))
    previous = None
    if args.previous:
        previous = json.loads((args.previous / "review.json").read_text())
    review = report.build(findings, scopes, today=today, exceptions=exceptions, previous=previous)
    review["roster"] = {
        "source": roster.source,
        "encoding": roster.encoding,
        "people": len(roster.people),
        "keys": len(roster.keys),
    }
    try:
        written = report.write(review, args.out, args.sign_key)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"access_review: the review could not be written to {args.out}: {e}", file=sys.stderr)
        return 1
    if args.json:
        review = {**review, "out": str(args.out.resolve()), "files": [p.name for p in written]}
        print(json.dumps(review, indent=2, ensure_ascii=False))
    else:
        print(
            f"verdict: {review['verdict']}  ({len(review['findings'])} findings, "
            f"{len(review['suppressed'])} suppressed, {len(accounts)} accounts)"
        )
        for s in review["scopes"]:
            print(f"  {s['system']:16} {s['status']:10} {s['population']:6} {s['reason']}")
        for f in review["findings"]:
            print(f"  {f['severity']:8} {f['id']}  {f['evidence']}")
        print(f"report: {args.out}")
    return 0 if review["verdict"] == "PASS" else 1


def _one(pair: tuple[list[Account], Scope]) -> tuple[list[Account], list[Scope]]:
    return pair[0], [pair[1]]


def _aws(
    args: argparse.Namespace, service: dict[str, dict[str, str]]
) -> tuple[list[Account], list[Scope]]:
    accounts, scope, meta = iam.collect(
        _aws_iam(args.aws_endpoint, args.aws_ca, args.timeout), timeout=args.timeout
    )
    for a in accounts:
        a.service = a.service or a.name in service.get("aws", {})
    scope.reason = (
        scope.reason
        or f"{meta['calls']} IAM calls; credential report of {meta.get('credential_report')}"
    )
    return accounts, [scope]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ops.access_review",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="collect, check, write and sign the review")
    r.add_argument("--roster", type=Path, required=True)
    r.add_argument("--keys", type=Path, help="the SSH key registry (fingerprint,staff_id)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--aws", action="store_true", help="review AWS IAM")
    r.add_argument("--aws-endpoint")
    r.add_argument("--aws-ca")
    r.add_argument("--inventory", type=Path, help="an Ansible inventory (YAML) of the hosts")
    r.add_argument("--host-group", default="datacenter")
    r.add_argument("--ssh-user")
    r.add_argument("--ssh-key", type=Path)
    r.add_argument("--known-hosts", type=Path)
    r.add_argument(
        "--db-via-host",
        metavar="HOST",
        help="read PostgreSQL roles and the application's accounts through this inventory "
        "host's probe (as its postgres superuser, over the local socket)",
    )
    r.add_argument("--db-dsn", help="PostgreSQL, for its roles (password: PGPASSWORD/pgpass)")
    r.add_argument("--app-dsn", help="the claim application's database, for its accounts")
    r.add_argument("--service-accounts", type=Path)
    r.add_argument("--exceptions", type=Path)
    r.add_argument("--previous", type=Path, help="the previous review's directory, for the diff")
    r.add_argument("--sign-key", type=Path, help="ssh-keygen key that signs SHA256SUMS")
    r.add_argument("--today", help="the review date (default: today)")
    r.add_argument("--dormant-days", type=int, default=90)
    r.add_argument("--timeout", type=float, default=30.0, help="per source, seconds")
    r.add_argument("--json", action="store_true")
    v = sub.add_parser("verify", help="check a written review against its signed manifest")
    v.add_argument("review", type=Path)
    v.add_argument("--allowed-signers", type=Path, required=True)
    v.add_argument("--signer", required=True)
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code not in (0, None) else 0
    if args.command == "verify":
        problems = report.verify_manifest(args.review, args.allowed_signers, args.signer)
        print("\n".join(problems) or f"{args.review}: every file and the signature verify")
        return 1 if problems else 0
    if args.db_via_host and not args.inventory:
        print("access_review: --db-via-host needs --inventory", file=sys.stderr)
        return 2
    if args.inventory and not (args.ssh_user and args.ssh_key and args.known_hosts):
        print(
            "access_review: --inventory needs --ssh-user, --ssh-key and --known-hosts",
            file=sys.stderr,
        )
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
