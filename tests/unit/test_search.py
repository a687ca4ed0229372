"""The receipt search at scale: every search kind walks an index in the results' order, pages
are bounded, and the application's connection pool survives the server closing a connection."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from claimapp.accounts import Policy, create_user
from claimapp.views import context, receipts
from claimapp.views.receipts import search_query
from claimapp.web import create_app

PASSWORD = secrets.token_urlsafe(18)  # made up for this run only
SAME_ORIGIN = {"Origin": "http://localhost"}  # what a browser sends from the test host
MONTHS = [dt.date(2026, m, 1) for m in range(1, 7)]
# What each search kind looks like: (recipient, month, institution).
KINDS = {
    "recipient+month": ("1000007", MONTHS[2], ""),
    "recipient": ("1000007", None, ""),
    "month": ("", MONTHS[0], ""),  # the oldest: a walk of the primary key would reach it last
    "institution": ("", None, "3000002"),
    "institution+month": ("", MONTHS[2], "3000002"),
}


@pytest.fixture
def filled(postgres: dict[str, str]) -> Iterator[dict[str, str]]:
    """12,000 receipts: 200 institutions x 6 months, 10 receipts per file, 300 recipients,
    loaded month by month as the intake loads them (ids grow with the care month)."""
    with psycopg.connect(postgres["owner"], autocommit=True) as owner:
        owner.execute("TRUNCATE receipts, claim_files RESTART IDENTITY")
        owner.execute("DELETE FROM sessions; DELETE FROM login_throttle")
        owner.execute("DELETE FROM users WHERE username = 'search.kato'")
        owner.execute(
            "INSERT INTO claim_files (sha256, file_name, payer_org, prefecture, "
            "institution_code, institution_name, billing_month, receipt_count, total_points) "
            "SELECT md5(i || '-' || m) || md5(m || '-' || i), 'test', '1', '40', "
            "'3' || lpad(i::text, 6, '0'), 'test', make_date(2026, m, 1), 10, 0 "
            "FROM generate_series(1, 200) i, generate_series(1, 6) m ORDER BY m, i"
        )
        owner.execute(
            "INSERT INTO receipts (claim_file_id, institution_code, receipt_number, "
            "receipt_type, care_month, patient_name, sex, birth_date, payer_number, "
            "recipient_number, days, points, details) SELECT f.id, f.institution_code, n, "
            "'1112', f.billing_month, 'テスト', '2', date '1950-01-01', '12400001', "
            "'1' || lpad(((f.id * 10 + n) % 300)::text, 6, '0'), 1, n, '[]' "
            "FROM claim_files f, generate_series(1, 10) n ORDER BY f.id, n"
        )
        owner.execute("ANALYZE receipts")
        create_user(owner, "search.kato", "caseworker", PASSWORD)
    yield postgres


COLUMNS = {"recipient": "recipient_number", "month": "care_month",
           "institution": "institution_code"}  # fmt: skip
ORDER = ("care_month", "id")  # the results' order, newest first (search_query)


def _indexes(conn: psycopg.Connection) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT i.relname, array_agg(a.attname::text ORDER BY k.n) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, n) ON true "
        "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum "
        "WHERE x.indrelid = 'receipts'::regclass GROUP BY i.relname"
    ).fetchall()
    return {str(name): list(columns) for name, columns in rows}


def _serving(indexes: dict[str, list[str]], kind: str) -> list[str]:
    """The indexes that answer a kind by walking: its criteria as the leading columns (equal
    to the values searched for), then the rest of the results' order. Such an index gives a
    page by reading a page; anything else reads and sorts or filters every match."""
    equal = {COLUMNS[criterion] for criterion in kind.split("+")}
    rest = [c for c in ORDER if c not in equal]
    return [name for name, cols in indexes.items()
            if set(cols[: len(equal)]) == equal
            and cols[len(equal): len(equal) + len(rest)] == rest]  # fmt: skip


def test_every_search_kind_has_an_index_that_walks_in_the_results_order(
    filled: dict[str, str],
) -> None:
    with psycopg.connect(filled["app"], autocommit=True) as conn:
        indexes = _indexes(conn)
        for kind, criteria in KINDS.items():
            assert _serving(indexes, kind), f"{kind}: no index serves it among {indexes}"
            # What the planner makes of it: the page's ids by walking that index backwards
            # (newest first), a page deep, then the page's rows by their key.
            query, params = search_query(*criteria, page=3)
            conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
            plan = conn.execute(psycopg.sql.SQL("EXPLAIN ") + query, params).fetchall()
            shown = "\n".join(str(r[0]) for r in plan)
            walked = re.search(r"Index (Only )?Scan Backward using (\w+)", shown)
            assert walked and walked[2] in _serving(indexes, kind), f"{kind}:\n{shown}"
            assert "receipts_pkey" in shown and "Seq Scan" not in shown, f"{kind}:\n{shown}"


def test_the_index_check_fires_on_a_kind_without_its_index(filled: dict[str, str]) -> None:
    with psycopg.connect(filled["owner"]) as conn:  # a transaction: the drop is rolled back
        conn.execute("DROP INDEX receipts_by_institution")
        indexes = _indexes(conn)
        conn.rollback()
    assert _serving(indexes, "institution") == []
    assert _serving(indexes, "institution+month") == []
    assert _serving(indexes, "recipient+month") == ["receipts_by_recipient"]
    # An index with the order's columns but not the criteria leading does not count.
    assert _serving({"wrong": ["care_month", "institution_code", "id"]}, "institution") == []


@pytest.fixture
def client(filled: dict[str, str]) -> Iterator[Any]:
    app = create_app(filled["app"], Policy(), secure_cookies=False)
    c = app.test_client()
    assert c.post("/api/login", json={"username": "search.kato", "password": PASSWORD})
    yield c
    context.close_pool(app)


def test_results_come_newest_care_month_first_then_newest_receipt(client: Any) -> None:
    found = client.get("/api/receipts?institution=3000002").get_json()["receipts"]
    assert len(found) == receipts.PAGE_SIZE
    keys = [(r["care_month"], r["id"]) for r in found]
    assert keys == sorted(keys, reverse=True) and found[0]["care_month"] == "2026-06-01"
    assert {r["institution_code"] for r in found} == {"3000002"}
    second = client.get("/api/receipts?institution=3000002&page=2").get_json()["receipts"]
    assert (second[0]["care_month"], second[0]["id"]) < keys[-1]


def test_paging_stops_at_the_last_page_with_a_hint_to_narrow_the_search(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receipts, "MAX_PAGE", 3)
    last = client.get("/api/receipts?month=2026-03&page=3").get_json()
    assert len(last["receipts"]) == receipts.PAGE_SIZE and last["next_page"] is None
    html = client.get("/receipts?month=2026-03&page=3").get_data(as_text=True)
    assert "絞り込んでください" in html and 'rel="next"' not in html
    assert client.get("/api/receipts?month=2026-03&page=4").status_code == 400
    fits = client.get("/receipts?recipient=1000007").get_data(as_text=True)
    assert "絞り込んでください" not in fits


def test_a_connection_the_server_closed_is_replaced_not_used(
    client: Any, filled: dict[str, str]
) -> None:
    assert client.get("/api/receipts?recipient=1000007").status_code == 200
    with psycopg.connect(filled["app"], autocommit=True) as app:
        # A role may end its own sessions: the pool's connection goes as in a server restart.
        ended = app.execute(
            "SELECT count(*) FROM pg_stat_activity, pg_terminate_backend(pid) "
            "WHERE usename = current_user AND pid <> pg_backend_pid()"
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    assert client.get("/api/receipts?recipient=1000007").status_code == 200


def test_an_unreachable_database_is_a_503_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(context, "WAIT_SECONDS", 1.0)
    app = create_app(f"host={tmp_path} dbname=claims user=nobody", Policy(),
                     secure_cookies=False)  # fmt: skip
    try:
        c = app.test_client()
        api = c.get("/api/receipts?recipient=1000007", headers={"Cookie": "claimapp_session=x"})
        assert api.status_code == 503 and "error" in api.get_json()
        page = c.post("/login", data={"username": "a", "password": "b"}, headers=SAME_ORIGIN)
        assert page.status_code == 503 and "データベースに接続できません" in page.get_data(True)
    finally:
        context.close_pool(app)
