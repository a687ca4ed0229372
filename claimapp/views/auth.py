"""Logging in and out: the form, and the same through JSON at /api/login."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request

from claimapp.accounts import audit, login, logout
from claimapp.views.context import COOKIE, address, conn, current_user, policy, wants_json

bp = Blueprint("auth", __name__)
# accounts.REFUSED for people: one answer for every refused login.
REFUSED_TEXT = (
    "ユーザー名またはパスワードが違うか、試行が続きすぎました。少し待ってからやり直してください。"
)


@bp.get("/login")
def login_form() -> Any:
    return render_template("login.html", error=None)


@bp.post("/login")
@bp.post("/api/login")
def do_login() -> Any:
    data: Any = request.form
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return jsonify(error="expected a JSON object with username and password"), 400
    username, password = str(data.get("username", "")), str(data.get("password", ""))
    # Bounded, so that nothing unbounded from a stranger reaches the audit log or argon2.
    if len(username) > 128 or len(password) > 1024 or "\0" in username + password:
        if wants_json():
            return jsonify(error="username or password malformed"), 400
        return render_template("login.html", error="入力が正しくありません"), 400
    token, reason = login(conn(), username, password, address(), policy())
    if token is None:
        if wants_json():
            return jsonify(error=reason), 401
        return render_template("login.html", error=REFUSED_TEXT, username=username), 401
    resp = jsonify(ok=True) if wants_json() else redirect("/receipts", 303)
    resp.set_cookie(
        COOKIE,
        token,
        max_age=policy().session_minutes * 60,
        httponly=True,
        secure=current_app.config["CLAIMAPP_SECURE_COOKIES"],
        samesite="Strict",
    )
    return resp


@bp.post("/logout")
def do_logout() -> Any:
    token = request.cookies.get(COOKIE)
    user = current_user()
    if token:
        logout(conn(), token)
    if user:
        audit(conn(), user.username, "logout", None, address(), True)
    resp = redirect("/login", 303)
    resp.delete_cookie(COOKIE)
    return resp
