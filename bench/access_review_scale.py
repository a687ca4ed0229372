"""Access review at scale: IAM users in a moto server (a separate process on loopback) and
application accounts in a private PostgreSQL 15, reviewed against a roster of the same size.
Prints the review's time per layer and the AWS API calls per IAM user.

Hosts: with the lab up and access_review.yml run once (so the bastion has the review and its
key, and the hosts its probe), the host collector runs on the bastion, as the review does,
against --hosts targets. The lab has four data-center hosts, so the targets reuse their sshd:
each target is one more SSH session (key exchange, login, sudo, probe) to one of them. With the
lab down (or --loopback), --hosts SSH servers on loopback (paramiko's server side, in this
process: tests/support/sshstub.py) each answer with the probe's output from this machine, and
the collector reads them all: the same key exchange, login and transfer per host, no sudo.

The last line is the review's figure: the three layers one after the other (the review runs
them in parallel, so its wall time is at most this).

    python bench/access_review_scale.py                 # 5,000 IAM users, 50 hosts, 2,000 app
    python bench/access_review_scale.py --users 500 --app 200 --hosts 20 --loopback
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
import psycopg  # noqa: E402
from motoproc import moto_server  # noqa: E402

from ops.reviewlib import checks, database, iam  # noqa: E402
from ops.reviewlib.roster import parse_roster  # noqa: E402
from tests.support.localpg import local_cluster  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--app", type=int, default=2000)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--loopback", action="store_true", help="loopback hosts even if the lab is up")
    args = ap.parse_args()
    hosts_s, hosts_line = (None, "") if args.loopback else bench_hosts(args.hosts)
    if hosts_s is None:
        hosts_s, hosts_line = bench_loopback_hosts(args.hosts)
    rows = ["staff_id,name,organisation,job,roles,start,end"]
    rows += [
        f"D{i:05d},職員{i},dc-operator,operator,aws:readonly app:caseworker,2024-04-01,"
        for i in range(max(args.users, args.app))
    ]
    roster = parse_roster("\n".join(rows).encode(), "roster.csv")
    with moto_server() as endpoint:
        client = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
        t = time.perf_counter()
        for i in range(args.users):
            client.create_user(
                UserName=f"d{i:05d}", Tags=[{"Key": "StaffId", "Value": f"D{i:05d}"}]
            )
            if i % 2 == 0:
                client.create_access_key(UserName=f"d{i:05d}")
        print(f"seeded {args.users} IAM users in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        t = time.perf_counter()
        accounts, scope, meta = iam.collect(client, timeout=600)
        iam_s = time.perf_counter() - t
        t = time.perf_counter()
        findings = checks.review(accounts, checks.Context(roster, dt.date.today()))
        check_s = time.perf_counter() - t
    with local_cluster() as dsns:
        copy = "COPY users (username, role, password_hash) FROM STDIN"
        with (
            psycopg.connect(dsns["owner"], autocommit=True) as conn,
            conn.cursor().copy(copy) as cp,
        ):
            for i in range(args.app):
                cp.write_row((f"d{i:05d}", "caseworker", "x"))
        t = time.perf_counter()
        apps, app_scope = database.collect_app_accounts(dsns["owner"], {})
        app_findings = checks.review(apps, checks.Context(roster, dt.date.today()))
        app_s = time.perf_counter() - t
    print(
        f"IAM: {scope.population} users ({scope.status}) read in {iam_s:.1f}s with "
        f"{meta['calls']} API calls = {meta['calls'] / max(1, scope.population):.4f} per user"
    )
    print(
        f"checks over {len(accounts)} IAM accounts: {check_s * 1000:.0f} ms, "
        f"{len(findings)} findings"
    )
    print(
        f"application: {app_scope.population} accounts read and checked in {app_s * 1000:.0f} ms, "
        f"{len(app_findings)} findings"
    )
    print(hosts_line)
    total = iam_s + check_s + app_s + hosts_s
    print(
        f"review of {args.users} IAM users + {args.hosts} hosts + {args.app} app accounts: "
        f"{total:.1f}s (layers one after another; target <= 30 s)"
    )
    return 0


def bench_loopback_hosts(n: int) -> tuple[float, str]:
    """n SSH servers on loopback, each answering with this machine's probe output."""
    import contextlib
    import tempfile

    from ops.reviewlib import hosts, probe
    from tests.support.sshstub import misbehaving_host

    body = subprocess.run([sys.executable, probe.__file__], capture_output=True, check=True,
                          timeout=120).stdout  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        stubs = []
        for i in range(n):
            d = Path(tmp) / f"h{i}"
            d.mkdir()
            stubs.append(stack.enter_context(misbehaving_host(d, "answer", body)))
        known = Path(tmp) / "known_hosts"
        known.write_text("".join(s.known_hosts.read_text() for s in stubs))
        targets = [hosts.HostTarget(f"host-{i:03d}", "127.0.0.1", s.port)
                   for i, s in enumerate(stubs)]  # fmt: skip
        t = time.perf_counter()
        accounts, scopes = hosts.collect(targets, user="claims-dc-review",
                                         key_file=stubs[0].key_file, known_hosts=known,
                                         service={}, timeout=60)  # fmt: skip
        seconds = time.perf_counter() - t
    read = sum(s.population > 0 for s in scopes)
    return seconds, (
        f"hosts: {len(scopes)} loopback SSH servers, {read} read, {len(accounts)} accounts "
        f"in {seconds:.1f}s (16 in parallel; servers and collector share this process)"
    )


