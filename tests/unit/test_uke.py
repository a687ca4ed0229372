"""The claim-file parser and the synthetic generator (docs: claimapp/docs/uke-subset.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claimapp.generate import BAD_KINDS, claim_file, main, to_era
from claimapp.uke import MAX_LINE_CHARS, ClaimFileError, era_date, parse


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
        (4, "SI,11,111000110,-1,1200,1", "field", "quantity must be a decimal number"),
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


# --- the format document's rules, each with a file it rejects ------------------------------


FULL_WIDTH_3500101 = "".join(chr(0xFF10 + int(d)) for d in "3500101")


def _with(index: int, replacement: str) -> bytes:
    records = list(GOOD)
    records[index] = replacement
    return _lines(*records)


@pytest.mark.parametrize(
    ("index", "replacement", "text"),
    [
        # Names: full width, no control characters.
        (1, "RE,1,1112,50810,Fukushi Taro,1,3500101", "must be full width: 'F' is not"),
        (1, "RE,1,1112,50810,ﾌｸｼ　ﾀﾛｳ,1,3500101", "must be full width: 'ﾌ' is not"),
        (1, "RE,1,1112,50810,福祉\x07太郎,1,3500101", "control character U\\+0007"),
        (0, "IR,1,40,1,1234567,,大牟田\x1b[2J病院,50810", "control character U\\+001B"),
        (3, "SY,1234567,5080901,1,ｶｾﾞ", "disease name must be full width"),
        # Era years: inside their era, never year 00.
        (1, "RE,1,1112,50810,福祉　太郎,1,4320101", "birth date: outside its era"),  # 平成32年
        (1, "RE,1,1112,50810,福祉　太郎,1,3640201", "birth date: outside its era"),  # 昭和64年2月
        # 令和元年4月
        (1, "RE,1,1112,50104,福祉　太郎,1,3500101", "month of care: outside its era"),
        (1, "RE,1,1112,50810,福祉　太郎,1,2160101", "birth date: outside its era"),  # 大正16年
        (1, "RE,1,1112,50810,福祉　太郎,1,5000101", "era year 00"),
        (
            1,
            "RE,1,1112,50810,福祉　太郎,1,\uff13\uff15\uff10\uff10\uff11\uff10\uff11",
            "not GYYMMDD",
        ),
        # Quantities: digits, an optional point, nothing else.
        (4, "SI,11,111000110,1e999999,1200,1", "quantity must be a decimal number"),
        (4, "SI,11,111000110,1_000,1200,1", "quantity must be a decimal number"),
        (4, "SI,11,111000110,NaN,1200,1", "quantity must be a decimal number"),
        (4, "SI,11,111000110,+1,1200,1", "quantity must be a decimal number"),
        (4, "SI,11,111000110,1.123456,1200,1", "quantity must be a decimal number"),
        (4, "SI,11,111000110,\uff11,1200,1", "quantity must be a decimal number"),  # full width
        # Numbers far longer than their field: refused by length, never converted.
        (2, "KO,12401234,1234567,3," + "9" * 300, "points must be a whole number"),
        (6, "GO,1," + "1" * 300, "total points must be a whole number"),
    ],
)
def test_what_the_format_document_rules_out_is_rejected(
    index: int, replacement: str, text: str
) -> None:
    with pytest.raises(ClaimFileError, match=text) as excinfo:
        parse(_with(index, replacement))
    assert excinfo.value.reason == "field" and excinfo.value.line == index + 1


@pytest.mark.parametrize(
    "birth",
    ["3640107", "4010108", "4310430", "5010501", "1450729", "2010730"],  # era boundaries
)
def test_the_first_and_last_days_of_eras_are_accepted(birth: str) -> None:
    assert parse(_with(1, f"RE,1,1112,50810,福祉　太郎,1,{birth}")).receipts


def test_a_line_longer_than_any_record_is_refused_before_its_fields() -> None:
    with pytest.raises(ClaimFileError, match=f"at most {MAX_LINE_CHARS}"):
        parse(_with(3, "SY,1234567,5080901,1," + "病" * 1000))


def test_a_reason_quotes_only_a_short_excerpt_of_a_bad_value() -> None:
    secret = "S" * 30 + "the rest of a long value that must not be echoed"
    with pytest.raises(ClaimFileError) as excinfo:
        parse(_with(0, f"IR,1,40,1,{secret},,病院,50810"))
    message = str(excinfo.value)
    assert "must not be echoed" not in message and len(message) < 200
    assert "(78 characters)" in message


def test_the_same_month_in_other_bytes_has_the_same_content_key() -> None:
    crlf = claim_file(21, receipts=20)
    lf_with_blank_lines = crlf.replace(b"\r\n", b"\n").replace(b"\nRE,5,", b"\n\nRE,5,")
    assert crlf != lf_with_blank_lines
    assert parse(crlf).content_key == parse(lf_with_blank_lines).content_key
    assert parse(crlf).content_key != parse(claim_file(22, receipts=20)).content_key
