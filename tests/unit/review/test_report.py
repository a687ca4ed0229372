"""The review's verdict, exceptions, diff and files; the signed manifest catches an edit."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from ops.reviewlib import report
from ops.reviewlib.model import Finding, Scope

TODAY = dt.date(2026, 11, 26)


def finding(account: str, check: str = "IAM-003") -> Finding:
    return Finding(
        check,
        "high",
        "aws",
        account,
        f"{account}: console password without MFA",
        "Enable MFA.",
        ("CIS AWS Foundations Benchmark v3.0.0 1.10",),
    )


def test_pass_only_when_everything_was_read_and_nothing_is_open() -> None:
    complete = [Scope("aws", True, 3)]
    assert report.build([], complete, today=TODAY)["verdict"] == "PASS"
    assert report.build([finding("d010")], complete, today=TODAY)["verdict"] == "FINDINGS"
    incomplete = [Scope("aws", True, 3), Scope("host:db-1", False, 0, "unreachable")]
    assert report.build([], incomplete, today=TODAY)["verdict"] == "INCOMPLETE"


def test_an_exception_suppresses_until_its_expiry_and_is_reported_after() -> None:
    f = finding("d010")
    register = f"finding_id,reason,approver,expiry\n{f.id},break-glass user,D001,2026-12-31\n"
    live = report.build(
        [f],
        [Scope("aws", True, 1)],
        today=TODAY,
        exceptions=report.parse_exceptions(register.encode(), "exc.csv"),
    )
    assert live["verdict"] == "PASS" and live["suppressed"][0]["exception"]["approver"] == "D001"
    later = report.build(
        [f],
        [Scope("aws", True, 1)],
        today=dt.date(2027, 1, 1),
        exceptions=report.parse_exceptions(register.encode(), "exc.csv"),
    )
    assert later["verdict"] == "FINDINGS" and later["expired_exceptions"][0]["finding_id"] == f.id
    with pytest.raises(report.ExceptionsError, match=r"exc.csv:1: expiry 'soon'"):
        report.parse_exceptions(f"{f.id},x,D001,soon\n".encode(), "exc.csv")


def test_the_diff_names_new_resolved_and_unchanged_findings() -> None:
    scopes = [Scope("aws", True, 3)]
    before = report.build([finding("a"), finding("b")], scopes, today=TODAY)
    now = report.build([finding("b"), finding("c")], scopes, today=TODAY, previous=before)
    ids = {x: finding(x).id for x in "abc"}
    assert now["diff"]["previous"] == TODAY.isoformat()
    for change, account in (("new", "c"), ("resolved", "a"), ("unchanged", "b")):
        assert now["diff"][change] == [
            {"id": ids[account], "check": "IAM-003", "system": "aws", "account": account}
        ]


def test_the_files_csv_with_bom_html_escaped_and_a_signed_manifest(tmp_path: Path) -> None:
    key = tmp_path / "signer"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "auditor", "-f", str(key)], check=True
    )
    signers = tmp_path / "allowed_signers"
    kind, blob = (tmp_path / "signer.pub").read_text().split()[:2]
    signers.write_text(f'auditor namespaces="{report.NAMESPACE}" {kind} {blob}\n')
    review = report.build([finding("<script>")], [Scope("aws", True, 1)], today=TODAY)
    out = tmp_path / "review"
    report.write(review, out, signing_key=key)
    assert (out / "review.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert "<script>" not in (out / "review.html").read_text()
    assert "アクセス権限レビュー" in (out / "review.html").read_text()
    assert json.loads((out / "review.json").read_text())["verdict"] == "FINDINGS"
    assert report.verify_manifest(out, signers, "auditor") == []
    edited = (out / "review.csv").read_bytes().replace(b"FINDINGS", b"PASS") + b"\n"
    (out / "review.csv").write_bytes(edited)
    assert report.verify_manifest(out, signers, "auditor") == [
        "review.csv: changed since it was signed"
    ]
