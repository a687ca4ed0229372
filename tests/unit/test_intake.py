"""Intake against a real PostgreSQL: whole files or nothing, quarantine with a reason."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from claimapp import intake
from claimapp.db import migrate
from claimapp.generate import BAD_KINDS, claim_file
from claimapp.intake import (
    EXIT_FAILED,
    EXIT_QUARANTINED,
    ingest,
    main,
    settled_files,
)
from claimapp.uke import parse


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else -1


def _drop(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "incoming" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def _dirs(tmp_path: Path) -> dict[str, Any]:
    return {"quarantine_dir": tmp_path / "quarantine", "processed_dir": tmp_path / "processed"}


def test_a_good_file_loads_whole(db: psycopg.Connection, tmp_path: Path) -> None:
    path = _drop(tmp_path, "1234567_202610.UKE", claim_file(5, receipts=30))
    result = ingest(path, db, **_dirs(tmp_path))
    assert result.loaded and result.receipts == 30
    assert _count(db, "claim_files") == 1 and _count(db, "receipts") == 30
    row = db.execute("SELECT sum(jsonb_array_length(details)) FROM receipts").fetchone()
    assert row is not None and row[0] > 30
    assert (tmp_path / "processed" / path.name).exists() and not path.exists()


def test_what_is_stored_is_what_the_file_says(db: psycopg.Connection, tmp_path: Path) -> None:
    # With a disease name, full width, in the first diagnosis: text that is not ASCII.
    text = claim_file(11, receipts=40).decode("cp932")
    text = re.sub(r"^(SY,[^\r\n]*,)(\r?)$", "\\g<1>急性気管支炎\\g<2>", text, count=1, flags=re.M)
    data = text.encode("cp932")
    claim = parse(data)
    assert ingest(_drop(tmp_path, "e.UKE", data), db, **_dirs(tmp_path)).loaded
    stored = db.execute(
        "SELECT receipt_number, institution_code, recipient_number, care_month, birth_date, "
        "patient_name, points, details FROM receipts ORDER BY receipt_number"
    ).fetchall()
    assert stored == [
        (r.number, claim.institution_code, r.recipient_number, r.care_month, r.birth_date,
         r.patient_name, r.points,
         [{"record": d.record, "code": d.code, "fields": list(d.fields)}
          for d in (*r.diagnoses, *r.procedures, *r.drugs)])
        for r in claim.receipts
    ]  # fmt: skip
    assert stored[0][-1][0]["fields"][-1] == "急性気管支炎"


def _copy_a_receipt_with(db: psycopg.Connection, institution: str, details: str) -> None:
    """Insert a copy of a loaded receipt as the application role could, two columns replaced
    by SQL expressions."""
    db.execute(
        psycopg.sql.SQL(
            "INSERT INTO receipts (claim_file_id, institution_code, receipt_number, "
            "receipt_type, care_month, patient_name, sex, birth_date, payer_number, "
            "recipient_number, days, points, details) SELECT claim_file_id, {}, 999, "
            "receipt_type, care_month, patient_name, sex, birth_date, payer_number, "
            "recipient_number, days, points, {} FROM receipts LIMIT 1"
        ).format(psycopg.sql.SQL(institution), psycopg.sql.SQL(details))
    )


def test_details_that_are_not_a_list_are_refused_by_the_database(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    assert ingest(_drop(tmp_path, "g.UKE", claim_file(13, receipts=2)), db,
                  **_dirs(tmp_path)).loaded  # fmt: skip
    with pytest.raises(psycopg.errors.CheckViolation):
        _copy_a_receipt_with(db, "institution_code", """'{"record": "SY"}'""")
    _copy_a_receipt_with(db, "institution_code", "details")  # the same, as a list: accepted


def test_a_receipt_cannot_name_another_institution_than_its_file(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    assert ingest(_drop(tmp_path, "f.UKE", claim_file(12, receipts=2)), db,
                  **_dirs(tmp_path)).loaded  # fmt: skip
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        _copy_a_receipt_with(db, "'0000001'", "details")


def test_a_file_that_fails_on_its_last_line_leaves_zero_rows(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    path = _drop(tmp_path, "bad.UKE", claim_file(6, receipts=30, bad="totals"))
    result = ingest(path, db, **_dirs(tmp_path))
    assert not result.loaded and result.reason == "totals"
    assert _count(db, "claim_files") == _count(db, "receipts") == 0
    reason = json.loads((tmp_path / "quarantine" / "bad.UKE.reason.json").read_text())
    assert reason["reason"] == "totals" and reason["line"] is not None
    assert (tmp_path / "quarantine" / "bad.UKE").exists()


@pytest.mark.parametrize("bad", BAD_KINDS)
def test_every_rejection_is_quarantined_with_its_reason(
    db: psycopg.Connection, tmp_path: Path, bad: str
) -> None:
    result = ingest(
        _drop(tmp_path, f"{bad}.UKE", claim_file(7, receipts=8, bad=bad)), db, **_dirs(tmp_path)
    )
    assert not result.loaded and result.reason == bad
    assert (
        json.loads((tmp_path / "quarantine" / f"{bad}.UKE.reason.json").read_text())["reason"]
        == bad
    )
    assert _count(db, "receipts") == 0


def test_the_same_file_twice_is_refused_by_hash(db: psycopg.Connection, tmp_path: Path) -> None:
    data = claim_file(8, receipts=10)
    assert ingest(_drop(tmp_path, "a.UKE", data), db, **_dirs(tmp_path)).loaded
    again = ingest(_drop(tmp_path, "renamed.UKE", data), db, **_dirs(tmp_path))
    assert not again.loaded and again.reason == "duplicate-file"
    assert _count(db, "claim_files") == 1 and _count(db, "receipts") == 10


def test_a_database_refusal_midway_rolls_everything_back(
    postgres: dict[str, str], db: psycopg.Connection, tmp_path: Path
) -> None:
    with psycopg.connect(postgres["owner"], autocommit=True) as owner:
        owner.execute(
            "CREATE FUNCTION refuse_25th() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF NEW.receipt_number = 25 THEN RAISE EXCEPTION 'refused for the "
            "test'; END IF; RETURN NEW; END $$"
        )
        owner.execute(
            "CREATE TRIGGER refuse_25th BEFORE INSERT ON receipts FOR EACH ROW "
            "EXECUTE FUNCTION refuse_25th()"
        )
        try:
            result = ingest(
                _drop(tmp_path, "c.UKE", claim_file(9, receipts=30)), db, **_dirs(tmp_path)
            )
        finally:
            owner.execute("DROP TRIGGER refuse_25th ON receipts")
            owner.execute("DROP FUNCTION refuse_25th()")
    assert not result.loaded and result.reason == "database"
    assert "refused for the test" in (result.message or "")
    assert _count(db, "claim_files") == _count(db, "receipts") == 0


def test_the_application_role_may_never_update_or_delete(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    ingest(_drop(tmp_path, "d.UKE", claim_file(10, receipts=2)), db, **_dirs(tmp_path))
    for statement in (
        "UPDATE receipts SET points = 0",
        "DELETE FROM receipts",
        "CREATE TABLE sneaky (id int)",
        "TRUNCATE receipts",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(statement)
    row = db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False,)


def test_migrations_run_once(postgres: dict[str, str]) -> None:
    with psycopg.connect(postgres["owner"], autocommit=True) as owner:
        assert migrate(owner) == []


def test_unsettled_uploads_wait(tmp_path: Path) -> None:
    fresh = _drop(tmp_path, "uploading.UKE", b"IR")
    old = _drop(tmp_path, "done.UKE", b"IR")
    os.utime(old, (time.time() - 60, time.time() - 60))
    assert settled_files(fresh.parent) == [old]


def test_cli_over_a_drop_directory(
    postgres: dict[str, str],
    db: psycopg.Connection,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = _drop(tmp_path, "good.UKE", claim_file(11, receipts=3))
    bad = _drop(tmp_path, "bad.UKE", claim_file(12, receipts=3, bad="payer"))
    for path in (good, bad):
        os.utime(path, (time.time() - 60, time.time() - 60))
    code = main(
        [
            "--drop",
            str(good.parent),
            "--dsn",
            postgres["app"],
            "--quarantine",
            str(tmp_path / "q"),
            "--processed",
            str(tmp_path / "p"),
            "--json",
        ]
    )
    assert code == EXIT_QUARANTINED
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {(x["file"], x["loaded"]) for x in lines} == {("good.UKE", True), ("bad.UKE", False)}


# --- files that are not what they claim to be --------------------------------------------


def _reason(tmp_path: Path, name: str) -> dict[str, Any]:
    reason: dict[str, Any] = json.loads(
        (tmp_path / "quarantine" / f"{name}.reason.json").read_text(encoding="utf-8")
    )
    return reason


def test_a_symlink_is_quarantined_as_a_link_and_never_followed(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("IR,TOP-SECRET-PASSWORD\n")
    link = tmp_path / "incoming" / "link.UKE"
    link.parent.mkdir()
    link.symlink_to(secret)
    result = ingest(link, db, **_dirs(tmp_path))
    assert not result.loaded and result.reason == "not-a-file"
    moved = tmp_path / "quarantine" / "link.UKE"
    assert moved.is_symlink() and not link.exists()  # the link moved, as a link
    assert secret.read_text() == "IR,TOP-SECRET-PASSWORD\n"  # its target untouched
    assert "TOP-SECRET" not in json.dumps(_reason(tmp_path, "link.UKE"))


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_what_is_not_a_regular_file_is_quarantined_without_being_read(
    db: psycopg.Connection, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "incoming" / f"{kind}.UKE"
    path.parent.mkdir()
    os.mkfifo(path) if kind == "fifo" else path.mkdir()  # a FIFO would block a plain open()
    result = ingest(path, db, **_dirs(tmp_path))
    assert not result.loaded and result.reason == "not-a-file"
    assert _reason(tmp_path, path.name)["reason"] == "not-a-file"


def test_a_file_over_the_limit_is_refused_by_its_size_before_reading(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    huge = tmp_path / "incoming" / "huge.UKE"
    huge.parent.mkdir()
    with huge.open("wb") as f:
        f.truncate(8 * 2**30)  # 8 GiB, sparse: reading it would take minutes and all memory
    result = ingest(huge, db, **_dirs(tmp_path), max_bytes=2**20)
    assert not result.loaded and result.reason == "too-large"
    assert "8589934592 bytes" in (result.message or "")
    small = ingest(_drop(tmp_path, "ok.UKE", claim_file(30, receipts=3)), db, **_dirs(tmp_path),
                   max_bytes=2**20)  # fmt: skip
    assert small.loaded


def test_a_name_that_is_not_utf8_loads_and_is_shown_escaped(
    postgres: dict[str, str], db: psycopg.Connection, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    drop = tmp_path / "incoming"
    drop.mkdir()
    raw = os.path.join(os.fsencode(drop), b"\x93\xfa\x96\x7b-sjis.UKE")  # 日本 in Shift_JIS
    with open(raw, "wb") as f:
        f.write(claim_file(31, receipts=2))
    bad = os.path.join(os.fsencode(drop), b"\xff-bad.UKE")
    with open(bad, "wb") as f:
        f.write(claim_file(32, receipts=2, bad="payer"))
    for path in (raw, bad):
        os.utime(path, (time.time() - 60, time.time() - 60))
    code = main(["--drop", str(drop), "--dsn", postgres["app"], "--json",
                 "--quarantine", str(tmp_path / "quarantine"),
                 "--processed", str(tmp_path / "processed")])  # fmt: skip
    assert code == EXIT_QUARANTINED
    results = {r["file"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert results["\\x93\\xfa\\x96{-sjis.UKE"]["loaded"] is True
    assert results["\\xff-bad.UKE"]["reason"] == "payer"
    row = db.execute("SELECT file_name FROM claim_files").fetchone()
    assert row == ("\\x93\\xfa\\x96{-sjis.UKE",)
    assert os.path.exists(os.path.join(os.fsencode(tmp_path / "quarantine"), b"\xff-bad.UKE"))


def test_the_same_month_in_other_bytes_is_refused_naming_the_first_file(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    first = claim_file(33, receipts=12)
    assert ingest(_drop(tmp_path, "first.UKE", first), db, **_dirs(tmp_path)).loaded
    resent = first.replace(b"\r\n", b"\n") + b"\n"
    again = ingest(_drop(tmp_path, "resent.UKE", resent), db, **_dirs(tmp_path))
    assert not again.loaded and again.reason == "duplicate-content"
    assert "'first.UKE'" in (again.message or "")
    assert _count(db, "claim_files") == 1 and _count(db, "receipts") == 12


def test_an_unforeseen_error_on_one_file_quarantines_it_and_the_run_goes_on(
    postgres: dict[str, str], db: psycopg.Connection, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    real_parse = intake.parse

    def parse_or_break(data: bytes) -> Any:
        if "第40病院".encode("cp932") in data:
            raise RuntimeError("a parser bug")
        return real_parse(data)

    monkeypatch.setattr(intake, "parse", parse_or_break)
    broken = _drop(tmp_path, "a-broken.UKE", claim_file(40, receipts=2))  # 第40病院
    good = _drop(tmp_path, "b-good.UKE", claim_file(41, receipts=2))
    for path in (broken, good):
        os.utime(path, (time.time() - 60, time.time() - 60))
    code = main(["--drop", str(good.parent), "--dsn", postgres["app"],
                 "--quarantine", str(tmp_path / "quarantine"),
                 "--processed", str(tmp_path / "processed")])  # fmt: skip
    assert code == EXIT_QUARANTINED
    assert _reason(tmp_path, "a-broken.UKE")["reason"] == "unreadable"
    assert "RuntimeError" in _reason(tmp_path, "a-broken.UKE")["message"]
    assert (tmp_path / "processed" / "b-good.UKE").exists()


def test_a_failure_of_the_intake_itself_is_named_and_exits_one(
    postgres: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    def broken_run(args: Any) -> int:
        raise KeyError("an intake bug")

    monkeypatch.setattr(intake, "_run", broken_run)
    dirs = ["--quarantine", str(tmp_path / "q"), "--processed", str(tmp_path / "p")]
    code = main(["--drop", str(tmp_path), "--dsn", postgres["app"], *dirs])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "the intake failed: KeyError" in err and "Traceback" not in err
