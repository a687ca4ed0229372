"""The audit log, newest first, for auditors and admins (page, and JSON at /api/audit)."""

from __future__ import annotations

from typing import Any

import psycopg.rows
from flask import Blueprint, jsonify, render_template

from claimapp.accounts import audit
from claimapp.views.context import READ_AUDIT, address, conn, require, wants_json

bp = Blueprint("audit", __name__)


@bp.get("/audit")
@bp.get("/api/audit")
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
    return render_template("audit.html", rows=rows)
