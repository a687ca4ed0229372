"""The caseworkers' web application and JSON API (served behind nginx with TLS).

    GET  /login, POST /login          log in (the form; JSON {"username", "password"} at /api/login)
    POST /logout
    GET  /receipts?recipient=&month=YYYY-MM&institution=&page=N   search (JSON at /api/...)
    GET  /receipts/<id>               one receipt with its diagnoses, procedures and drugs
    GET  /audit                       the audit log (auditors and admins only)

Caseworkers and supervisors read receipts; auditors and admins read the audit log. Every read
of personal data and every login is written to the audit log. Pages are templates
(claimapp/templates, autoescaped) extending one base page; views are blueprints
(claimapp/views). Every POST must come from a page of this site (views/context.py).
Configuration comes from the file and the environment (claimapp/settings.py), never from code.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, redirect, render_template
from psycopg import OperationalError
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from claimapp.accounts import Policy
from claimapp.settings import load as load_settings
from claimapp.views import audit, auth, receipts
from claimapp.views.context import COOKIE, current_user, install, wants_json

__all__ = ["COOKIE", "create_app"]

ROLES = {"caseworker": "ケースワーカー", "supervisor": "査察指導員", "auditor": "監査担当",
         "admin": "管理者"}  # fmt: skip
MESSAGES = {
    400: "入力が正しくありません",
    403: "この画面を見る権限がありません",
    404: "見つかりません",
    405: "この操作はできません",
    503: "データベースに接続できません。しばらくしてからもう一度お試しください",
}


def create_app(
    dsn: str | None = None, policy: Policy | None = None, secure_cookies: bool = True
) -> Flask:
    app = Flask(__name__)
    if dsn is None or policy is None:
        settings = load_settings()
        dsn = dsn if dsn is not None else settings.dsn
        policy = policy or Policy(
            settings.throttle_after, settings.throttle_max_minutes, settings.session_minutes
        )
    app.config.update(
        CLAIMAPP_DSN=dsn, CLAIMAPP_POLICY=policy, CLAIMAPP_SECURE_COOKIES=secure_cookies
    )
    install(app)
    for blueprint in (auth.bp, receipts.bp, audit.bp):
        app.register_blueprint(blueprint)
    app.jinja_env.globals["roles"] = ROLES

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Any:
        code = e.code or 500
        if code == 401:
            return (jsonify(error="log in first"), 401) if wants_json() else redirect("/login")
        if wants_json():
            return jsonify(error=e.description if code != 403 else "not allowed"), code
        current_user()  # the header shows who is logged in, if anyone
        return render_template("error.html", code=code,
                               message=MESSAGES.get(code, e.name)), code  # fmt: skip

    @app.errorhandler(OperationalError)
    def database_unavailable(e: OperationalError) -> Any:
        # The pool waited WAIT_SECONDS for a working connection: the database is down or out
        # of reach, which is worth a 503 and one line in the log, not a traceback.
        said = (str(e).splitlines() or [type(e).__name__])[0][:200]
        app.logger.error("database unavailable: %s", said)
        g.user = None  # the error page must not ask the database who is logged in
        return http_error(ServiceUnavailable())

    return app
