"""The review's result and its files: JSON for machines, CSV (UTF-8 with BOM, for Excel in a
Japanese office), HTML that prints (Japanese and English labels), and a SHA-256 manifest signed
with `ssh-keygen -Y sign` that `verify_manifest` checks.

The verdict fails closed: INCOMPLETE when any scope could not be read completely, whatever
else was found; FINDINGS when an unsuppressed finding remains; PASS only otherwise.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ops import manifest
from ops.reviewlib.inputs import InputError, decode, excerpt
from ops.reviewlib.model import Account, Finding, Scope

NAMESPACE = "claims-dc-access-review"
FILES = ("review.json", "review.csv", "review.html")
LABELS = {
    "title": "アクセス権限レビュー / Access review",
    "verdict": "判定 / Verdict",
    "scopes": "対象範囲 / Scopes",
    "findings": "指摘事項 / Findings",
    "suppressed": "例外承認済み / Suppressed by exception",
    "expired": "期限切れの例外 / Expired exceptions",
    "diff": "前回との差分 / Changes since the previous review",
    "signoff": "確認者署名 / Reviewer sign-off",
    "per_person": "職員別の集計 / Summary per person",
    "previous": "前回のレビュー / Previous review",
    "date": "実施日 / Review date",
    "roster": "職員名簿 / Staff roster",
    "rules": "判定の規則 / Rules applied",
    "certificates": "証明書でログインできる者 / Who opens which account with a certificate",
}
# How the review reads the roster's dates, printed in every report so no reader has to guess.
END_DATE_RULE = (
    "終了日は最終勤務日: 翌日から退職者として扱う / The end date is the last working day: "
    "from the next day the person is a leaver"
)


class ExceptionsError(Exception):
    """The exceptions register cannot be trusted as given (file, line and value named)."""


@dataclass(frozen=True)
class Exception_:
    finding_id: str
    reason: str
    approver: str
    expiry: dt.date


def parse_exceptions(data: bytes, source: str, encoding: str | None = None) -> list[Exception_]:
    try:
        rows = list(csv.reader(io.StringIO(decode(data, source, encoding).text)))
    except InputError as e:
        raise ExceptionsError("\n".join(e.problems)) from None
    except csv.Error as e:
        raise ExceptionsError(f"{source}: not a CSV file ({e})") from None
    out, problems = [], []
    for n, row in enumerate(rows, start=1):
        if not row or (n == 1 and row[0].strip() == "finding_id"):
            continue
        where = f"{source}:{n}"
        if len(row) != 4 or not all(c.strip() for c in row):
            problems.append(f"{where}: expected finding_id,reason,approver,expiry, all filled")
            continue
        try:
            expiry = dt.date.fromisoformat(row[3].strip())
        except ValueError:
            problems.append(f"{where}: expiry {excerpt(row[3].strip())} is not a date (YYYY-MM-DD)")
            continue
        out.append(Exception_(row[0].strip(), row[1].strip(), row[2].strip(), expiry))
    if problems:
        raise ExceptionsError("\n".join(problems))
    return out


def build(
    findings: list[Finding],
    scopes: list[Scope],
    *,
    today: dt.date,
    exceptions: tuple[Exception_, ...] | list[Exception_] = (),
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    active = {e.finding_id: e for e in exceptions if e.expiry >= today}
    expired = [asdict(e) | {"expiry": e.expiry.isoformat()} for e in exceptions if e.expiry < today]
    open_: list[dict[str, Any]] = []
    suppressed: list[dict[str, Any]] = []
    for f in findings:
        row = asdict(f) | {"id": f.id, "references": list(f.references)}
        if f.id in active:
            e = active[f.id]
            suppressed.append(
                row
                | {
                    "exception": {
                        "reason": e.reason,
                        "approver": e.approver,
                        "expiry": e.expiry.isoformat(),
                    }
                }
            )
        else:
            open_.append(row)
    before = {f["id"]: f for f in (previous or {}).get("findings", [])}
    now = {f["id"]: f for f in open_}
    incomplete = [s for s in scopes if not s.complete]
    verdict = "INCOMPLETE" if incomplete else ("FINDINGS" if open_ else "PASS")
    per_system: dict[str, dict[str, Any]] = {}
    for s in scopes:
        per_system[s.system] = {"status": s.status, "population": s.population, "findings": 0}
    per_person: dict[str, dict[str, Any]] = {}
    for row in open_:
        per_system.setdefault(row["system"], {"status": "?", "population": 0, "findings": 0})
        per_system[row["system"]]["findings"] += 1
        who = row["staff"] or "(no owner)"
        person = per_person.setdefault(who, {"findings": 0, "accounts": []})
        person["findings"] += 1
        account = f"{row['system']}/{row['account']}"
        if account not in person["accounts"]:
            person["accounts"].append(account)

    def brief(rows: dict[str, dict[str, Any]], ids: set[str]) -> list[dict[str, str]]:
        return [{k: rows[i][k] for k in ("id", "check", "system", "account")} for i in sorted(ids)]

    return {
        "review_date": today.isoformat(),
        "verdict": verdict,
        "scopes": [asdict(s) | {"status": s.status} for s in scopes],
        "summary": {"per_system": per_system, "per_person": per_person},
        "findings": open_,
        "suppressed": suppressed,
        "expired_exceptions": expired,
        "diff": {
            "previous": previous.get("review_date"),
            "new": brief(now, set(now) - set(before)),
            "resolved": brief(before, set(before) - set(now)),
            "unchanged": brief(now, set(now) & set(before)),
        }
        if previous is not None
        else None,
        "rules": {"end_date": END_DATE_RULE},
        "signoff": {"reviewer": "", "date": "", "signature": ""},
    }


def certificate_logins(accounts: list[Account]) -> list[dict[str, str]]:
    """Which certificate principals open which host account (AuthorizedPrincipalsFile)."""
    return [
        {"system": a.system, "account": a.name, "principals": ", ".join(a.attributes["principals"])}
        for a in sorted(accounts, key=lambda a: (a.system, a.name))
        if a.attributes.get("principals")
    ]


# OWASP's CSV injection rule: a cell a spreadsheet would take for a formula starts with one of
# these; it is written with a leading apostrophe, so Excel shows it as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """One CSV cell, safe to open in a spreadsheet."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(review: dict[str, Any]) -> bytes:
    """Open findings, then suppressed ones with their exception: one sheet for the auditor.
    Every cell goes through `cell`, whatever its source (account names, evidence, reasons)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["finding_id", "status", "check", "severity", "system", "account", "staff",
                "evidence", "fix", "references", "exception"])  # fmt: skip
    rows = [("open", f) for f in review["findings"]]
    rows += [("suppressed", f) for f in review["suppressed"]]
    for status, f in rows:
        x = f.get("exception")
        waiver = f"{x['reason']} ({x['approver']}, until {x['expiry']})" if x else ""
        w.writerow([cell(c) for c in (
            f["id"], status, f["check"], f["severity"], f["system"], f["account"],
            f["staff"] or "", f["evidence"], f["fix"], "; ".join(f["references"]), waiver,
        )])  # fmt: skip
    return out.getvalue().encode("utf-8-sig")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body or '<tr><td colspan=99>-</td></tr>'}</table>"


def to_html(review: dict[str, Any]) -> str:
    e = html.escape
    roster = review.get("roster") or {}
    summary = review["summary"]
    diff = review["diff"]
    sections = [
        (LABELS["scopes"], _table(
            ["system", "status", "population", "findings", "reason"],
            [[s["system"], s["status"], s["population"],
              summary["per_system"].get(s["system"], {}).get("findings", 0), s["reason"]]
             for s in review["scopes"]])),
        (LABELS["per_person"], _table(
            ["staff", "findings", "accounts"],
            [[who, p["findings"], ", ".join(p["accounts"])]
             for who, p in sorted(summary["per_person"].items())])),
        (LABELS["findings"], _table(
            ["ID", "severity", "system", "account", "staff", "evidence", "fix", "references"],
            [[f["id"], f["severity"], f["system"], f["account"], f["staff"] or "-",
              f["evidence"], f["fix"], "; ".join(f["references"])]
             for f in review["findings"]])),
        (LABELS["suppressed"], _table(
            ["ID", "system", "account", "reason", "approver", "expiry"],
            [[f["id"], f["system"], f["account"], f["exception"]["reason"],
              f["exception"]["approver"], f["exception"]["expiry"]]
             for f in review["suppressed"]])),
        (LABELS["expired"], _table(
            ["finding ID", "reason", "approver", "expired"],
            [[x["finding_id"], x["reason"], x["approver"], x["expiry"]]
             for x in review["expired_exceptions"]])),
        (LABELS["diff"], "<p>-</p>" if diff is None else
         f"<p>{e(LABELS['previous'])}: {e(str(diff['previous']))}</p>" + _table(
             ["change", "ID", "system", "account"],
             [[change, d["id"], d["system"], d["account"]]
              for change in ("new", "resolved", "unchanged") for d in diff[change]])),
    ]  # fmt: skip
    if review.get("certificate_logins"):
        sections.append((LABELS["certificates"], _table(
            ["system", "account", "principals"],
            [[c["system"], c["account"], c["principals"]]
             for c in review["certificate_logins"]])))  # fmt: skip
    body = "".join(f"<h2>{e(title)}</h2>{content}" for title, content in sections)
    return f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>{e(LABELS["title"])}</title>
<style>body{{font-family:"Noto Sans CJK JP",sans-serif;font-size:10pt}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #999;padding:2px 4px;
vertical-align:top}}th{{background:#eee}}@page{{size:A4 landscape;margin:12mm}}
@media print{{tr{{page-break-inside:avoid}}h2{{page-break-after:avoid}}}}</style></head><body>
<h1>{e(LABELS["title"])}</h1>
<p>{e(LABELS["verdict"])}: <b>{e(review["verdict"])}</b> &nbsp; {e(LABELS["date"])}:
{e(review["review_date"])} &nbsp; {e(LABELS["roster"])}: {e(str(roster.get("source", "-")))}
({roster.get("people", "-")} 名 / people, {roster.get("keys", "-")} 鍵 / keys)</p>
<p>{e(LABELS["rules"])}: {e(review.get("rules", {}).get("end_date", END_DATE_RULE))}</p>
{body}
<h2>{e(LABELS["signoff"])}</h2>
<table><tr><th>確認者 / Reviewer</th><th>日付 / Date</th><th>署名・印 / Signature</th></tr>
<tr><td>&nbsp;</td><td>&nbsp;</td><td>&nbsp;</td></tr>
<tr><th>承認者 / Approver</th><th>日付 / Date</th><th>署名・印 / Signature</th></tr>
<tr><td>&nbsp;</td><td>&nbsp;</td><td>&nbsp;</td></tr></table>
</body></html>
"""


def write(review: dict[str, Any], out: Path, signing_key: Path | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "review.json").write_text(json.dumps(review, indent=2, ensure_ascii=False) + "\n")
    (out / "review.csv").write_bytes(to_csv(review))
    (out / "review.html").write_text(to_html(review))
    paths = [out / n for n in FILES] + [manifest.write(out, FILES)]
    if signing_key is not None:
        paths.append(manifest.sign(out, signing_key, NAMESPACE))
    return paths


def verify_manifest(out: Path, allowed_signers: Path, signer: str) -> list[str]:
    """What is wrong with a written review; empty when every file and the signature hold."""
    return manifest.verify(out, allowed_signers, signer, NAMESPACE)
