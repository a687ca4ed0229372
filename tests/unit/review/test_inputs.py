"""Every input the review reads is hostile until checked: encodings, sizes, staff IDs in every
spelling, report cells a spreadsheet would run, and exit codes a crash cannot fake."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from ops import access_review
from ops.reviewlib import checks, hosts, iam, report
from ops.reviewlib.inputs import MAX_LINE_CHARS, InputError, decode, normalise_staff_id
from ops.reviewlib.model import Finding
from ops.reviewlib.roster import RosterError, parse_keys, parse_roster
from tests.support.sshstub import misbehaving_host

HEADER = "staff_id,name,organisation,job,roles,start,end\n"
TODAY = dt.date(2026, 12, 1)
FP = "SHA256:" + "k" * 43


# --- encodings -----------------------------------------------------------------------------


def test_half_width_katakana_in_cp932_is_never_read_as_utf8() -> None:
    # ﾂｱ in cp932 is C2 B1, which is also valid UTF-8 (U+00B1): either reading is possible.
    data = (HEADER + "S001,ﾂｱ,city-welfare,caseworker,app:caseworker,2024-04-01,\n").encode("cp932")
    with pytest.raises(RosterError, match=r"roster.csv: ambiguous.*BOM.*--encoding"):
        parse_roster(data, "roster.csv")
    assert parse_roster(data, "roster.csv", "cp932").people["S001"].name == "ﾂｱ"


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (lambda t: t.encode("utf-8-sig"), "utf-8-sig"),
        (lambda t: t.encode("utf-8"), "utf-8"),  # kanji: three-byte UTF-8 only
        (lambda t: t.encode("cp932"), "cp932"),
    ],
)
def test_the_usual_encodings_decide_themselves(encoded: Any, encoding: str) -> None:
    text = HEADER + "S001,山田太郎,city-welfare,caseworker,app:caseworker,2024-04-01,\n"
    roster = parse_roster(encoded(text), "roster.csv")
    assert roster.encoding == encoding and roster.people["S001"].name == "山田太郎"


def test_bytes_that_are_neither_and_a_bom_that_contradicts_are_refused() -> None:
    with pytest.raises(InputError, match="neither UTF-8 nor cp932"):
        decode(b"S001,\x81", "x.csv")
    with pytest.raises(InputError, match="BOM but --encoding cp932"):
        decode(b"\xef\xbb\xbfS001", "x.csv", "cp932")


@pytest.mark.parametrize("door", ["roster", "registry", "exceptions"])
def test_a_megabyte_line_is_a_named_refusal_not_a_crash(
    tmp_path: Path, door: str, capsys: Any
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + "S001,山田,city-welfare,caseworker,app:caseworker,2024-04-01,\n",
                      encoding="utf-8-sig")  # fmt: skip
    huge = "x" * 1_000_000
    files = {"roster": roster, "registry": tmp_path / "keys.csv",
             "exceptions": tmp_path / "exc.csv"}  # fmt: skip
    if door == "roster":
        roster.write_text(HEADER + huge + "\n")
    else:
        files[door].write_text(huge + "\n")
    args = ["run", "--roster", str(roster), "--out", str(tmp_path / "out"), "--db-dsn", "x"]
    if door == "registry":
        args += ["--keys", str(files["registry"])]
    if door == "exceptions":
        args += ["--exceptions", str(files["exceptions"])]
    assert access_review.main(args) == access_review.BAD_INPUT
    err = capsys.readouterr().err
    assert f"{files[door]}:" in err and f"over {MAX_LINE_CHARS} characters" in err
    assert "Traceback" not in err


def test_an_exceptions_file_saved_in_cp932_is_read() -> None:
    f = Finding("ACR-002", "high", "aws", "d011", "e", "fix", ("r",), "D011")
    register = (
        f"finding_id,reason,approver,expiry\n{f.id},引継ぎ中,情報セキュリティ責任者,2027-01-31\n"
    )
    (x,) = report.parse_exceptions(register.encode("cp932"), "exc.csv")
    assert x.reason == "引継ぎ中" and x.approver == "情報セキュリティ責任者"


# --- one person, whatever door they come through -------------------------------------------


def test_a_staff_id_is_one_person_in_any_width_case_or_spacing(moto_endpoint: str) -> None:
    spellings = [
        "S001",
        "s001",
        " S001 ",
        "\uff33\uff10\uff10\uff11",
        "\uff53\uff10\uff10\uff11\u3000",
        "S001\t",
    ]
    assert {normalise_staff_id(s) for s in spellings} == {"S001"}
    roster = parse_roster((HEADER + "\uff33\uff10\uff10\uff11 ,山田太郎,dc-operator,operator,"
                           "aws:readonly host:operator,2024-04-01,\n").encode("utf-8-sig"),
                          "roster.csv")  # fmt: skip
    roster.keys = parse_keys(f"fingerprint,staff_id\n{FP},s001\n".encode(), "keys.csv", roster)
    assert roster.keys == {FP: "S001"}
    ctx = checks.Context(roster, TODAY)
    # The host account holding S001's key, named otherwise: S001's, not shared, not orphaned.
    probed = {"users": [{"name": "yamada", "uid": 1001, "gid": 1001, "shell": "/bin/bash",
                         "home": "/home/yamada"}],
              "groups": [{"name": "operator", "gid": 1001, "members": []}], "nopasswd": [],
              "keys": {"yamada": [{"fingerprint": FP, "file": "/home/yamada/.ssh/ak",
                                   "comment": ""}]},
              "lastlog": {}, "shadow": {}}  # fmt: skip
    host_accounts = hosts.parse("app-1", probed, {})
    # IAM: the tag with a full-width space, another user named in full width.
    client = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_user(UserName="yamada-iam", Tags=[{"Key": "StaffId", "Value": "s001\u3000"}])
    client.create_access_key(UserName="yamada-iam")
    aws_accounts, scope, _ = iam.collect(client, timeout=10)
    assert scope.complete
    mine = [a for a in aws_accounts if a.name == "yamada-iam"]
    found = checks.review(host_accounts + mine, ctx)
    wrong = [f for f in found if f.check in ("ACR-001", "ACR-005", "ACR-006")]
    assert wrong == [], wrong
    assert {a.staff_id for a in mine} == {"S001"}
    # ...and the leaver check still fires on the normalised ID.
    left = parse_roster((HEADER + "S001,山田太郎,dc-operator,operator,aws:readonly,2024-04-01,"
                         "2026-11-30\n").encode("utf-8-sig"), "roster.csv")  # fmt: skip
    found = checks.review(mine, checks.Context(left, TODAY))
    assert any(f.check == "ACR-002" and f.account == "yamada-iam" for f in found)


def test_the_end_date_is_the_last_working_day() -> None:
    roster = parse_roster((HEADER + "S001,山田,city-welfare,caseworker,app:caseworker,"
                           "2024-04-01,2026-11-30\n").encode("utf-8-sig"), "r.csv")  # fmt: skip
    person = roster.people["S001"]
    assert person.current(dt.date(2026, 11, 30)) and not person.current(dt.date(2026, 12, 1))


# --- reports safe to open -------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_no_csv_cell_starts_a_formula(prefix: str) -> None:
    evil = f'{prefix}HYPERLINK("http://x.invalid","click")'
    f = Finding("ACR-001", "high", "aws", evil, evil, evil, (evil,), None)
    review = report.build([f], [], today=TODAY, exceptions=[])
    rows = list(csv.reader(io.StringIO(report.to_csv(review).decode("utf-8-sig"))))
    cells = [c for row in rows[1:] for c in row]
    assert cells and not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert any(c == "'" + evil for c in cells)  # kept whole, shown as text


# --- exit codes a crash cannot fake, and the review's own deadline --------------------------


def test_an_internal_error_has_its_own_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER, encoding="utf-8-sig")

    def broken(*_: Any, **__: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(checks, "review", broken)
    monkeypatch.setattr(access_review.database, "collect_db_roles",
                        lambda *_: ([], access_review.Scope("db", True, 0)))  # fmt: skip
    code = access_review.main(["run", "--roster", str(roster), "--out", str(tmp_path / "o"),
                               "--db-dsn", "x"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == access_review.FAILED and code not in (0, 1, 3)
    assert "the review failed: ZeroDivisionError: a bug" in err and "Traceback" not in err


def test_the_whole_review_ends_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER, encoding="utf-8-sig")
    monkeypatch.setattr(access_review.database, "collect_db_roles",
                        lambda *_: time.sleep(3600))  # fmt: skip
    started = time.monotonic()
    code = access_review.main(["run", "--roster", str(roster), "--out", str(tmp_path / "o"),
                               "--db-dsn", "x", "--deadline", "2", "--json"])  # fmt: skip
    assert time.monotonic() - started < 10
    out = json.loads(capsys.readouterr().out)
    assert code == access_review.INCOMPLETE and out["verdict"] == "INCOMPLETE"
    assert "not finished within the review's 2 s deadline" in out["scopes"][0]["reason"]


def test_a_hanging_host_ends_the_review_incomplete_in_time(tmp_path: Path, capsys: Any) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER, encoding="utf-8-sig")
    with misbehaving_host(tmp_path, "trickle") as stub:
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(json.dumps({"all": {"hosts": {"intake-1": {
            "ansible_host": "127.0.0.1", "ansible_port": stub.port}}}}))  # fmt: skip
        started = time.monotonic()
        code = access_review.main([
            "run", "--roster", str(roster), "--out", str(tmp_path / "o"), "--json",
            "--inventory", str(inventory), "--ssh-user", "r", "--ssh-key", str(stub.key_file),
            "--known-hosts", str(stub.known_hosts), "--timeout", "30", "--deadline", "3",
        ])  # fmt: skip
        elapsed = time.monotonic() - started
    out = json.loads(capsys.readouterr().out)
    assert code == access_review.INCOMPLETE and elapsed < 10
    (scope,) = out["scopes"]
    assert "intake-1" in scope["reason"] and "in stage read" in scope["reason"]


def test_a_documented_break_glass_role_waits_unused_others_are_dormant(
    tmp_path: Path, moto_endpoint: str, capsys: Any
) -> None:
    client = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action":
             "sts:AssumeRole", "Principal": {"Service": "ec2.amazonaws.com"}}]}  # fmt: skip
    for name in ("claims-dc-break-glass", "forgotten-role"):
        client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER, encoding="utf-8-sig")
    services = tmp_path / "services.toml"
    services.write_text('[break-glass]\n"claims-dc-break-glass" = "sealed credentials, logged"\n')
    later = (dt.date.today() + dt.timedelta(days=200)).isoformat()
    access_review.main(["run", "--roster", str(roster), "--out", str(tmp_path / "o"), "--json",
                        "--aws", "--aws-endpoint", moto_endpoint, "--today", later,
                        "--service-accounts", str(services)])  # fmt: skip
    dormant = {f["account"] for f in json.loads(capsys.readouterr().out)["findings"]
               if f["check"] == "IAM-007"}  # fmt: skip
    assert "role/forgotten-role" in dormant and "role/claims-dc-break-glass" not in dormant
    for name in ("claims-dc-break-glass", "forgotten-role"):
        client.delete_role(RoleName=name)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[host\nfund = 1", "not TOML"),
        ('[printers]\nx = "y"', "is not one of"),
        ("[host]\nfund = 3", "needs its purpose as text"),
    ],
)
def test_a_bad_service_accounts_file_is_bad_input(
    tmp_path: Path, text: str, why: str, capsys: Any
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER, encoding="utf-8-sig")
    services = tmp_path / "services.toml"
    services.write_text(text)
    code = access_review.main(["run", "--roster", str(roster), "--out", str(tmp_path / "o"),
                               "--db-dsn", "x", "--service-accounts", str(services)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == access_review.BAD_INPUT and why in err and "services.toml" in err


def test_the_end_date_rule_is_printed_in_the_report() -> None:
    review = report.build([], [], today=TODAY)
    assert review["rules"]["end_date"] == report.END_DATE_RULE
    assert "last working day" in report.to_html(review)


def test_certificate_logins_are_listed_in_the_report() -> None:
    from ops.reviewlib.model import Account, Credential

    opsadmin = Account("host:app-1", "opsadmin", attributes={"principals": ["opsadmin"]},
                       credentials=[Credential("ssh_principal", "opsadmin", True)])  # fmt: skip
    review = report.build([], [], today=TODAY)
    review["certificate_logins"] = report.certificate_logins([opsadmin, Account("aws", "x")])
    assert review["certificate_logins"] == [
        {"system": "host:app-1", "account": "opsadmin", "principals": "opsadmin"}
    ]
    assert "opsadmin" in report.to_html(review)
