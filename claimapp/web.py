"""The caseworkers' web application and JSON API (served behind nginx with TLS).

    GET  /login, POST /login          log in (form, or JSON {"username", "password"})
    POST /logout
    GET  /receipts?recipient=&month=YYYY-MM&institution=      search (HTML; JSON at /api/...)
    GET  /receipts/<id>               one receipt with its diagnoses, procedures and drugs
    GET  /audit                       the audit log (auditors and admins only)

Caseworkers and supervisors read receipts; auditors and admins read the audit log. Every read
of personal data and every login is written to the audit log. Configuration comes from the
file and the environment (claimapp/settings.py), never from code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import psycopg.sql
from flask import Flask, Response, abort, g, jsonify, redirect, render_template_string, request

from claimapp.accounts import Policy, User, audit, login, logout, session_user
from claimapp.settings import load as load_settings

COOKIE = "claimapp_session"
READ_RECEIPTS = ("caseworker", "supervisor")
READ_AUDIT = ("auditor", "admin")
PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{{ title }}</title>
</head><body><h1>{{ title }}</h1>{% if user %}<p>{{ user.username }} ({{ user.role }})
<form method="post" action="/logout"><button>ログアウト / log out</button></form></p>{% endif %}
{{ body }}</body></html>"""
LOGIN = """<form method="post" action="/login"><label>ユーザー名 <input name="username"></label>
<label>パスワード <input name="password" type="password"></label><button>ログイン</button></form>
{% if error %}<p role="alert">{{ error }}</p>{% endif %}"""
RESULTS = """<form><input name="recipient" placeholder="受給者番号" value="{{ q.recipient }}">
<input name="month" placeholder="YYYY-MM" value="{{ q.month }}">
<input name="institution" placeholder="医療機関コード" value="{{ q.institution }}">
<button>検索 / search</button></form><table><tr><th>受給者番号</th><th>氏名</th><th>診療月</th>
<th>医療機関</th><th>点数</th></tr>{% for r in rows %}<tr><td>{{ r.recipient_number }}</td>
<td><a href="/receipts/{{ r.id }}">{{ r.patient_name }}</a></td><td>{{ r.care_month }}</td>
<td>{{ r.institution_code }}</td><td>{{ r.points }}</td></tr>{% endfor %}</table>"""


