"""claims-dc-access-review (claims-dc review on the control node): every account on every
layer against the staff roster.

    claims-dc-access-review run --roster roster.csv --keys keys.csv --out review/ \\
        [--aws [--aws-endpoint URL --aws-ca FILE]] \\
        [--inventory inventory.yml --ssh-user U --ssh-key KEY --known-hosts FILE \\
         [--db-via-host db-1]] [--db-dsn DSN] [--app-dsn DSN] [--service-accounts services.toml] \\
        [--exceptions exceptions.csv] [--previous previous-review/] [--sign-key KEY]
    claims-dc-access-review verify review/ --allowed-signers FILE --signer NAME

Collectors run in parallel and are each bounded in time; a source that cannot be read
completely makes its scope INCOMPLETE, and the review with it, never PASS. Database passwords
come from PGPASSWORD or a pgpass file, never from a flag. The service-accounts file lists the
machine accounts and their documented purpose, per system:

    [host]
    fund = "the fund's SFTP delivery account"
    [db]
    claims_owner = "owns the schema; migrations only"
    [break-glass]
    claims-dc-break-glass = "emergency administration; sealed credentials, logged use"

A role of [break-glass] waits unused on purpose: it is not reported dormant (IAM-007).

Input files (roster, key registry, exceptions) are UTF-8 with a BOM or cp932; anything else
needs --encoding when it could be read both ways (ops/reviewlib/inputs.py). Each is at most
16 MiB, no line over 8,192 characters. Staff IDs are one person whatever their width, case or
spaces. A roster's `end` is the person's last working day: from the next day they are a leaver.

Deadlines: --timeout bounds each host's whole probe (connect, key exchange, login, run, read,
exit status) and each AWS call; --deadline bounds the whole review. Past either, the scope is
INCOMPLETE with the host and the stage named.

Writes review.json, review.csv (UTF-8 with BOM, cells safe from formula injection),
review.html and SHA256SUMS (signed with --sign-key).

Exit codes:
  0  PASS: every scope complete, no open finding
  1  FINDINGS: every scope complete, open findings (verify: the review does not verify)
  2  usage, or an input file refused (the file, line and value are named)
  3  INCOMPLETE: a scope could not be read completely (the report is written all the same)
  4  the review itself failed (named on stderr, never a traceback); nothing can be concluded
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ops.reviewlib import checks, database, hosts, iam, report
from ops.reviewlib.inputs import InputError, decode
from ops.reviewlib.model import Account, Scope
from ops.reviewlib.roster import RosterError, load, read_input
from ops.status import Publisher, StatusError

T = TypeVar("T")
PROG = "claims-dc-access-review"
PASS, FINDINGS, BAD_INPUT, INCOMPLETE, FAILED = 0, 1, 2, 3, 4
EXIT_OF = {"PASS": PASS, "FINDINGS": FINDINGS, "INCOMPLETE": INCOMPLETE}
SERVICE_SYSTEMS = ("aws", "host", "db", "app", "break-glass")


def load_service_accounts(path: Path) -> dict[str, dict[str, str]]:
    """The service-accounts TOML: [system] tables of account = "documented purpose"."""
    try:
        doc = tomllib.loads(decode(read_input(path), str(path), "utf-8").text)
    except InputError as e:
        raise RosterError(e.problems) from None
    except tomllib.TOMLDecodeError as e:
        raise RosterError([f"{path}: not TOML ({e})"]) from None
    problems = []
    for system, table in doc.items():
        if system not in SERVICE_SYSTEMS or not isinstance(table, dict):
            problems.append(f"{path}: [{system[:40]}] is not one of {', '.join(SERVICE_SYSTEMS)}")
            continue
        for name, purpose in table.items():
            if not isinstance(purpose, str) or not purpose.strip():
                problems.append(f"{path}: [{system}] {name[:40]} needs its purpose as text")
    if problems:
        raise RosterError(problems)
    return doc


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


def _aws_client(service: str, endpoint: str | None, ca: str | None, timeout: float,
                region: str = "us-east-1") -> Any:  # fmt: skip
    import boto3
    from botocore.config import Config

    # Every call bounded: a stalled endpoint makes the scope INCOMPLETE, not the review hang.
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 3})
    kwargs: dict[str, Any] = {"region_name": region, "config": config}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if ca:
        kwargs["verify"] = ca
    return boto3.client(service, **kwargs)


def run(args: argparse.Namespace) -> int:
    # Long on purpose: the review's order (inputs, collectors in parallel under one deadline,
    # checks, report, signature, publication), each failure mapped to its exit code in one place
    try:
        roster = load(args.roster, args.keys, args.encoding)
        exceptions = (
            report.parse_exceptions(
                read_input(args.exceptions), str(args.exceptions), args.encoding
            )
            if args.exceptions
            else []
        )
        service = load_service_accounts(args.service_accounts) if args.service_accounts else {}
        previous = _previous(args.previous) if args.previous else None
    except (InputError, report.ExceptionsError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return BAD_INPUT
    try:
        publisher = _publisher(args)
    except StatusError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return BAD_INPUT
    today = dt.date.fromisoformat(args.today) if args.today else dt.date.today()
    collectors: dict[str, Callable[[], tuple[list[Account], list[Scope]]]] = {}
    if args.aws:
        collectors["aws"] = lambda: _aws(args, service)
    if args.inventory:
        targets = _inventory_hosts(args.inventory, args.host_group)
        collectors["hosts"] = lambda: hosts.collect(
            targets,
            user=args.ssh_user,
            key_file=args.ssh_key,
            known_hosts=args.known_hosts,
            service=service,
            database_host=args.db_via_host,
            # Inside the review's deadline, so a late host is named with its stage.
            timeout=min(args.timeout, args.deadline * 0.9),
        )
    if args.db_dsn:
        collectors["db"] = lambda: _one(
            database.collect_db_roles(args.db_dsn, service.get("db", {}))
        )
    if args.app_dsn:
        collectors["app"] = lambda: _one(
            database.collect_app_accounts(args.app_dsn, service.get("app", {}))
        )
    accounts: list[Account] = []
    scopes: list[Scope] = []
    for source, result in run_within(collectors, args.deadline).items():
        if isinstance(result, BaseException):
            raise result
        if result is None:
            reason = f"{source}: not finished within the review's {args.deadline:g} s deadline"
            scopes.append(Scope(source, False, 0, reason))
            continue
        accounts += result[0]
        scopes += result[1]
    if not scopes:
        print(
            f"{PROG}: nothing to review: give --aws, --inventory, --db-dsn or --app-dsn",
            file=sys.stderr,
        )
        return BAD_INPUT
    findings = checks.review(accounts, checks.Context(roster, today, args.dormant_days))
    review = report.build(findings, scopes, today=today, exceptions=exceptions, previous=previous)
    review["roster"] = {
        "source": roster.source,
        "encoding": roster.encoding,
        "people": len(roster.people),
        "keys": len(roster.keys),
    }
    review["certificate_logins"] = report.certificate_logins(accounts)
    try:
        written = report.write(review, args.out, args.sign_key)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"{PROG}: the review could not be written to {args.out}: {e}", file=sys.stderr)
        return FAILED
    if publisher is not None:
        review["status"] = _publish(publisher, args, review, len(accounts))
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
    return EXIT_OF[review["verdict"]]


def _publisher(args: argparse.Namespace) -> Publisher | None:
    given = [args.status_bucket, args.status_stack, args.status_writer, args.status_host]
    if not any(given):
        return None
    if not all(given):
        raise StatusError("--status-bucket, --status-stack, --status-writer and --status-host "
                          "go together")  # fmt: skip
    return Publisher(*given)


def _publish(publisher: Publisher, args: argparse.Namespace, review: dict[str, Any],
             accounts: int) -> str:  # fmt: skip
    """The verdict and counts for the fleet board: the key, or why it was not published."""
    body = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "verdict": review["verdict"],
        "findings": len(review["findings"]),
        "suppressed": len(review["suppressed"]),
        "accounts": accounts,
        "incomplete": sum(1 for s in review["scopes"] if s["status"] != "COMPLETE"),
    }
    s3 = _aws_client("s3", args.aws_endpoint, args.aws_ca, args.timeout, args.aws_region)
    try:
        return publisher.publish(s3, "review", body)
    except StatusError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return f"not published: {e}"


def run_within(
    jobs: dict[str, Callable[[], T]], seconds: float
) -> dict[str, T | BaseException | None]:
    """Each job in its own daemon thread, all within `seconds`: a job's result, the exception
    it raised, or None if it had not finished. A late job is abandoned, and being a daemon it
    cannot hold the process open (a pool's workers would: they are joined at exit)."""
    results: dict[str, T | BaseException | None] = dict.fromkeys(jobs)
    done: dict[str, threading.Event] = {name: threading.Event() for name in jobs}

    def work(name: str, job: Callable[[], T]) -> None:
        try:
            results[name] = job()
        except BaseException as e:  # handed to the caller, who names it
            results[name] = e
        finally:
            done[name].set()

    for name, job in jobs.items():
        threading.Thread(target=work, args=(name, job), daemon=True, name=name).start()
    end = time.monotonic() + seconds
    for name in jobs:
        done[name].wait(max(0.0, end - time.monotonic()))
    return {name: results[name] if done[name].is_set() else None for name in jobs}


def _previous(path: Path) -> dict[str, Any]:
    source = path / "review.json"
    try:
        doc = json.loads(decode(read_input(source), str(source), "utf-8").text)
    except json.JSONDecodeError as e:
        raise InputError([f"{source}: not JSON ({e.msg}, line {e.lineno})"]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise InputError([f"{source}: not a review (no findings list)"])
    return doc


def _one(pair: tuple[list[Account], Scope]) -> tuple[list[Account], list[Scope]]:
    return pair[0], [pair[1]]


def _aws(
    args: argparse.Namespace, service: dict[str, dict[str, str]]
) -> tuple[list[Account], list[Scope]]:
    accounts, scope, meta = iam.collect(
        _aws_client("iam", args.aws_endpoint, args.aws_ca, args.timeout), timeout=args.timeout
    )
    break_glass = service.get("break-glass", {})
    for a in accounts:
        a.service = a.service or a.name in service.get("aws", {})
        if a.attributes.get("kind") == "role":
            reason = break_glass.get(a.name.removeprefix("role/"))
            if reason:
                a.attributes["break_glass"] = reason
    scope.reason = (
        scope.reason
        or f"{meta['calls']} IAM calls; credential report of {meta.get('credential_report')}"
    )
    return accounts, [scope]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="collect, check, write and sign the review")
    r.add_argument("--roster", type=Path, required=True)
    r.add_argument("--keys", type=Path, help="the SSH key registry (fingerprint,staff_id)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--aws", action="store_true", help="review AWS IAM")
    r.add_argument("--aws-endpoint", help="the AWS API's URL (default: AWS's own)")
    r.add_argument("--aws-ca", help="the CA bundle the endpoint's certificate comes from")
    r.add_argument("--aws-region", default="ap-northeast-1",
                   help="for the status bucket (default %(default)s)")  # fmt: skip
    st = r.add_argument_group(
        "publishing for the fleet board",
        "all four, or none: the verdict and counts go to s3://BUCKET/status/WRITER/HOST/"
        "review.json (ops/status.py); a failed publication is reported, the review stands",
    )
    st.add_argument("--status-bucket", metavar="BUCKET")
    st.add_argument("--status-stack", metavar="STACK")
    st.add_argument("--status-writer", metavar="ROLE", help="this host's role")
    st.add_argument("--status-host", metavar="HOST", help="this host's name")
    r.add_argument("-i", "--inventory", type=Path,
                   help="an Ansible inventory (YAML) of the hosts")  # fmt: skip
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
    r.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds for each host's whole probe and each AWS call (default 30)",
    )
    r.add_argument(
        "--deadline",
        type=float,
        default=900.0,
        help="seconds for the whole review (default 900); past it, what is "
        "unfinished is INCOMPLETE",
    )
    r.add_argument(
        "--encoding",
        choices=("utf-8", "cp932"),
        help="of the roster, registry and exceptions, when they have no BOM",
    )
    r.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    v = sub.add_parser("verify", help="check a written review against its signed manifest")
    v.add_argument("review", type=Path)
    v.add_argument("--allowed-signers", type=Path, required=True)
    v.add_argument("--signer", required=True)
    v.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return BAD_INPUT if e.code not in (0, None) else 0
    try:
        return _command(args)
    except Exception as e:  # named, never a traceback, and never an exit a verdict could have
        print(f"{PROG}: the review failed: {type(e).__name__}: {str(e)[:300]}",
              file=sys.stderr)  # fmt: skip
        return FAILED


def _command(args: argparse.Namespace) -> int:
    if args.command == "verify":
        problems = report.verify_manifest(args.review, args.allowed_signers, args.signer)
        if args.json:
            print(json.dumps({"review": str(args.review), "problems": problems}))
        else:
            print("\n".join(problems) or f"{args.review}: every file and the signature verify")
        return FINDINGS if problems else PASS
    if args.db_via_host and not args.inventory:
        print(f"{PROG}: --db-via-host needs --inventory", file=sys.stderr)
        return BAD_INPUT
    if not (0 < args.timeout <= 3600 and 0 < args.deadline <= 86400):
        print(f"{PROG}: --timeout must be 0-3600 s and --deadline 0-86400 s",
              file=sys.stderr)  # fmt: skip
        return BAD_INPUT
    if args.inventory and not (args.ssh_user and args.ssh_key and args.known_hosts):
        print(
            f"{PROG}: --inventory needs --ssh-user, --ssh-key and --known-hosts",
            file=sys.stderr,
        )
        return BAD_INPUT
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
