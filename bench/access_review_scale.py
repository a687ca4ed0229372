"""Access review at scale: IAM users in a moto server (a separate process on loopback) and
application accounts in a private PostgreSQL 15, reviewed against a roster of the same size.
Prints the review's time per layer and the AWS API calls per IAM user.

Hosts are not in this bench yet (50 hosts need the lab's sshd; see issue 8's note).

    python bench/access_review_scale.py                 # 5,000 IAM users, 2,000 app accounts
    python bench/access_review_scale.py --users 500 --app 200
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
import psycopg  # noqa: E402
from motoproc import moto_server  # noqa: E402

from claimapp.localpg import local_cluster  # noqa: E402
from ops.reviewlib import checks, database, iam  # noqa: E402
from ops.reviewlib.roster import parse_roster  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--app", type=int, default=2000)
    args = ap.parse_args()
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
        f"{meta['calls']} API calls = {meta['calls'] / max(1, scope.population):.2f} per user"
    )
    print(
        f"checks over {len(accounts)} IAM accounts: {check_s * 1000:.0f} ms, "
        f"{len(findings)} findings"
    )
    print(
        f"application: {app_scope.population} accounts read and checked in {app_s * 1000:.0f} ms, "
        f"{len(app_findings)} findings"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
