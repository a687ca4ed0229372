"""Receipts: the search (by recipient, care month and institution, one page at a time) and one
receipt with its diagnoses, procedures and drugs; as pages, and as JSON under /api/. Every
search and every receipt read is audited."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.rows
import psycopg.sql
from flask import Blueprint, abort, jsonify, render_template, request

from claimapp.accounts import User, audit
from claimapp.views.context import READ_RECEIPTS, address, conn, require

bp = Blueprint("receipts", __name__)

PAGE_SIZE = 50
CRITERIA = ("recipient", "month", "institution")
PARTS = (("SY", "diagnoses"), ("SI", "procedures"), ("IY", "drugs"))


@dataclass
class Search:
    criteria: dict[str, str]
    page: int
    rows: list[dict[str, Any]]
    more: bool


def _search(user: User) -> Search:
    criteria = {k: request.args.get(k, "").strip() for k in CRITERIA}
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        abort(400)
    if not 1 <= page <= 10_000:
        abort(400)
    clauses: list[str] = []
    params: list[object] = []
    if criteria["recipient"]:
        clauses.append("r.recipient_number = %s")
        params.append(criteria["recipient"])
    if criteria["month"]:
        try:
            params.append(dt.date.fromisoformat(criteria["month"] + "-01"))
        except ValueError:
            abort(400)
        clauses.append("r.care_month = %s")
    if criteria["institution"]:
        clauses.append("f.institution_code = %s")
        params.append(criteria["institution"])
    if not clauses:
        return Search(criteria, page, [], False)
    query = psycopg.sql.SQL(
        "SELECT r.id, r.receipt_number, r.recipient_number, r.patient_name, r.care_month, "
        "f.institution_code, r.points FROM receipts r JOIN claim_files f "
        "ON f.id = r.claim_file_id WHERE {} ORDER BY r.care_month DESC, r.id "
        "LIMIT %s OFFSET %s"
    ).format(psycopg.sql.SQL(" AND ").join(psycopg.sql.SQL(c) for c in clauses))
    with conn().cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(query, [*params, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE]).fetchall()
    target = " ".join(f"{k}={v}" for k, v in criteria.items() if v)
    audit(conn(), user.username, "search", f"{target} page={page}", address(), True)
    return Search(criteria, page, rows[:PAGE_SIZE], len(rows) > PAGE_SIZE)


@bp.get("/receipts")
def search_page() -> Any:
    user = require(READ_RECEIPTS)
    return render_template("receipts.html", search=_search(user))


@bp.get("/api/receipts")
def search_json() -> Any:
    found = _search(require(READ_RECEIPTS))
    return jsonify(
        receipts=[{**r, "care_month": r["care_month"].isoformat()} for r in found.rows],
        page=found.page,
        next_page=found.page + 1 if found.more else None,
    )


def _one(user: User, receipt_id: int) -> dict[str, Any]:
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
    for record, key in PARTS:
        out[key] = [
            {"code": d["code"], "fields": d["fields"]} for d in details if d["record"] == record
        ]
    return out


@bp.get("/receipts/<int:receipt_id>")
def receipt_page(receipt_id: int) -> Any:
    receipt = _one(require(READ_RECEIPTS), receipt_id)
    return render_template("receipt.html", r=receipt)


@bp.get("/api/receipts/<int:receipt_id>")
def receipt_json(receipt_id: int) -> Any:
    return jsonify(_one(require(READ_RECEIPTS), receipt_id))
