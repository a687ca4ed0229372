"""Claim application speed, each figure beside its anchor, on a private PostgreSQL 15.

ingest: a synthetic month of 20,000 receipts (20 institutions x 1,000) through the intake
(parse, validate, one transaction per file) against PostgreSQL's COPY of the same rows with
no validation at all: receipts per second for both, and the ratio.

search: 1,000,000 receipts loaded (COPY), then searches by recipient and month through the web
application (login, query, audit row, JSON) against the bare SQL query: p50 and p95 in ms.

    python bench/claimapp_bench.py             # both
    python bench/claimapp_bench.py ingest      # one of them
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from claimapp.accounts import Policy, create_user
from claimapp.generate import claim_file
from claimapp.intake import ingest
from claimapp.uke import parse
from claimapp.web import create_app
from tests.support.localpg import local_cluster

MONTH = dt.date(2026, 10, 1)


def _reset(owner: psycopg.Connection) -> None:
    owner.execute("TRUNCATE receipt_details, receipts, claim_files RESTART IDENTITY CASCADE")


def bench_ingest(dsns: dict[str, str]) -> None:
    files = [claim_file(seed, receipts=1000, month=MONTH, institution=f"{1000000 + seed:07d}")
             for seed in range(1, 21)]  # fmt: skip
    with psycopg.connect(dsns["owner"], autocommit=True) as owner, \
            psycopg.connect(dsns["app"], autocommit=True) as app, \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        _reset(owner)
        started = time.perf_counter()
        for i, data in enumerate(files):
            path = Path(tmp) / f"{i}.UKE"
            path.write_bytes(data)
            assert ingest(path, app, Path(tmp) / "q", Path(tmp) / "p").loaded
        ours = time.perf_counter() - started
        claims = [parse(d) for d in files]  # the anchor gets rows already parsed: no work left
        _reset(owner)
        started = time.perf_counter()
        with app.transaction(), app.cursor() as cur:
            for n, claim in enumerate(claims, 1):
                cur.execute(
                    "INSERT INTO claim_files (sha256, file_name, payer_org, prefecture, "
                    "institution_code, institution_name, billing_month, receipt_count, "
                    "total_points) VALUES (%s, 'x', '1', '40', %s, 'x', %s, %s, %s)",
                    (
                        claim.sha256,
                        claim.institution_code,
                        claim.billing_month,
                        len(claim.receipts),
                        claim.total_points,
                    ),
                )
                with cur.copy(
                    "COPY receipts (claim_file_id, receipt_number, receipt_type, "
                    "care_month, patient_name, sex, birth_date, payer_number, "
                    "recipient_number, days, points) FROM STDIN"
                ) as copy:
                    for r in claim.receipts:
                        copy.write_row(
                            (
                                n,
                                r.number,
                                r.receipt_type,
                                r.care_month,
                                r.patient_name,
                                r.sex,
                                r.birth_date,
                                r.payer_number,
                                r.recipient_number,
                                r.days,
                                r.points,
                            )
                        )
        anchor = time.perf_counter() - started
    receipts = sum(len(c.receipts) for c in claims)
    print(
        f"ingest {receipts} receipts: intake {receipts / ours:,.0f}/s ({ours:.2f}s), "
        f"COPY without validation or details {receipts / anchor:,.0f}/s ({anchor:.2f}s); "
        f"intake takes x{ours / anchor:.1f} the anchor's time"
    )


def bench_search(dsns: dict[str, str], total: int = 1_000_000, queries: int = 200) -> None:
    rng = random.Random(5)  # noqa: S311 - reproducible fake data
    recipients = [f"{rng.randrange(10**6, 10**7):07d}" for _ in range(200_000)]
    months = [dt.date(2025, m, 1) for m in range(1, 13)] + [
        dt.date(2026, m, 1) for m in range(1, 11)
    ]
    with psycopg.connect(dsns["owner"], autocommit=True) as owner:
        _reset(owner)
        started = time.perf_counter()
        per_file = 20_000
        with owner.cursor() as cur:
            for f in range(total // per_file):
                cur.execute(
                    "INSERT INTO claim_files (sha256, file_name, payer_org, prefecture, "
                    "institution_code, institution_name, billing_month, receipt_count, "
                    "total_points) VALUES (%s, 'bench', '1', '40', %s, 'x', %s, %s, 0)",
                    (f"{f:064d}", f"{2000000 + f:07d}", MONTH, per_file),
                )
                with cur.copy(
                    "COPY receipts (claim_file_id, receipt_number, receipt_type, "
                    "care_month, patient_name, sex, birth_date, payer_number, "
                    "recipient_number, days, points) FROM STDIN"
                ) as copy:
                    for n in range(1, per_file + 1):
                        copy.write_row(
                            (
                                f + 1,
                                n,
                                "1112",
                                rng.choice(months),
                                "福祉　花子",
                                "2",
                                dt.date(1950, 1, 1),
                                "12400001",
                                rng.choice(recipients),
                                3,
                                1000,
                            )
                        )
        owner.execute("ANALYZE receipts")
        load = time.perf_counter() - started
        password = secrets.token_urlsafe(18)  # a throwaway account: made up for this run
        create_user(owner, "bench.user", "caseworker", password)
    print(f"loaded {total:,} receipts in {load:.1f}s")
    sample = [(rng.choice(recipients), rng.choice(months)) for _ in range(queries)]
    app = create_app(dsns["app"], Policy(), secure_cookies=False).test_client()
    app.post("/api/login", json={"username": "bench.user", "password": password})
    ours = []
    for recipient, month in sample:
        started = time.perf_counter()
        r = app.get(f"/api/receipts?recipient={recipient}&month={month:%Y-%m}")
        ours.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200
    bare = []
    with psycopg.connect(dsns["app"], autocommit=True) as conn:
        for recipient, month in sample:
            started = time.perf_counter()
            conn.execute(
                "SELECT r.id, r.recipient_number, r.patient_name, r.care_month, "
                "f.institution_code, r.points FROM receipts r JOIN claim_files f ON "
                "f.id = r.claim_file_id WHERE r.recipient_number = %s AND "
                "r.care_month = %s ORDER BY r.care_month DESC, r.id LIMIT 200",
                (recipient, month),
            ).fetchall()
            bare.append((time.perf_counter() - started) * 1000)

    def pct(xs: list[float], p: float) -> float:
        return statistics.quantiles(xs, n=100)[int(p) - 1]

    print(
        f"search with {total:,} receipts, {queries} queries: app p50 {pct(ours, 50):.1f} ms, "
        f"p95 {pct(ours, 95):.1f} ms; bare SQL p50 {pct(bare, 50):.2f} ms, "
        f"p95 {pct(bare, 95):.2f} ms; app/SQL at p50 x{pct(ours, 50) / pct(bare, 50):.1f}"
    )


def main(argv: list[str]) -> int:
    which = set(argv) or {"ingest", "search"}
    with local_cluster() as dsns:
        if "ingest" in which:
            bench_ingest(dsns)
        if "search" in which:
            bench_search(dsns)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
