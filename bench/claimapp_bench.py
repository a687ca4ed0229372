"""Claim application speed, each figure beside its anchor, on a private PostgreSQL 15.

ingest: a month of 20,000 receipts (20 institutions x 1,000 receipts, the generator's files,
about 120,000 diagnoses, procedures and drugs) through the intake: read, parse, validate, the
duplicate checks and COPY, one transaction per file. The anchor is bare COPY of the same rows,
parsed beforehand, in the same transactions. Prints receipts/s for both and the ratio.

search: 1,000,000 receipts (24 care months of 20,000 recipients at 1,000 institutions, made in
SQL), then each search kind through the application under gunicorn on loopback (HTTP, session
check, the pool, the query, the audit row, JSON) against the same SQL on one open connection.
Prints p50 and p95 in ms per kind, and the deepest page the application serves.

    python bench/claimapp_bench.py             # both
    python bench/claimapp_bench.py ingest      # one of them
    python bench/claimapp_bench.py search --queries 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from claimapp.accounts import create_user  # noqa: E402
from claimapp.generate import claim_file  # noqa: E402
from claimapp.intake import RECEIPT_COLUMNS, copy_rows, ingest, receipt_rows  # noqa: E402
from claimapp.uke import parse  # noqa: E402
from claimapp.views.receipts import MAX_PAGE, search_query  # noqa: E402
from tests.support.localpg import local_cluster  # noqa: E402
from tests.support.served import gunicorn  # noqa: E402

MONTH = dt.date(2026, 10, 1)
INSTITUTIONS, MONTHS, RECIPIENTS = 1000, 24, 20_000
FIRST_MONTH = dt.date(2024, 11, 1)
# Six lines, as the generator's receipts have on average: rows as wide as the intake's.
DETAILS = Jsonb(
    [{"record": "SY", "code": "8830052", "fields": ["5061001", "1", "かぜ症候群"]}] * 2
    + [{"record": "SI", "code": "111000110", "fields": ["11", "111000110", "1", "288", "1"]}] * 2
    + [{"record": "IY", "code": "620000001", "fields": ["21", "620000001", "3", "12", "5"]}] * 2
)


def _reset(owner: psycopg.Connection) -> None:
    owner.execute("TRUNCATE receipts, claim_files RESTART IDENTITY CASCADE")


def bench_ingest(dsns: dict[str, str]) -> None:
    files = [claim_file(seed, receipts=1000, month=MONTH, institution=f"{1000000 + seed:07d}")
             for seed in range(1, 21)]  # fmt: skip
    with psycopg.connect(dsns["owner"], autocommit=True) as owner, \
            psycopg.connect(dsns["app"], autocommit=True) as app, \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        _reset(owner)
        paths = []
        for i, data in enumerate(files):
            paths.append(Path(tmp) / f"{1000000 + i:07d}.UKE")
            paths[-1].write_bytes(data)
        started = time.perf_counter()
        for path in paths:
            assert ingest(path, app, Path(tmp) / "q", Path(tmp) / "p").loaded
        ours = time.perf_counter() - started
        # The anchor: the same rows, parsed and built before the clock starts.
        claims = [parse(d) for d in files]
        rows = [list(receipt_rows(c, n + 1)) for n, c in enumerate(claims)]
        _reset(owner)
        started = time.perf_counter()
        for n, (claim, receipts) in enumerate(zip(claims, rows, strict=True)):
            with app.transaction(), app.cursor() as cur:
                cur.execute(
                    "INSERT INTO claim_files (id, sha256, file_name, payer_org, prefecture, "
                    "institution_code, institution_name, billing_month, receipt_count, "
                    "total_points) VALUES (%s, %s, 'x', '1', '40', %s, 'x', %s, %s, %s)",
                    (n + 1, claim.sha256, claim.institution_code, claim.billing_month,
                     len(claim.receipts), claim.total_points),
                )  # fmt: skip
                copy_rows(cur, "receipts", RECEIPT_COLUMNS, receipts)
        anchor = time.perf_counter() - started
    receipts = sum(len(c.receipts) for c in claims)
    details = sum(len(r.diagnoses) + len(r.procedures) + len(r.drugs)
                  for c in claims for r in c.receipts)  # fmt: skip
    print(
        f"ingest {receipts:,} receipts ({details:,} details, {len(files)} files): "
        f"intake {receipts / ours:,.0f} receipts/s ({ours:.2f} s); bare COPY of the parsed rows "
        f"{receipts / anchor:,.0f} receipts/s ({anchor:.2f} s); intake/COPY time "
        f"x{ours / anchor:.2f}",
        flush=True,
    )


def _fill(owner: psycopg.Connection) -> int:
    """A million receipts, one claim file per institution and month, loaded month by month as
    the intake loads them (ids grow with the month); recipients spread over institutions and
    months."""
    _reset(owner)
    owner.execute(
        "INSERT INTO claim_files (id, sha256, file_name, payer_org, prefecture, "
        "institution_code, institution_name, billing_month, receipt_count, total_points) "
        "SELECT (i - 1) * %(months)s + m, lpad(to_hex((i - 1) * %(months)s + m), 64, '0'), "
        "'bench', '1', '40', '3' || lpad(i::text, 6, '0'), 'bench', "
        "(%(first)s::date + make_interval(months => m - 1))::date, 0, 0 "
        "FROM generate_series(1, %(institutions)s) i, generate_series(1, %(months)s) m",
        {"months": MONTHS, "institutions": INSTITUTIONS, "first": FIRST_MONTH},
    )
    files = INSTITUTIONS * MONTHS
    owner.execute(
        "INSERT INTO receipts (claim_file_id, institution_code, receipt_number, receipt_type, "
        "care_month, patient_name, sex, birth_date, payer_number, recipient_number, days, "
        "points, details) SELECT f.id, f.institution_code, 1 + (g - 1) / %(files)s, '1112', "
        "f.billing_month, '福祉　花子', '2', date '1950-01-01', '12400001', "
        "'1' || lpad(((g::bigint * 7919) %% %(recipients)s)::text, 6, '0'), 3, 1000, "
        "%(details)s "
        "FROM generate_series(1, %(total)s) g JOIN claim_files f ON f.id = 1 + (g - 1) %% "
        "%(files)s ORDER BY f.billing_month, f.id, g",
        {"files": files, "recipients": RECIPIENTS, "total": 1_000_000, "details": DETAILS},
    )
    owner.execute("VACUUM ANALYZE receipts")
    owner.execute("VACUUM ANALYZE claim_files")
    row = owner.execute("SELECT count(*) FROM receipts").fetchone()
    return int(row[0]) if row else 0


def _pct(xs: list[float], p: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1]


class Client:
    """HTTP/1.1 to the application on loopback, with the session cookie of one login."""

    def __init__(self, base: str) -> None:
        self.host, self.port = urlsplit(base).hostname or "", urlsplit(base).port or 80
        self.cookie = ""

    def request(self, method: str, path: str, body: dict[str, str] | None = None) -> bytes:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            headers = {"Cookie": self.cookie} if self.cookie else {}
            if body is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, json.dumps(body) if body else None, headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status}")
            cookie = resp.getheader("Set-Cookie")
            if cookie:
                self.cookie = cookie.split(";", 1)[0]
            return data
        finally:
            conn.close()


def bench_search(dsns: dict[str, str], queries: int) -> None:
    rng = random.Random(5)  # noqa: S311 - reproducible fake data
    with psycopg.connect(dsns["owner"], autocommit=True) as owner:
        started = time.perf_counter()
        total = _fill(owner)
        load = time.perf_counter() - started
        password = secrets.token_urlsafe(18)  # a throwaway account: made up for this run
        create_user(owner, "bench.user", "caseworker", password)
    print(f"search: {total:,} receipts made in {load:.1f} s", file=sys.stderr, flush=True)

    def recipient() -> str:
        return f"1{rng.randrange(RECIPIENTS):06d}"

    def month() -> dt.date:
        m = FIRST_MONTH.month - 1 + rng.randrange(MONTHS)
        return dt.date(FIRST_MONTH.year + m // 12, m % 12 + 1, 1)

    def institution() -> str:
        return f"3{rng.randrange(1, INSTITUTIONS + 1):06d}"

    kinds: dict[str, Callable[[], tuple[str, dt.date | None, str, int]]] = {
        "recipient+month": lambda: (recipient(), month(), "", 1),
        "recipient": lambda: (recipient(), None, "", 1),
        "month": lambda: ("", month(), "", 1),
        "institution": lambda: ("", None, institution(), 1),
        "institution+month": lambda: ("", month(), institution(), 1),
        f"month, page {MAX_PAGE}": lambda: ("", month(), "", MAX_PAGE),
    }
    with tempfile.TemporaryDirectory() as tmp, gunicorn(dsns["app"], Path(tmp)) as base, \
            psycopg.connect(dsns["app"], autocommit=True) as bare:  # fmt: skip
        client = Client(base)
        client.request("POST", "/api/login", {"username": "bench.user", "password": password})
        print(f"{'search':22} {'app p50':>9} {'app p95':>9} {'SQL p50':>9} {'SQL p95':>9}  rows")
        for kind, make in kinds.items():
            sample = [make() for _ in range(queries)]
            app_ms, sql_ms, rows = [], [], 0
            for rec, mon, inst, page in sample:
                args = {"recipient": rec, "month": f"{mon:%Y-%m}" if mon else "",
                        "institution": inst, "page": str(page)}  # fmt: skip
                started = time.perf_counter()
                body = client.request("GET", "/api/receipts?" + urlencode(args))
                app_ms.append((time.perf_counter() - started) * 1000)
                rows += len(json.loads(body)["receipts"])
                query, params = search_query(rec, mon, inst, page)
                started = time.perf_counter()
                bare.execute(query, params).fetchall()
                sql_ms.append((time.perf_counter() - started) * 1000)
            print(
                f"{kind:22} {_pct(app_ms, 50):7.1f}ms {_pct(app_ms, 95):7.1f}ms "
                f"{_pct(sql_ms, 50):7.2f}ms {_pct(sql_ms, 95):7.2f}ms  {rows / queries:.0f}",
                flush=True,
            )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python bench/claimapp_bench.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("which", nargs="*", help="ingest, search or both (the default)")
    p.add_argument("--queries", type=int, default=200, help="per search kind (default 200)")
    args = p.parse_args(argv)
    which = set(args.which) or {"ingest", "search"}
    if which - {"ingest", "search"}:
        p.error(f"unknown: {', '.join(sorted(which - {'ingest', 'search'}))}")
    with local_cluster() as dsns:
        if "ingest" in which:
            bench_ingest(dsns)
        if "search" in which:
            bench_search(dsns, args.queries)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
