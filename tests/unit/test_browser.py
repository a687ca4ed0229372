"""The caseworkers' pages in a real browser: headless Chromium (lab/browser.py) against gunicorn
on loopback, serving the application from the test PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from claimapp.accounts import create_user
from claimapp.generate import claim_file
from claimapp.intake import ingest
from lab.browser import escaped_markup, visit
from tests.support.served import ServerDidNotStart, gunicorn

PASSWORD = secrets.token_urlsafe(18)  # made up for this run only


@pytest.fixture
def served(postgres: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    with psycopg.connect(postgres["owner"], autocommit=True) as owner:
        owner.execute("DELETE FROM sessions; DELETE FROM login_throttle")
        owner.execute("DELETE FROM users WHERE username = 'browser.kato'")
        create_user(owner, "browser.kato", "caseworker", PASSWORD)
    with psycopg.connect(postgres["app"], autocommit=True) as app:
        path = tmp_path / "month.UKE"
        path.write_bytes(claim_file(secrets.randbelow(10**6), receipts=5))
        assert ingest(path, app, tmp_path / "q", tmp_path / "p").loaded
        row = app.execute(
            "SELECT recipient_number FROM receipts r JOIN claim_files f ON f.id ="
            " r.claim_file_id WHERE f.file_name = 'month.UKE' ORDER BY r.id DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    try:
        with gunicorn(postgres["app"], tmp_path) as base:
            yield {"base": base, "recipient": str(row[0])}
    except ServerDidNotStart as exc:
        pytest.fail(f"gunicorn did not start: {exc}")


def test_a_caseworker_logs_in_searches_reads_and_logs_out_in_chromium(
    served: dict[str, Any], tmp_path: Path
) -> None:
    shots = tmp_path / "shots"
    result = visit(served["base"], "browser.kato", PASSWORD, served["recipient"], shots)
    assert result.ok, result.error
    assert [p.name for p in result.pages] == [
        "login", "search", "results", "receipt", "logged-out",
    ]  # fmt: skip
    assert all(p.escaped == [] for p in result.pages)
    assert result.pages[1].title.startswith("レセプト検索")
    for page in result.pages:
        assert page.screenshot and Path(page.screenshot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_wrong_password_in_the_form_stays_on_the_login_page(served: dict[str, Any]) -> None:
    result = visit(served["base"], "browser.kato", "not the password", served["recipient"],
                   timeout=5)  # fmt: skip
    assert not result.ok and [p.name for p in result.pages] == ["login"]
    assert "TimeoutException" in (result.error or "")


def test_the_check_fires_on_markup_shown_as_text() -> None:
    # What a caseworker saw when the login template was escaped twice.
    shown = 'ログイン\n<form method="post" action="/login" class="login">\nユーザー名'
    assert escaped_markup(shown) == ['<form method="post" action="/login" class="login">']
    assert escaped_markup("検索結果 &lt;table&gt;") == ["&lt;", "&gt;"]
    assert escaped_markup("受給者番号 1234567 点数 1,200") == []
