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
from claimapp.uke import era_date
from claimapp.views.context import READ_RECEIPTS, address, conn, require

bp = Blueprint("receipts", __name__)

PAGE_SIZE = 50
MAX_PAGE = 200  # 10,000 rows: past that, a narrower search is the way
CRITERIA = ("recipient", "month", "institution")
PARTS = (("SY", "diagnoses"), ("SI", "procedures"), ("IY", "drugs"))
OUTCOMES = {"1": "継続", "2": "治癒", "3": "死亡", "4": "中止"}


@dataclass
class Search:
    criteria: dict[str, str]
    page: int
    rows: list[dict[str, Any]]
    more: bool
    capped: bool = False  # more rows than MAX_PAGE pages hold: narrow the search to see them


def search_query(
    recipient: str, month: dt.date | None, institution: str, page: int
) -> tuple[psycopg.sql.Composed, list[object]]:
    """One page of a search (and one row more, to tell whether another page follows). Each
    criterion has an index in the results' order (migration 0005) that also holds the ids, so
    the page's ids come from the index alone however deep the page, and only the page's own
    rows are read from the table."""
    clauses: list[str] = []
    params: list[object] = []
    if recipient:
        clauses.append("recipient_number = %s")
        params.append(recipient)
    if month:
        # A range of one month, not `=`: with `=` the planner drops care_month from the
        # order, and may walk the primary key backwards filtering on the month, which for
        # an old month reads every newer receipt first.
        clauses.append("care_month BETWEEN %s AND %s")
        params += (month, month)
    if institution:
        clauses.append("institution_code = %s")
        params.append(institution)
    query = psycopg.sql.SQL(
        "SELECT r.id, r.receipt_number, r.recipient_number, r.patient_name, r.care_month, "
        "r.institution_code, r.points FROM (SELECT id FROM receipts WHERE {} "
        "ORDER BY care_month DESC, id DESC LIMIT %s OFFSET %s) page "
        "JOIN receipts r ON r.id = page.id ORDER BY r.care_month DESC, r.id DESC"
    ).format(psycopg.sql.SQL(" AND ").join(psycopg.sql.SQL(c) for c in clauses))
    return query, [*params, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE]


def _search(user: User) -> Search:
    criteria = {k: request.args.get(k, "").strip() for k in CRITERIA}
    try:
        page = int(request.args.get("page", "1"))
        month = dt.date.fromisoformat(criteria["month"] + "-01") if criteria["month"] else None
    except ValueError:
        abort(400)
    if not 1 <= page <= MAX_PAGE:
        abort(400)
    if not (criteria["recipient"] or month or criteria["institution"]):
        return Search(criteria, page, [], False)
    query, params = search_query(criteria["recipient"], month, criteria["institution"], page)
    with conn().cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    target = " ".join(f"{k}={v}" for k, v in criteria.items() if v)
    audit(conn(), user.username, "search", f"{target} page={page}", address(), True)
    more = len(rows) > PAGE_SIZE
    return Search(
        criteria, page, rows[:PAGE_SIZE], more and page < MAX_PAGE, more and page == MAX_PAGE
    )


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
            "SELECT r.*, f.institution_name FROM receipts r "
            "JOIN claim_files f ON f.id = r.claim_file_id WHERE r.id = %s",
            (receipt_id,),
        ).fetchone()
    if row is None:
        abort(404)
    audit(conn(), user.username, "view", f"receipt {receipt_id}", address(), True)
    lines = row.pop("details")
    out = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}
    for record, key in PARTS:
        out[key] = [_detail(d["record"], d["code"], d["fields"])
                    for d in lines if d["record"] == record]  # fmt: skip
    return out


def _detail(record: str, code: str, fields: list[str]) -> dict[str, Any]:
    """A detail line with its fields named (claimapp/docs/uke-subset.md), beside the raw ones."""
    out: dict[str, Any] = {"code": code, "fields": fields}
    try:
        if record == "SY":  # start date, outcome, name (optional)
            out.update(start=era_date(fields[0], True).isoformat(),
                       outcome=OUTCOMES.get(fields[1], fields[1]),
                       name=fields[2] if len(fields) > 2 else "")  # fmt: skip
        else:  # SI, IY: care category, code, quantity, points, count
            category, _, quantity, points, count = fields
            out.update(category=category, quantity=quantity, points=int(points),
                       count=int(count))  # fmt: skip
    except (ValueError, IndexError):
        pass  # loaded before a rule existed: shown as stored
    return out


@bp.get("/receipts/<int:receipt_id>")
def receipt_page(receipt_id: int) -> Any:
    receipt = _one(require(READ_RECEIPTS), receipt_id)
    return render_template("receipt.html", r=receipt)


@bp.get("/api/receipts/<int:receipt_id>")
def receipt_json(receipt_id: int) -> Any:
    return jsonify(_one(require(READ_RECEIPTS), receipt_id))
