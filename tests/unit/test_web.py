"""The caseworkers' web application and API against a real PostgreSQL."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from claimapp import accounts
from claimapp.accounts import REFUSED, Policy, create_user
from claimapp.admin import main as admin_main
from claimapp.generate import claim_file
from claimapp.intake import ingest
from claimapp.views.context import close_pool
from claimapp.web import COOKIE, create_app

PASSWORD = secrets.token_urlsafe(18)  # the test accounts', made up for this run only
SAME_ORIGIN = {"Origin": "http://localhost"}  # what a browser sends from the test client's host
ESCAPED_MARKUP = re.compile(r"&lt;/?[a-z]+[ >/]|&lt;!doctype", re.I)


@pytest.fixture
def world(postgres: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    with psycopg.connect(postgres["owner"], autocommit=True) as owner:
        owner.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_truncate")
        owner.execute(
            "TRUNCATE sessions, users, audit_log, receipts, "
            "claim_files, login_throttle RESTART IDENTITY"
        )
        owner.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_truncate")
        for name, role in (
            ("kato", "caseworker"),
            ("sato", "supervisor"),
            ("audit.ito", "auditor"),
            ("admin.abe", "admin"),
        ):
            create_user(owner, name, role, PASSWORD)
    with psycopg.connect(postgres["app"], autocommit=True) as app_conn:
        path = tmp_path / "f.UKE"
        path.write_bytes(claim_file(21, receipts=20, institution="7654321"))
        assert ingest(path, app_conn, tmp_path / "q", tmp_path / "p").loaded
        recipient = app_conn.execute(
            "SELECT recipient_number FROM receipts WHERE receipt_number = 1"
        ).fetchone()
    app = create_app(
        postgres["app"],
        Policy(throttle_after=3, throttle_max_minutes=15, session_minutes=30),
        secure_cookies=False,
    )
    yield {
        "client": app.test_client(),
        "recipient": recipient[0] if recipient else "",
        "dsn": postgres,
    }
    close_pool(app)


def _login(client: Any, user: str, password: str = PASSWORD) -> Any:
    return client.post("/api/login", json={"username": user, "password": password})


def _audit(dsn: dict[str, str]) -> list[tuple[str, str, bool]]:
    with psycopg.connect(dsn["owner"]) as owner:
        rows = owner.execute("SELECT actor, action, success FROM audit_log ORDER BY id")
        return [(str(a), str(b), bool(c)) for a, b, c in rows.fetchall()]


def test_login_search_view_and_the_audit_trail(world: dict[str, Any]) -> None:
    c = world["client"]
    assert _login(c, "kato").status_code == 200
    found = c.get(f"/api/receipts?recipient={world['recipient']}&month=2026-10")
    assert found.status_code == 200
    rows = found.get_json()["receipts"]
    assert rows and rows[0]["recipient_number"] == world["recipient"]
    one = c.get(f"/api/receipts/{rows[0]['id']}").get_json()
    assert one["diagnoses"] and one["procedures"] and one["institution_code"] == "7654321"
    page = c.get(f"/receipts/{rows[0]['id']}")
    assert page.status_code == 200 and rows[0]["patient_name"] in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    actions = [(a, b, ok) for a, b, ok in _audit(world["dsn"]) if a == "kato"]
    assert actions == [
        ("kato", "login", True),
        ("kato", "search", True),
        ("kato", "view", True),
        ("kato", "view", True),
    ]


def _login_from(client: Any, address: str, user: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/api/login", json={"username": user, "password": password},
        headers={"X-Real-IP": address},
    )  # fmt: skip


def _refusals(dsn: dict[str, str], user: str) -> list[str]:
    with psycopg.connect(dsn["owner"]) as owner:
        rows = owner.execute(
            "SELECT target FROM audit_log WHERE actor = %s AND action = 'login' AND NOT success"
            " ORDER BY id",
            (user,),
        ).fetchall()
        return [str(r[0]) for r in rows]


def _throttle(dsn: dict[str, str], user: str, address: str) -> tuple[int, float] | None:
    """(failures, seconds from the latest failure to the next allowed attempt)."""
    with psycopg.connect(dsn["owner"]) as owner:
        row = owner.execute(
            "SELECT failures, extract(epoch FROM not_before - last_failure) FROM login_throttle"
            " WHERE username = %s AND address = %s",
            (user, address),
        ).fetchone()
        return (int(row[0]), float(row[1])) if row else None


TERMINAL, OTHER_TERMINAL = "10.232.1.10", "10.232.1.11"


def test_failures_slow_that_terminal_more_and_more_and_lock_nobody_out(
    world: dict[str, Any],
) -> None:
    c, dsn = world["client"], world["dsn"]
    for _ in range(3):  # the first failures cost nothing more
        assert _login_from(c, TERMINAL, "kato", "wrong password!").status_code == 401
    assert _throttle(dsn, "kato", TERMINAL) == (3, 0.0)
    assert _login_from(c, TERMINAL, "kato", "wrong password!").status_code == 401
    assert _throttle(dsn, "kato", TERMINAL) == (4, 1.0)  # now each next one waits
    # Inside the wait even the right password is refused, with the same answer...
    throttled = _login_from(c, TERMINAL, "kato")
    assert throttled.status_code == 401 and throttled.get_json()["error"] == REFUSED
    assert _throttle(dsn, "kato", TERMINAL) == (5, 2.0)  # ...and the wait doubles
    # The same caseworker at another terminal is not kept out.
    assert _login_from(world["client"], OTHER_TERMINAL, "kato").status_code == 200
    assert _refusals(dsn, "kato") == ["wrong-password"] * 4 + ["throttled"]
    # Delays stop growing at the cap (15 minutes here).
    with psycopg.connect(dsn["owner"], autocommit=True) as owner:
        owner.execute("UPDATE login_throttle SET failures = 40, not_before = now()"
                      " WHERE username = 'kato'")  # fmt: skip
    assert _login_from(c, TERMINAL, "kato", "wrong password!").status_code == 401
    assert _throttle(dsn, "kato", TERMINAL) == (41, 900.0)
    # Once the wait is over, the right password opens a session and clears the count.
    with psycopg.connect(dsn["owner"], autocommit=True) as owner:
        owner.execute("UPDATE login_throttle SET not_before = now() WHERE username = 'kato'")
    assert _login_from(c, TERMINAL, "kato").status_code == 200
    assert _throttle(dsn, "kato", TERMINAL) is None


def test_an_address_failing_for_many_usernames_is_slowed_too(world: dict[str, Any]) -> None:
    c, dsn = world["client"], world["dsn"]
    for n in range(30):  # 3 x 10 across usernames: still free
        _login_from(c, TERMINAL, f"guess{n:02d}", "password123456")
    assert _throttle(dsn, "", TERMINAL) == (30, 0.0)
    _login_from(c, TERMINAL, "guess99", "password123456")
    assert _throttle(dsn, "", TERMINAL) == (31, 1.0)
    refused = _login_from(c, TERMINAL, "kato")  # a real login from that address waits too
    assert refused.status_code == 401 and _refusals(dsn, "kato")[-1] == "throttled"
    assert _login_from(c, OTHER_TERMINAL, "kato").status_code == 200


@pytest.mark.parametrize("case", ["unknown", "disabled", "throttled", "wrong-password"])
def test_every_refusal_gets_the_same_answer_at_the_cost_of_one_verification(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    c, dsn = world["client"], world["dsn"]
    user, password = ("nobody" if case == "unknown" else "kato"), PASSWORD
    if case == "disabled":
        assert admin_main(["--dsn", dsn["owner"], "disable", "kato"]) == 0
    elif case == "throttled":
        for _ in range(4):
            _login_from(c, TERMINAL, "kato", "wrong password!")
    elif case == "wrong-password":
        password = "wrong password!"
    verifications: list[str] = []
    real_verify = accounts._verify

    def counting_verify(stored: str, given: str) -> bool:
        verifications.append(stored)
        return real_verify(stored, given)

    monkeypatch.setattr(accounts, "_verify", counting_verify)
    refused = _login_from(c, TERMINAL, user, password)
    assert (refused.status_code, refused.get_json()) == (401, {"error": REFUSED})
    assert len(verifications) == 1  # one argon2 verification, as for any login
    assert verifications[0].startswith("$argon2id$")
    assert _refusals(dsn, user)[-1] == case


def test_unknown_users_fail_like_wrong_passwords(world: dict[str, Any]) -> None:
    r = _login(world["client"], "nobody")
    assert r.status_code == 401 and r.get_json()["error"] == REFUSED


def test_sessions_expire(world: dict[str, Any]) -> None:
    c = world["client"]
    _login(c, "kato")
    with psycopg.connect(world["dsn"]["owner"], autocommit=True) as owner:
        owner.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert c.get("/api/receipts?month=2026-10").status_code == 401
    assert c.get("/receipts").status_code == 302  # to the login page


def test_roles(world: dict[str, Any]) -> None:
    c = world["client"]
    _login(c, "kato")
    assert c.get("/api/audit").status_code == 403  # a caseworker cannot read the audit log
    c.post("/logout", headers=SAME_ORIGIN)
    _login(c, "audit.ito")
    entries = c.get("/api/audit")
    assert entries.status_code == 200
    assert any(
        e["action"] == "denied" and e["actor"] == "kato" for e in entries.get_json()["entries"]
    )
    assert c.get("/api/receipts?month=2026-10").status_code == 403  # no personal data


def test_no_cookie_no_data(world: dict[str, Any]) -> None:
    c = world["client"]
    c.delete_cookie(COOKIE)
    assert c.get("/api/receipts?month=2026-10").status_code == 401


def test_the_audit_log_cannot_be_rewritten(world: dict[str, Any]) -> None:
    _login(world["client"], "kato")
    for dsn in (world["dsn"]["app"], world["dsn"]["owner"]):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
                with pytest.raises(
                    (psycopg.errors.InsufficientPrivilege, psycopg.errors.RaiseException)
                ):
                    conn.execute(statement)


def test_admin_cli(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = world["dsn"]["owner"]
    monkeypatch.setattr("sys.stdin", io.StringIO("a long new password\n"))
    assert (
        admin_main(["--dsn", dsn, "create", "new.user", "--role", "caseworker", "--password-stdin"])
        == 0
    )
    assert _login(world["client"], "new.user", "a long new password").status_code == 200
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert admin_main(["--dsn", dsn, "password", "new.user", "--password-stdin"]) == 0
    assert _login(world["client"], "new.user", "a long new password").status_code == 401
    assert _login(world["client"], "new.user", "another long password").status_code == 200
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert admin_main(["--dsn", dsn, "password", "ghost", "--password-stdin"]) == 1
    assert admin_main(["--dsn", dsn, "disable", "new.user"]) == 0
    assert world["client"].get("/api/receipts?month=2026-10").status_code == 401
    assert admin_main(["--dsn", dsn, "list"]) == 0
    assert "new.user" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert (
        admin_main(["--dsn", dsn, "create", "weak.user", "--role", "admin", "--password-stdin"])
        == 1
    )
    assert admin_main(["--dsn", dsn, "disable", "ghost"]) == 1


def test_a_disabled_account_cannot_log_in(world: dict[str, Any]) -> None:
    assert admin_main(["--dsn", world["dsn"]["owner"], "disable", "kato"]) == 0
    refused = _login(world["client"], "kato")
    assert refused.status_code == 401 and refused.get_json()["error"] == REFUSED
    assert _refusals(world["dsn"], "kato") == ["disabled"]


def test_a_malformed_month_is_a_bad_request(world: dict[str, Any]) -> None:
    c = world["client"]
    _login(c, "kato")
    assert c.get("/api/receipts?month=2026-13").status_code == 400


def _page(client: Any, path: str, status: int = 200) -> str:
    resp = client.get(path)
    assert resp.status_code == status, (path, resp.status_code)
    html = resp.get_data(as_text=True)
    assert resp.mimetype == "text/html" and html.lstrip().startswith("<!doctype html>"), path
    assert not ESCAPED_MARKUP.search(html), f"{path} shows escaped markup"
    return html


def test_the_escaped_markup_check_fires() -> None:
    assert ESCAPED_MARKUP.search("<p>&lt;form method=&#34;post&#34;&gt;</p>")
    assert not ESCAPED_MARKUP.search("<p>a &lt; b, &lt;= 3</p>")


def test_a_caseworker_uses_the_pages_through_the_form(world: dict[str, Any]) -> None:
    c = world["client"]
    login_page = _page(c, "/login")
    assert '<form method="post" action="/login"' in login_page
    assert 'name="password" type="password"' in login_page
    refused = c.post("/login", data={"username": "kato", "password": "wrong password!"},
                     headers=SAME_ORIGIN)  # fmt: skip
    assert refused.status_code == 401 and 'role="alert"' in refused.get_data(as_text=True)
    done = c.post("/login", data={"username": "kato", "password": PASSWORD}, headers=SAME_ORIGIN)
    assert done.status_code == 303 and done.headers["Location"] == "/receipts"
    assert "kato" in _page(c, "/receipts")  # the form alone, before any criteria
    found = _page(c, f"/receipts?recipient={world['recipient']}")
    link = re.search(r'<a href="(/receipts/\d+)">([^<]+)</a>', found)
    assert link is not None, found
    receipt = _page(c, link[1])
    assert link[2] in receipt and "傷病名" in receipt and "<table>" in receipt
    assert _page(c, "/audit", 403)
    out = c.post("/logout", headers=SAME_ORIGIN)
    assert out.status_code == 303
    assert c.get("/receipts").status_code == 302


def test_a_receipt_shows_its_details_with_their_fields_named(world: dict[str, Any]) -> None:
    c = world["client"]
    _login(c, "kato")
    found = c.get(f"/api/receipts?recipient={world['recipient']}").get_json()["receipts"]
    one = c.get(f"/api/receipts/{found[0]['id']}").get_json()
    diagnosis, procedure = one["diagnoses"][0], one["procedures"][0]
    assert re.fullmatch(r"(19|20)\d\d-\d\d-\d\d", diagnosis["start"])
    assert diagnosis["outcome"] in ("継続", "治癒", "死亡", "中止")
    assert procedure["points"] == int(procedure["fields"][3]) and procedure["count"] >= 1
    html = _page(c, f"/receipts/{found[0]['id']}")
    assert "<th>診療開始日</th>" in html and ">回数</th>" in html
    assert f"<td>{diagnosis['start']}</td><td>{diagnosis['outcome']}</td>" in html


def test_search_results_come_a_page_at_a_time(world: dict[str, Any]) -> None:
    c = world["client"]
    _login(c, "kato")
    first = c.get("/api/receipts?institution=7654321").get_json()
    assert len(first["receipts"]) == 20 and first["next_page"] is None
    html = _page(c, "/receipts?institution=7654321")
    assert html.count('<a href="/receipts/') == 20 and 'rel="next"' not in html
    assert c.get("/api/receipts?institution=7654321&page=0").status_code == 400
    assert c.get("/api/receipts?institution=7654321&page=x").status_code == 400
    assert c.get("/api/receipts?institution=7654321&page=2").get_json()["receipts"] == []


def test_the_auditor_reads_the_audit_page(world: dict[str, Any]) -> None:
    c = world["client"]
    _login(c, "audit.ito")
    html = _page(c, "/audit")
    assert "audit.ito" in html and "<table" in html


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "https://evil.example"}, {"Origin": "null"}],
    ids=["no-origin", "another-site", "opaque-origin"],
)
def test_a_form_post_from_anywhere_but_this_site_is_refused(
    world: dict[str, Any], headers: dict[str, str]
) -> None:
    c = world["client"]
    login = c.post("/login", data={"username": "kato", "password": PASSWORD}, headers=headers)
    assert login.status_code == 403 and COOKIE not in login.headers.get("Set-Cookie", "")
    _login(c, "kato")  # JSON, outside any browser: accepted
    out = c.post("/logout", headers=headers)
    assert out.status_code == 403
    assert c.get("/api/receipts?month=2026-10").status_code == 200  # still logged in
    assert ("-", "csrf-refused", False) in _audit(world["dsn"])
    assert ("kato", "csrf-refused", False) in _audit(world["dsn"])


def test_a_cross_site_json_post_is_refused(world: dict[str, Any]) -> None:
    r = world["client"].post("/api/login", json={"username": "kato", "password": PASSWORD},
                             headers={"Origin": "https://evil.example"})  # fmt: skip
    assert r.status_code == 403


def test_a_malformed_json_login_is_a_bad_request(world: dict[str, Any]) -> None:
    c = world["client"]
    r = c.post("/api/login", data="{not json", content_type="application/json")
    assert r.status_code == 400
    assert c.post("/api/login", json=["kato"]).status_code == 400


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/receipts?recipient=12%003&month=2026-10", {}),
        ("/receipts?institution=%00", {}),
        ("/api/receipts?month=2026-10", {"X-Real-IP": "not an address"}),
    ],
    ids=["nul-in-json-search", "nul-in-page-search", "bad-x-real-ip"],
)
def test_a_malformed_request_is_a_400_never_a_500(
    world: dict[str, Any], path: str, headers: dict[str, str]
) -> None:
    c = world["client"]
    _login(c, "kato")
    assert c.get(path, headers=headers).status_code == 400


def test_a_nul_in_a_login_form_is_a_400(world: dict[str, Any]) -> None:
    r = world["client"].post("/login", data={"username": "ka\0to", "password": "x"},
                             headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 400


@pytest.mark.parametrize(
    "body",
    [{"username": "ka\0to", "password": "x"}, {"username": "k" * 10_000, "password": "x"}],
    ids=["nul", "overlong"],
)
def test_a_malformed_json_login_is_refused_before_the_audit_log(
    world: dict[str, Any], body: dict[str, str]
) -> None:
    r = world["client"].post("/api/login", json=body)
    assert r.status_code == 400
    assert all(len(actor) <= 128 for actor, _, _ in _audit(world["dsn"]))
