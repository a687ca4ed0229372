"""Intake against a real PostgreSQL: whole files or nothing, quarantine with a reason."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from claimapp.db import migrate
from claimapp.generate import BAD_KINDS, claim_file
from claimapp.intake import ingest, main, settled_files


@pytest.fixture
def db(postgres: dict[str, str]) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres["owner"], autocommit=True) as owner:
        owner.execute("TRUNCATE receipt_details, receipts, claim_files RESTART IDENTITY")
    with psycopg.connect(postgres["app"], autocommit=True) as app:
        yield app


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
    assert _count(db, "receipt_details") > 30
    assert (tmp_path / "processed" / path.name).exists() and not path.exists()


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
    assert code == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {(x["file"], x["loaded"]) for x in lines} == {("good.UKE", True), ("bad.UKE", False)}
