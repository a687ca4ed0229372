"""The review's result and its files: JSON for machines, CSV (UTF-8 with BOM, for Excel in a
Japanese office), HTML that prints (Japanese and English labels), and a SHA-256 manifest signed
with `ssh-keygen -Y sign` that `verify_manifest` checks.

The verdict fails closed: INCOMPLETE when any scope could not be read completely, whatever
else was found; FINDINGS when an unsuppressed finding remains; PASS only otherwise.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ops.reviewlib.model import Finding, Scope

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
}


class ExceptionsError(Exception):
    pass


@dataclass(frozen=True)
class Exception_:
    finding_id: str
    reason: str
    approver: str
    expiry: dt.date


def parse_exceptions(data: bytes, source: str) -> list[Exception_]:
    text = data.decode("utf-8-sig")
    out, problems = [], []
    rows = list(csv.reader(io.StringIO(text)))
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
            problems.append(f"{where}: expiry {row[3].strip()!r} is not a date (YYYY-MM-DD)")
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
    before = {f["id"] for f in (previous or {}).get("findings", [])}
    now_ids = {f["id"] for f in open_}
    incomplete = [s for s in scopes if not s.complete]
    verdict = "INCOMPLETE" if incomplete else ("FINDINGS" if open_ else "PASS")
    per_system: dict[str, dict[str, Any]] = {}
    for s in scopes:
        per_system[s.system] = {
            "status": s.status,
            "population": s.population,
            "reason": s.reason,
            "findings": 0,
        }
    per_person: dict[str, int] = {}
    for row in open_:
        key = row["system"].split(":")[0]
        per_system.setdefault(key, {"status": "?", "population": 0, "reason": "", "findings": 0})
        per_system[key]["findings"] += 1
        per_person[row["account"]] = per_person.get(row["account"], 0) + 1
    return {
        "review_date": today.isoformat(),
        "verdict": verdict,
        "scopes": [asdict(s) | {"status": s.status} for s in scopes],
        "summary": {"per_system": per_system, "per_account": per_person},
        "findings": open_,
        "suppressed": suppressed,
        "expired_exceptions": expired,
        "diff": {
            "new": sorted(now_ids - before),
            "resolved": sorted(before - now_ids),
            "unchanged": sorted(now_ids & before),
        }
        if previous is not None
        else None,
        "signoff": {"reviewer": "", "date": "", "signature": ""},
    }


def to_csv(review: dict[str, Any]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        ["finding_id", "check", "severity", "system", "account", "evidence", "fix", "references"]
    )
    for f in review["findings"]:
        w.writerow(
            [
                f["id"],
                f["check"],
                f["severity"],
                f["system"],
                f["account"],
                f["evidence"],
                f["fix"],
                "; ".join(f["references"]),
            ]
        )
    return out.getvalue().encode("utf-8-sig")


def to_html(review: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(f['id'])}</td><td>{e(f['severity'])}</td><td>{e(f['system'])}</td>"
        f"<td>{e(f['account'])}</td><td>{e(f['evidence'])}</td><td>{e(f['fix'])}</td></tr>"
        for f in review["findings"]
    )
    scopes = "".join(
        f"<tr><td>{e(s['system'])}</td><td>{e(s['status'])}</td>"
        f"<td>{s['population']}</td><td>{e(s['reason'])}</td></tr>"
        for s in review["scopes"]
    )
    return f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>{e(LABELS["title"])}</title>
<style>body{{font-family:"Noto Sans CJK JP",sans-serif;font-size:10pt}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #999;padding:2px 4px}}
@media print{{tr{{page-break-inside:avoid}}}}</style></head><body>
<h1>{e(LABELS["title"])}</h1>
<p>{e(LABELS["verdict"])}: <b>{e(review["verdict"])}</b> ({e(review["review_date"])})</p>
<h2>{e(LABELS["scopes"])}</h2><table><tr><th>system</th><th>status</th><th>population</th>
<th>reason</th></tr>{scopes}</table>
<h2>{e(LABELS["findings"])}</h2><table><tr><th>ID</th><th>severity</th><th>system</th>
<th>account</th><th>evidence</th><th>fix</th></tr>{rows}</table>
<h2>{e(LABELS["signoff"])}</h2><p>氏名 / Name: ________ 日付 / Date: ________ 印 / Seal: ____</p>
</body></html>
"""


def write(review: dict[str, Any], out: Path, signing_key: Path | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "review.json").write_text(json.dumps(review, indent=2, ensure_ascii=False) + "\n")
    (out / "review.csv").write_bytes(to_csv(review))
    (out / "review.html").write_text(to_html(review))
    sums = "".join(f"{hashlib.sha256((out / n).read_bytes()).hexdigest()}  {n}\n" for n in FILES)
    (out / "SHA256SUMS").write_text(sums)
    paths = [out / n for n in (*FILES, "SHA256SUMS")]
    if signing_key is not None:
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-Y",
                "sign",
                "-f",
                str(signing_key),
                "-n",
                NAMESPACE,
                str(out / "SHA256SUMS"),
            ],
            check=True,
        )
        paths.append(out / "SHA256SUMS.sig")
    return paths


def verify_manifest(out: Path, allowed_signers: Path, signer: str) -> list[str]:
    """What is wrong with a written review; empty when every file and the signature hold."""
    problems = []
    sums, sig = out / "SHA256SUMS", out / "SHA256SUMS.sig"
    if not sums.exists() or not sig.exists():
        return [f"{out}: SHA256SUMS or its signature is missing"]
    with sums.open("rb") as stdin:
        proc = subprocess.run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(allowed_signers),
                "-I",
                signer,
                "-n",
                NAMESPACE,
                "-s",
                str(sig),
            ],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        problems.append(f"{sig}: signature does not verify")
    for line in sums.read_text().splitlines():
        digest, name = line.split("  ", 1)
        path = out / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: changed since it was signed")
    return problems