HOST_BENCH = """
import json, sys, time
from pathlib import Path
from ops.reviewlib import hosts
n, addresses = int(sys.argv[1]), sys.argv[2:]
targets = [hosts.HostTarget(f"host-{i:03d}", addresses[i % len(addresses)]) for i in range(n)]
t = time.perf_counter()
accounts, scopes = hosts.collect(
    targets, user="claims-dc-review", key_file=Path("/var/lib/claims-dc-review/keys/probe_ed25519"),
    known_hosts=Path("/etc/claims-dc/access-review/known_hosts"), service={}, timeout=60)
print(json.dumps({"seconds": time.perf_counter() - t, "accounts": len(accounts),
                  "complete": sum(s.complete for s in scopes), "scopes": len(scopes),
                  "first_gap": next((s.reason for s in scopes if not s.complete), "")}))
"""


def bench_hosts(n: int) -> tuple[float | None, str]:
    """The host collector on the lab's bastion against n targets (the lab's sshd, reused)."""
    from infra.config import load_stack
    from lab import podman as pm
    from lab.plan import build_plan

    plan = build_plan(load_stack("lab", REPO))
    bastion = plan.first("bastion").container
    python = "/opt/claims-dc-access-review/current/bin/python"
    exists = subprocess.run(["podman", "container", "exists", bastion], check=False)
    if (
        exists.returncode != 0
        or pm.exec_in(bastion, ["test", "-x", python], check=False).returncode
    ):
        return None, "lab not up: hosts on loopback"
    addresses = [str(h.address) for h in plan.hosts if h.role in ("app", "db", "intake", "bastion")]
    out = pm.exec_in(bastion, ["runuser", "-u", "claims-dc-review", "--", python, "-c",
                               HOST_BENCH, str(n), *addresses], timeout=900)  # fmt: skip
    r = json.loads(out.stdout)
    return r["seconds"], (
        f"hosts: {r['scopes']} targets ({len(addresses)} lab hosts' sshd reused), "
        f"{r['complete']} complete, {r['accounts']} accounts read from the bastion in "
        f"{r['seconds']:.1f}s (16 in parallel)"
        + (f"; first gap: {r['first_gap'][:200]}" if r["first_gap"] else "")
    )


if __name__ == "__main__":
    sys.exit(main())
