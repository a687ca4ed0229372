"""The caseworkers' pages in a real browser: headless Chromium (lab/browser.py) against gunicorn
on loopback, serving the application from the test PostgreSQL."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from claimapp.accounts import create_user
from claimapp.generate import claim_file
from claimapp.intake import ingest
from lab.browser import escaped_markup, visit

PASSWORD = secrets.token_urlsafe(18)  # made up for this run only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = _free_port()
    # The settings take the password from a file only the service can read, never the DSN.
    parts = conninfo_to_dict(postgres["app"])
    secret = tmp_path / "db-password"
    secret.write_text(str(parts.pop("password", "")))
    secret.chmod(0o600)
    env = {**os.environ, "CLAIMAPP_CONFIG": str(tmp_path / "absent.toml"),
           "CLAIMAPP_DSN": make_conninfo(**parts),
           "CLAIMAPP_DB_PASSWORD_FILE": str(secret)}  # fmt: skip
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "claimapp.web:create_app(secure_cookies=False)"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    _, err = server.communicate(timeout=5)
                    pytest.fail(f"gunicorn did not start: {err.decode()[-2000:]}")
                time.sleep(0.1)
        yield {"base": f"http://127.0.0.1:{port}", "recipient": str(row[0])}
    finally:
        server.terminate()
        server.wait(timeout=10)


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