def create_app(
    dsn: str | None = None, policy: Policy | None = None, secure_cookies: bool = True
) -> Flask:
    app = Flask(__name__)
    if dsn is None or policy is None:
        settings = load_settings()
        dsn = dsn if dsn is not None else settings.dsn
        policy = policy or Policy(
            settings.lockout_failures, settings.lockout_minutes, settings.session_minutes
        )

    def conn() -> psycopg.Connection:
        if "db" not in g:
            g.db = psycopg.connect(dsn, autocommit=True)
        return g.db  # type: ignore[no-any-return]

    @app.teardown_appcontext
    def close(_: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            db.close()

    def address() -> str | None:
        # nginx in front sets X-Real-IP; directly, the peer address is the client.
        return request.headers.get("X-Real-IP") or request.remote_addr

    def wants_json() -> bool:
        return request.path.startswith("/api/") or request.is_json

    def current() -> User | None:
        return session_user(conn(), request.cookies.get(COOKIE))

    def require(roles: tuple[str, ...]) -> User:
        user = current()
        if user is None:
            abort(401)
        if user.role not in roles:
            audit(conn(), user.username, "denied", request.path, address(), False)
            abort(403)
        return user

    def page(title: str, body: str, user: User | None, status: int = 200, **ctx: Any) -> Response:
        inner = render_template_string(body, **ctx)
        html = render_template_string(PAGE, title=title, body=inner, user=user)
        return Response(html, status=status, mimetype="text/html")

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Cache-Control"] = "no-store"  # personal data never lands in a cache
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Content-Security-Policy"] = "default-src 'self'"
        resp.headers["X-Frame-Options"] = "DENY"
        return resp

    @app.errorhandler(401)
    def unauthorized(_: Exception) -> Any:
        if wants_json():
            return jsonify(error="log in first"), 401
        return redirect("/login")

    @app.errorhandler(403)
    def forbidden(_: Exception) -> Any:
        return (
            (jsonify(error="your role may not see this"), 403)
            if wants_json()
            else page(
                "403",
                "<p>この画面を見る権限がありません / your role may not see this</p>",
                current(),
                403,
            )
        )

    @app.get("/login")
    def login_form() -> Response:
        return page("ログイン / log in", LOGIN, None, error=None)

    @app.post("/login")
    @app.post("/api/login")
    def do_login() -> Any:
        data = request.get_json(silent=True) or request.form
        token, reason = login(
            conn(), str(data.get("username", "")), str(data.get("password", "")), address(), policy
        )
        if token is None:
            if wants_json():
                return jsonify(error=reason), 401
            return page("ログイン / log in", LOGIN, None, 401, error=reason)
        resp = jsonify(ok=True) if wants_json() else redirect("/receipts")
        resp.set_cookie(
            COOKIE,
            token,
            max_age=policy.session_minutes * 60,
            httponly=True,
            secure=secure_cookies,
            samesite="Strict",
        )
        return resp

    @app.post("/logout")
    def do_logout() -> Any:
        token = request.cookies.get(COOKIE)
        user = current()
        if token:
            logout(conn(), token)
        if user:
            audit(conn(), user.username, "logout", None, address(), True)
        resp = redirect("/login")
        resp.delete_cookie(COOKIE)
        return resp

    def search_rows(user: User) -> tuple[dict[str, str], list[dict[str, Any]]]:
        q = {k: request.args.get(k, "").strip() for k in ("recipient", "month", "institution")}
        clauses: list[str] = []
        params: list[object] = []
        if q["recipient"]:
            clauses.append("r.recipient_number = %s")
            params.append(q["recipient"])
        if q["month"]:
            try:
                params.append(dt.date.fromisoformat(q["month"] + "-01"))
            except ValueError:
                abort(400)
            clauses.append("r.care_month = %s")
        if q["institution"]:
            clauses.append("f.institution_code = %s")
            params.append(q["institution"])
        rows: list[dict[str, Any]] = []
        if clauses:
            query = psycopg.sql.SQL(
                "SELECT r.id, r.recipient_number, r.patient_name, r.care_month, "
                "f.institution_code, r.points FROM receipts r JOIN claim_files f "
                "ON f.id = r.claim_file_id WHERE {} ORDER BY r.care_month DESC, r.id LIMIT 200"
            ).format(psycopg.sql.SQL(" AND ").join(psycopg.sql.SQL(c) for c in clauses))
            with conn().cursor(row_factory=psycopg.rows.dict_row) as cur:
                rows = cur.execute(query, params).fetchall()
            audit(
                conn(),
                user.username,
                "search",
                " ".join(f"{k}={v}" for k, v in q.items() if v),
                address(),
                True,
            )
        return q, rows

    @app.get("/receipts")
    def receipts_html() -> Response:
        user = require(READ_RECEIPTS)
        q, rows = search_rows(user)
        return page("レセプト検索 / receipts", RESULTS, user, q=q, rows=rows)

    @app.get("/api/receipts")
    def receipts_json() -> Any:
        user = require(READ_RECEIPTS)
        _, rows = search_rows(user)
        return jsonify(receipts=[{**r, "care_month": r["care_month"].isoformat()} for r in rows])

    def one_receipt(user: User, receipt_id: int) -> dict[str, Any]:
        with conn().cursor(row_factory=psycopg.rows.dict_row) as cur:
            row = cur.execute(
                "SELECT r.*, f.institution_code, f.institution_name FROM receipts r "
                "JOIN claim_files f ON f.id = r.claim_file_id WHERE r.id = %s",
                (receipt_id,),
            ).fetchone()
            if row is None:
                abort(404)
            details = cur.execute("SELECT record, code, fields FROM receipt_details "
                                  "WHERE receipt_id = %s ORDER BY position",
                                  (receipt_id,)).fetchall()  # fmt: skip
        audit(conn(), user.username, "view", f"receipt {receipt_id}", address(), True)
        out = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}
        for record, key in (("SY", "diagnoses"), ("SI", "procedures"), ("IY", "drugs")):
            out[key] = [
                {"code": d["code"], "fields": d["fields"]} for d in details if d["record"] == record
            ]
        return out

    @app.get("/receipts/<int:receipt_id>")
    def receipt_html(receipt_id: int) -> Response:
        user = require(READ_RECEIPTS)
        r = one_receipt(user, receipt_id)
        body = (
            "<dl>{% for k in keys %}<dt>{{ k }}</dt><dd>{{ r[k] }}</dd>{% endfor %}</dl>"
            "{% for part in parts %}<h2>{{ part }}</h2><ul>{% for d in r[part] %}"
            "<li>{{ d.code }} {{ d.fields|join(', ') }}</li>{% endfor %}</ul>{% endfor %}"
        )
        keys = [k for k in r if k not in ("diagnoses", "procedures", "drugs")]
        return page(
            f"レセプト {r['receipt_number']}",
            body,
            user,
            r=r,
            keys=keys,
            parts=("diagnoses", "procedures", "drugs"),
        )

    @app.get("/api/receipts/<int:receipt_id>")
    def receipt_json(receipt_id: int) -> Any:
        return jsonify(one_receipt(require(READ_RECEIPTS), receipt_id))

    @app.get("/audit")
    @app.get("/api/audit")
    def audit_log() -> Any:
        user = require(READ_AUDIT)
        with conn().cursor(row_factory=psycopg.rows.dict_row) as cur:
            rows = cur.execute(
                "SELECT at, actor, action, target, host(address) AS address, "
                "success FROM audit_log ORDER BY id DESC LIMIT 500"
            ).fetchall()
        audit(conn(), user.username, "audit-read", None, address(), True)
        if wants_json():
            return jsonify(entries=[{**r, "at": r["at"].isoformat()} for r in rows])
        body = (
            "<table><tr><th>at</th><th>actor</th><th>action</th><th>target</th>"
            "<th>address</th><th>ok</th></tr>{% for e in rows %}<tr><td>{{ e.at }}</td>"
            "<td>{{ e.actor }}</td><td>{{ e.action }}</td><td>{{ e.target }}</td>"
            "<td>{{ e.address }}</td><td>{{ e.success }}</td></tr>{% endfor %}</table>"
        )
        return page("監査ログ / audit log", body, user, rows=rows)

    return app
