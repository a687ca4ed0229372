"""Golden report snapshots: one fixed review (every check's failing fixture through the checks,
an exception that suppresses, one that has expired, a previous review for the diff) written as
JSON, CSV and HTML, compared byte for byte with tests/unit/review/golden/. A change to what an
auditor reads shows up here as a diff to review; regenerate with CLAIMS_DC_UPDATE_GOLDEN=1."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from ops.reviewlib import checks, report
from ops.reviewlib.model import Finding, Scope
from tests.unit.review.test_review import FIXTURES, TODAY, ctx

GOLDEN = Path(__file__).parent / "golden"


def golden_review() -> dict[str, object]:
    findings = checks.review([bad for bad, _ in FIXTURES.values()], ctx())
    scopes = [Scope("aws", True, 9, "3 IAM calls"), Scope("host:db-1", True, 12),
              Scope("db", True, 2), Scope("app", False, 0, "db-1: connection refused")]  # fmt: skip
    suppressed = next(f for f in findings if f.check == "HOST-003")
    exceptions = [
        report.Exception_(suppressed.id, "break-glass, logged", "CISO 田中", dt.date(2027, 3, 31)),
        report.Exception_("ACR-003-0000000000", "old waiver", "CISO 田中", dt.date(2026, 1, 31)),
    ]
    gone = Finding("ACR-001", "high", "aws", "retired", "no roster match", "Disable it.", ())
    previous = report.build([gone, findings[0]], scopes, today=TODAY - dt.timedelta(days=90))
    review = report.build(findings, scopes, today=TODAY, exceptions=exceptions, previous=previous)
    review["roster"] = {"source": "roster.csv", "encoding": "utf-8-sig", "people": 3, "keys": 1}
    review["certificate_logins"] = [
        {"system": "host:db-1", "account": "d010", "principals": "d010"}
    ]
    return review


def test_the_report_files_match_the_golden_snapshots(tmp_path: Path) -> None:
    review = golden_review()
    assert review["verdict"] == "INCOMPLETE"
    report.write(review, tmp_path)
    for name in report.FILES:
        got = (tmp_path / name).read_bytes()
        if os.environ.get("CLAIMS_DC_UPDATE_GOLDEN"):
            GOLDEN.mkdir(exist_ok=True)
            (GOLDEN / name).write_bytes(got)
        assert got == (GOLDEN / name).read_bytes(), f"{name} differs from its golden snapshot"


def test_the_golden_html_carries_what_an_auditor_needs() -> None:
    page = (GOLDEN / "review.html").read_text()
    for label in report.LABELS.values():
        assert label in page
    assert "CISO 田中" in page and "2027-03-31" in page  # the exception that suppresses
    assert "ACR-003-0000000000" in page  # the expired one, reported
    assert "retired" in page  # resolved since the previous review
    assert "確認者 / Reviewer" in page and "承認者 / Approver" in page
