"""The fleet board: what environments publish (ops/status.py), read through each tenant's
reader role from a real S3/STS/IAM API (moto on loopback), judged by the colour rules, and
written as HTML, CSV with BOM and JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import load_file
from lab.browser import print_report
from lab.fleet import Ages, make_fleet, simulate
from ops.awsapi import Endpoint
from ops.fleet import board
from ops.fleet.__main__ import main
from ops.status import Publisher, StatusError, parse
from tests.support.motoserver import REGION, moto_server

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    with moto_server() as url:
        yield Endpoint(url, REGION, None)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_fleet(tmp_path_factory.mktemp("fleet"), 10)


def _row(rows: list[board.TenantStatus], path: Path) -> board.TenantStatus:
    return next(r for r in rows if r.stack_file == str(path))


def _rules(row: board.TenantStatus) -> set[str]:
    return {f.rule for f in row.findings}


CASES: list[tuple[Ages, str, set[str]]] = [
    (Ages(), "green", set()),
    (Ages(backup_hours=27), "red", {"BACKUP-OLD"}),
    (Ages(drill_days=36), "amber", {"DRILL-OLD"}),
    (Ages(review_days=91), "amber", {"REVIEW-OLD"}),
    (Ages(review_verdict="INCOMPLETE"), "amber", {"REVIEW-INCOMPLETE"}),
    (Ages(rotated_days=400), "amber", {"SECRET-OVERDUE"}),
    (Ages(cert_days_left=20), "amber", {"CERT-EXPIRING"}),
    (Ages(cert_days_left=-1), "red", {"CERT-EXPIRED"}),
    (Ages(backup_hours=None, drill_days=None, review_days=None, rotated_days=None), "red",
     {"BACKUP-OLD", "DRILL-OLD", "REVIEW-OLD", "SECRET-OVERDUE"}),
]  # fmt: skip


def test_each_colour_rule_fires_on_its_case_and_green_needs_none(
    endpoint: Endpoint, fleet: list[Path]
) -> None:
    for path, (ages, _, _) in zip(fleet, CASES, strict=False):
        simulate(endpoint, load_file(path), ages, now=NOW)
    rows = board.board(fleet[: len(CASES)], board.Reader(endpoint), now=NOW)
    for path, (_, colour, rules) in zip(fleet, CASES, strict=False):
        row = _row(rows, path)
        assert (row.colour, _rules(row)) == (colour, rules), row.findings
    green = _row(rows, fleet[0])
    assert green.last_backup and green.last_drill and green.last_review
    assert green.review_verdict == "PASS" and green.secrets == 4


def test_a_tenant_that_cannot_be_read_is_red_and_named(
    endpoint: Endpoint, fleet: list[Path], tmp_path: Path
) -> None:
    never_deployed = fleet[9]  # no bucket, no role: never simulated
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text("config: {aws:region: us-east-1}\n")
    rows = board.board([never_deployed, broken], board.Reader(endpoint), now=NOW)
    for row in rows:
        assert row.colour == "red" and _rules(row) == {"STATUS-UNREADABLE"}, row.findings
    assert "NoSuchBucket" in rows[0].findings[0].detail
    assert "aws:region" in rows[1].findings[0].detail


def test_a_tampered_status_is_not_believed(endpoint: Endpoint, fleet: list[Path]) -> None:
    config = load_file(fleet[8])
    bucket = simulate(endpoint, config, Ages(), now=NOW)
    s3 = endpoint.client("s3")
    # db's drill rewritten by hand, claiming to be app-1's: the key and the content disagree.
    doc = json.loads(s3.get_object(Bucket=bucket, Key="status/db/db-1/drill.json")["Body"].read())
    doc["host"] = "app-1"
    s3.put_object(Bucket=bucket, Key="status/db/db-1/drill.json", Body=json.dumps(doc).encode())
    row = board.board([fleet[8]], board.Reader(endpoint), now=NOW)[0]
    assert row.colour == "red"
    assert any(f.rule == "STATUS-UNREADABLE" and "drill.json" in f.detail and "host" in f.detail
               for f in row.findings), row.findings  # fmt: skip
    # ... and the drill it claimed no longer counts.
    assert "DRILL-OLD" in _rules(row)


@pytest.mark.parametrize(
    ("key", "data", "says"),
    [
        ("status/db/db-1/backup.json", b"\xff\xfe", "not UTF-8"),
        ("status/db/db-1/backup.json", b"[1]", "not a JSON object"),
        ("status/db/db-1/backup.json", b"{", "not JSON"),
        ("status/db/db-1/secrets.json", b"{}", "not a status key"),
        ("status/db/db-1/backup.json", b"x" * 70_000, "over"),
    ],
)
def test_a_document_that_does_not_parse_says_why(key: str, data: bytes, says: str) -> None:
    with pytest.raises(StatusError, match=says):
        parse(key, data, stack="s", now=NOW)


def test_a_document_is_believed_only_where_it_belongs() -> None:
    good = Publisher("b", "lab", "db", "db-1")
    data = good.document("backup", {"ok": True, "time": NOW.isoformat()}, now=NOW)
    assert parse("status/db/db-1/backup.json", data, stack="lab", now=NOW).body["ok"] is True
    for key, stack, says in (
        ("status/db/db-2/backup.json", "lab", "host"),
        ("status/app/db-1/backup.json", "lab", "writer"),
        ("status/db/db-1/verify.json", "lab", "kind"),
        ("status/db/db-1/backup.json", "other", "stack"),
    ):
        with pytest.raises(StatusError, match=says):
            parse(key, data, stack=stack, now=NOW)
    future = good.document("backup", {"ok": True, "time": NOW.isoformat()},
                           now=NOW + dt.timedelta(hours=1))  # fmt: skip
    with pytest.raises(StatusError, match="later than now"):
        parse("status/db/db-1/backup.json", future, stack="lab", now=NOW)
    mistyped = good.document("backup", {"ok": "yes", "time": NOW.isoformat()}, now=NOW)
    with pytest.raises(StatusError, match="ok"):
        parse("status/db/db-1/backup.json", mistyped, stack="lab", now=NOW)


def test_the_board_prints_csv_with_bom_html_and_json(
    endpoint: Endpoint, fleet: list[Path], capsys: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "two"
    directory.mkdir()
    for path in fleet[:2]:  # green and red (from the colour test's run, or made here)
        simulate(endpoint, load_file(path), CASES[fleet.index(path)][0])
        (directory / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "board"
    code = main(["status", "--fleet", str(directory), "--out", str(out),
                 "--aws-endpoint", endpoint.url or "", "--json"])  # fmt: skip
    assert code == 1  # one tenant is red
    printed = json.loads(capsys.readouterr().out)
    assert sorted(t["colour"] for t in printed["tenants"]) == ["green", "red"]
    assert (out / "board.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    csv_text = (out / "board.csv").read_bytes().decode("utf-8-sig")
    assert "団体コード" in csv_text and "BACKUP-OLD" in csv_text
    assert " JST" in csv_text  # times for people are Tokyo's
    html = (out / "board.html").read_text(encoding="utf-8")
    assert "フリート運用状況" in html and "最終バックアップが26時間より前" in html
    assert json.loads((out / "board.json").read_text(encoding="utf-8"))["rules"]
    # In Chromium: the rows and rules are shown as written (nothing escaped twice), and it
    # prints.
    printed = print_report(out / "board.html")
    assert not printed.escaped, printed.escaped
    assert "赤 異常" in printed.text and "緑 正常" in printed.text
    assert "STATUS-UNREADABLE" in printed.text
    assert printed.pdf.startswith(b"%PDF") and len(printed.pdf) > 10_000


def test_no_stack_file_is_bad_input(tmp_path: Path, capsys: Any) -> None:
    assert main(["status", "--fleet", str(tmp_path)]) == 2
    assert "no Pulumi.<stack>.yaml" in capsys.readouterr().err


def test_a_spreadsheet_formula_in_a_name_is_not_run() -> None:
    row = board.TenantStatus("f", "s", code="1", name='=HYPERLINK("x")')
    assert "'=HYPERLINK" in board.to_csv([row]).decode("utf-8-sig")


@pytest.mark.parametrize(
    ("command", "target", "says"),
    [
        ("status", "ops.fleet.board.board", "the board could not be made: RuntimeError"),
        ("run", "ops.fleet.runner.run_fleet", "the run failed: RuntimeError"),
        ("check", "infra.check.fleet_check", "the check could not run: RuntimeError"),
    ],
)
def test_an_unexpected_failure_is_named_with_exit_4(
    command: str,
    target: str,
    says: str,
    fleet: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("surprise")

    monkeypatch.setattr(target, boom)
    directory = fleet[0].parent
    argv = {"status": ["status", "--fleet", str(directory)],
            "run": ["run", "site.yml", "--fleet", str(directory), "--inventories",
                    str(tmp_path), "--out", str(tmp_path)],
            "check": ["check", "--fleet", str(directory)]}[command]  # fmt: skip
    assert main(argv) == 4
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
