"""The claim-file parser and the synthetic generator (docs: claimapp/docs/uke-subset.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claimapp.generate import BAD_KINDS, claim_file, main, to_era
from claimapp.uke import ClaimFileError, era_date, parse


def _lines(*records: str) -> bytes:
    return ("\r\n".join(records) + "\r\n").encode("cp932")


GOOD = (
    "IR,1,40,1,1234567,,大牟田テスト病院,50810",
    "RE,1,1112,50810,福祉　太郎,1,3500101",
    "KO,12401234,1234567,3,1500",
    "SY,1234567,5080901,1,",
    "SI,11,111000110,1,1200,1",
    "IY,21,620000001,2.5,300,1",
    "GO,1,1500",
)


def test_every_record_type_is_read() -> None:
    claim = parse(_lines(*GOOD))
    assert claim.institution_code == "1234567" and claim.prefecture == "40"
    assert claim.billing_month == dt.date(2026, 10, 1)  # 令和8年10月
    (r,) = claim.receipts
    assert r.patient_name == "福祉　太郎"  # full width, through cp932
    assert r.birth_date == dt.date(1975, 1, 1)  # 昭和50年1月1日
    assert (r.payer_number, r.recipient_number, r.days, r.points) == (
        "12401234",
        "1234567",
        3,
        1500,
    )
    assert [d.code for d in r.diagnoses] == ["1234567"]
    assert [d.code for d in r.procedures] == ["111000110"]
    assert [d.code for d in r.drugs] == ["620000001"]
    assert claim.total_points == 1500 and len(claim.sha256) == 64


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("encoding", "encoding"),
        ("record", "record"),
        ("order", "order"),
        ("field", "field"),
        ("totals", "totals"),
        ("payer", "payer"),
        ("duplicate", "duplicate"),
    ],
)
def test_each_generated_bad_file_is_rejected_for_its_reason(bad: str, reason: str) -> None:
    with pytest.raises(ClaimFileError) as excinfo:
        parse(claim_file(3, receipts=5, bad=bad))
    assert excinfo.value.reason == reason
    assert excinfo.value.line is not None
    assert set(BAD_KINDS) >= {bad}


@pytest.mark.parametrize(
    ("index", "replacement", "reason", "text"),
    [
        (0, "IR,1,48,1,1234567,,病院,50810", "field", "prefecture must be 01 to 47"),
        (0, "IR,3,40,1,1234567,,病院,50810", "field", "payer organisation"),
        (0, "IR,1,40,1,123456,,病院,50810", "field", "institution code must be 7 digits"),
        (1, "RE,1,1112,50811,福祉　太郎,1,3500101", "field", "after the billing month"),
        (1, "RE,1,1112,50810,福祉　太郎,3,3500101", "field", "sex"),
        (1, "RE,1,1112,50810,,1,3500101", "field", "patient name"),
        (2, "KO,12401234,1234567,32,1500", "field", "days"),
        (2, "KO,1240123,1234567,3,1500", "field", "payer number must be 8 digits"),
        (3, "SY,1234567,5080901,9,", "field", "outcome"),
        (4, "SI,11,111000110,-1,1200,1", "field", "quantity must not be negative"),
        (5, "IY,21,620000001,x,300,1", "field", "quantity must be a decimal"),
        (6, "GO,2,1500", "totals", "GO says 2 receipts"),
        (6, "GO,1,1500,9", "field", "GO has 4 fields"),
        (6, "SY,1234567,5080901,1,", "order", "the last record is SY"),
    ],
)
def test_field_and_structure_rejections(
    index: int, replacement: str, reason: str, text: str
) -> None:
    records = list(GOOD)
    records[index] = replacement
    with pytest.raises(ClaimFileError, match=text) as excinfo:
        parse(_lines(*records))
    assert excinfo.value.reason == reason


def test_empty_and_missing_ir() -> None:
    with pytest.raises(ClaimFileError, match="empty"):
        parse(b"\r\n")
    with pytest.raises(ClaimFileError, match="first record is RE, not IR"):
        parse(_lines(*GOOD[1:]))


def test_generated_files_round_trip_and_are_deterministic() -> None:
    data = claim_file(11, receipts=200)
    claim = parse(data)
    assert len(claim.receipts) == 200
    assert all(r.payer_number.startswith("12") for r in claim.receipts)
    assert any(r.drugs for r in claim.receipts) and all(r.diagnoses for r in claim.receipts)
    assert claim_file(11, receipts=200) == data
    assert claim_file(12, receipts=200) != data


@given(st.dates(min_value=dt.date(1868, 1, 25), max_value=dt.date(2100, 12, 31)))
def test_era_dates_round_trip(day: dt.date) -> None:
    assert era_date(to_era(day), with_day=True) == day
    assert era_date(to_era(day, with_day=False), with_day=False) == day.replace(day=1)


def test_cli_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "1234567.UKE"
    assert main(["--seed", "4", "--receipts", "3", "-o", str(out)]) == 0
    assert len(parse(out.read_bytes()).receipts) == 3
