"""ops/access_review.py end to end on loopback: IAM in moto, the application's accounts in the
suite's PostgreSQL; the signed review verifies, an edited one does not."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import psycopg

from ops import access_review

ROSTER = (
    "staff_id,name,organisation,job,roles,start,end\n"
    "D020,高橋美咲,dc-operator,operator,aws:readonly app:admin,2023-10-01,\n"
    "D021,田中健太,dc-operator,operator,aws:readonly,2023-10-01,2026-06-30\n"
)


def test_the_review_runs_writes_signs_and_verifies(
    tmp_path: Path, moto_endpoint: str, postgres: dict[str, str], capsys: Any
) -> None:
    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    iam.create_user(UserName="d021", Tags=[{"Key": "StaffId", "Value": "D021"}])
    iam.create_access_key(UserName="d021")
    with psycopg.connect(postgres["owner"], autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE username = 'd020'")
        conn.execute(
            "INSERT INTO users (username, role, password_hash) VALUES ('d020', 'admin', 'x')"
        )
    (tmp_path / "roster.csv").write_bytes(ROSTER.encode("cp932"))
    key = tmp_path / "auditor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = (tmp_path / "auditor.pub").read_text().split()[:2]
    signers = tmp_path / "signers"
    signers.write_text(f'auditor namespaces="claims-dc-access-review" {kind} {blob}\n')
    owner = dict(kv.split("=", 1) for kv in postgres["owner"].split())
    os.environ["PGPASSWORD"] = owner["password"]
    dsn = f"host={owner['host']} dbname=claims user=claims_owner"
    try:
        code = access_review.main(
            [
                "run",
                "--roster",
                str(tmp_path / "roster.csv"),
                "--out",
                str(tmp_path / "review"),
                "--aws",
                "--aws-endpoint",
                moto_endpoint,
                "--app-dsn",
                dsn,
                "--db-dsn",
                dsn,
                "--sign-key",
                str(key),
                "--json",
            ]
        )
    finally:
        del os.environ["PGPASSWORD"]
    review = json.loads(capsys.readouterr().out)
    assert code == 1 and review["verdict"] == "FINDINGS"
    assert {s["system"]: s["status"] for s in review["scopes"]} == {
        "aws": "COMPLETE",
        "db": "COMPLETE",
        "app": "COMPLETE",
    }
    got = {(f["check"], f["account"]) for f in review["findings"]}
    assert ("ACR-002", "d021") in got  # the leaver's key is still active
    assert ("ACR-004", "d020") not in got  # admin in the app is what the roster approves
    assert review["roster"]["encoding"] == "cp932"
    verify = [
        "verify",
        str(tmp_path / "review"),
        "--allowed-signers",
        str(signers),
        "--signer",
        "auditor",
    ]
    assert access_review.main(verify) == 0
    html = tmp_path / "review" / "review.html"
    html.write_text(html.read_text().replace("FINDINGS", "PASS"))
    assert access_review.main(verify) == 1
    with psycopg.connect(postgres["owner"], autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE username = 'd020'")


def test_a_bad_roster_is_a_usage_error_naming_the_line(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "roster.csv").write_text(ROSTER + "??,x,nowhere,job,,2024-01-01,\n")
    assert (
        access_review.main(
            [
                "run",
                "--roster",
                str(tmp_path / "roster.csv"),
                "--out",
                str(tmp_path / "out"),
                "--aws",
            ]
        )
        == 2
    )
    assert "roster.csv:4: staff_id '??'" in capsys.readouterr().err


def test_an_unreachable_database_makes_the_review_incomplete(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "roster.csv").write_text(ROSTER)
    code = access_review.main(
        [
            "run",
            "--roster",
            str(tmp_path / "roster.csv"),
            "--out",
            str(tmp_path / "out"),
            "--db-dsn",
            f"host={tmp_path} dbname=claims user=nobody",
        ]
    )
    assert code == 3  # INCOMPLETE: never the code of PASS or FINDINGS
    assert "verdict: INCOMPLETE" in capsys.readouterr().out
