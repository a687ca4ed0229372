"""claims-dc-backup against restic 0.14 (Debian's package), same data, same machine, one run.

Data: a synthetic claims database dump (PostgreSQL COPY text of receipts, >= 1 GiB by
default) plus a directory of claim files (Shift_JIS UKE-like text). The "1% change" is what a
claims database sees in a day: new receipts appended (0.8% of the dump) and corrections to the
most recent rows (0.2%), plus 1% new claim files.

Measured for both tools, on a local directory and on a moto S3 server (a separate process on
loopback): initial backup time, incremental backup time after the 1% change, repository size,
full restore time. Printed as restic / claims-dc (above 1: claims-dc is faster or smaller),
for restic run twice: without its cache (--no-cache) and with it (RESTIC_CACHE_DIR, filled by
its own backups), as a user runs it by default.

restic has no Object Lock: its bucket is an ordinary versioned one, while claims-dc writes
every object with a COMPLIANCE retain-until into a locked bucket (more work, not less).

Memory: a separate process backs up one --rss-gib GiB file (2 by default) into a local
repository and prints its peak resident set (ru_maxrss); files are chunked a window at a time,
so it must stay at or under 256 MiB whatever the file's size.

    python bench/backup_vs_restic.py                 # 1 GiB dump, local and moto
    python bench/backup_vs_restic.py --gib 0.2 --only local
    python bench/backup_vs_restic.py --only rss      # peak RSS only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from motoproc import moto_server  # noqa: E402

from ops.backuplib import archiver, crypto  # noqa: E402
from ops.backuplib.repository import KeyOptions, Repository  # noqa: E402
from ops.backuplib.sources import SourceSpec  # noqa: E402
from ops.backuplib.storage import LocalStorage, S3Storage  # noqa: E402

NAMES = [
    "山田太郎",
    "佐藤花子",
    "鈴木一郎",
    "高橋美咲",
    "田中健太",
    "伊藤直子",
    "渡辺誠",
    "中村陽子",
]
REGION = "ap-northeast-1"


def progress(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def receipt_line(rng: random.Random, rid: int) -> str:
    return (
        f"{rid}\t{rng.randint(1, 999999):06d}\t{rng.choice(NAMES)}\t"
        f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}\t{rng.randint(1, 99)}\t"
        f"{rng.randint(100, 2_000_000)}\t{rng.randint(0, 30)}\t"
        f"{rng.getrandbits(64):016x}\tIY{rng.randint(1000000, 9999999)}\n"
    )


def make_data(root: Path, gib: float) -> dict[str, Any]:
    rng = random.Random(20261126)  # noqa: S311 - synthetic data
    root.mkdir(parents=True)
    dump = root / "claims.sql"
    target = int(gib * (1 << 30))
    rid = 0
    with dump.open("w", encoding="utf-8") as f:
        f.write(
            "COPY public.receipts (id, recipient, name, month, institution, points, days, "
            "hash, code) FROM stdin;\n"
        )
        written = 0
        while written < target:
            block = "".join(receipt_line(rng, rid + i) for i in range(10_000))
            rid += 10_000
            f.write(block)
            written += len(block.encode())
    files = root / "claim-files"
    files.mkdir()
    for i in range(100):
        lines = "".join(
            f"RE,{i},{j},{rng.choice(NAMES)},{rng.randint(1, 10**7)}\n" for j in range(20_000)
        )
        (files / f"2026-{i:03d}.UKE").write_bytes(lines.encode("shift_jis"))
    return {"rows": rid, "dump": dump, "files": files}


def change_one_percent(data: dict[str, Any]) -> None:
    """0.8% new receipts appended, 0.2% of rows corrected near the end, 1% new claim files."""
    rng = random.Random(7)  # noqa: S311 - synthetic data
    dump: Path = data["dump"]
    size = dump.stat().st_size
    with dump.open("r+b") as f:
        region = int(size * 0.002)
        f.seek(size - region - 1_000_000)
        chunk = bytearray(f.read(region))
        for i in range(0, len(chunk) - 8, 97):
            chunk[i] = ord("0") + rng.randint(0, 9)
        f.seek(size - region - 1_000_000)
        f.write(chunk)
    with dump.open("a", encoding="utf-8") as f:
        appended = 0
        rid = data["rows"]
        while appended < size * 0.008:
            block = "".join(receipt_line(rng, rid + i) for i in range(10_000))
            rid += 10_000
            f.write(block)
            appended += len(block)
    for i in range(100, 101):
        (data["files"] / f"2026-{i:03d}.UKE").write_bytes(os.urandom(16) * 20_000)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bucket_size(s3: Any, bucket: str) -> int:
    total = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        total += sum(int(v["Size"]) for v in page.get("Versions", []))
    return total


def restic(env: dict[str, str], *args: str) -> None:
    """restic without its local cache unless RESTIC_CACHE_DIR is set: then with it, as a user
    runs it by default (the cache holds the repository's metadata between runs)."""
    cache = [] if env.get("RESTIC_CACHE_DIR") else ["--no-cache"]
    subprocess.run(
        ["restic", "--quiet", *cache, *args], env=env, check=True, stdout=subprocess.DEVNULL
    )


def run_ours(
    storage: Any,
    keys: KeyOptions,
    data: dict[str, Any],
    out: Path,
    size: Callable[[], int],
    change: Callable[[], None],
) -> dict[str, float]:
    repo = Repository.init(storage, keys, lock_days=1)
    specs = [SourceSpec("bench", "files", paths=[str(data["dump"].parent)])]
    initial, _ = timed(lambda: archiver.backup(repo, specs, quiet=True))
    change()
    incremental, _ = timed(lambda: archiver.backup(repo, specs, quiet=True))
    stored = size()
    restore, _ = timed(lambda: archiver.restore(repo, out, quiet=True))
    return {"initial": initial, "incremental": incremental, "size": stored, "restore": restore}


def run_restic(
    env: dict[str, str],
    data: dict[str, Any],
    out: Path,
    size: Callable[[], int],
    change: Callable[[], None],
) -> dict[str, float]:
    restic(env, "init")
    src = str(data["dump"].parent)
    initial, _ = timed(lambda: restic(env, "backup", src))
    change()
    incremental, _ = timed(lambda: restic(env, "backup", src))
    stored = size()
    restore, _ = timed(lambda: restic(env, "restore", "latest", "--target", str(out)))
    return {"initial": initial, "incremental": incremental, "size": stored, "restore": restore}


def report(
    where: str,
    ours: dict[str, float],
    theirs: dict[str, float],
    cached: dict[str, float],
    logical: int,
) -> dict[str, Any]:
    """`theirs`: restic --no-cache; `cached`: restic with its cache, as a user runs it."""
    rows = {}
    print(f"\n{where}: {logical / (1 << 30):.2f} GiB logical")
    print(f"  {'':12} {'claims-dc':>10} {'restic':>10} {'ratio':>7} {'restic+cache':>13} "
          f"{'ratio':>7}")  # fmt: skip
    for k, unit in (("initial", "s"), ("incremental", "s"), ("size", "MiB"), ("restore", "s")):
        a, b, c = ours[k], theirs[k], cached[k]
        if unit == "MiB":
            a, b, c = a / (1 << 20), b / (1 << 20), c / (1 << 20)
        rows[k] = {"claims_dc": round(a, 2), "restic": round(b, 2), "ratio": round(b / a, 2),
                   "restic_cached": round(c, 2), "ratio_cached": round(c / a, 2)}  # fmt: skip
        u = unit[0] if unit == "s" else "M"
        print(f"  {k:12} {a:9.1f}{u} {b:9.1f}{u} {b / a:7.2f} {c:12.1f}{u} {c / a:7.2f}")
    print("  ratio: restic / claims-dc (above 1: claims-dc is faster or smaller)")
    return rows


def fresh_copy(data: dict[str, Any], base: Path, name: str) -> dict[str, Any]:
    """Each run starts from the same original data (the change is applied during the run)."""
    dst = base / name
    shutil.copytree(data["dump"].parent, dst)
    return {"rows": data["rows"], "dump": dst / "claims.sql", "files": dst / "claim-files"}


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gib", type=float, default=1.0, help="size of the dump (default 1.0)")
    ap.add_argument("--only", choices=("local", "moto", "rss"), help="one part only")
    ap.add_argument("--rss-gib", type=float, default=2.0, help="file size for peak RSS")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not shutil.which("restic"):
        print("restic is not installed: apt-get install -y restic", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="claims-dc-bench-", dir="/var/tmp") as tmp:
        base = Path(tmp)
        data: dict[str, Any] = {}
        logical = 0
        if args.only != "rss":
            progress(f"generating {args.gib} GiB dump and claim files")
            data = make_data(base / "orig" / "data", args.gib)
            logical = dir_size(base / "orig" / "data")
        key_file = base / "repo.key"
        crypto.make_key_file(key_file)
        env = {**os.environ, "RESTIC_PASSWORD": "bench-only-not-a-secret"}
        if args.only in (None, "local"):
            progress("local directory: claims-dc")
            d1 = fresh_copy(data, base, "l1")
            ours = run_ours(
                LocalStorage(base / "repo-ours"),
                KeyOptions(key_file=key_file),
                d1,
                base / "out-ours",
                lambda: dir_size(base / "repo-ours"),
                lambda: change_one_percent(d1),
            )
            progress("local directory: restic")
            d2 = fresh_copy(data, base, "l2")
            theirs = run_restic(
                {**env, "RESTIC_REPOSITORY": str(base / "repo-restic")},
                d2,
                base / "out-restic",
                lambda: dir_size(base / "repo-restic"),
                lambda: change_one_percent(d2),
            )
            progress("local directory: restic with its cache")
            d3 = fresh_copy(data, base, "l3")
            cached = run_restic(
                {**env, "RESTIC_REPOSITORY": str(base / "repo-restic-c"),
                 "RESTIC_CACHE_DIR": str(base / "restic-cache")},
                d3,
                base / "out-restic-c",
                lambda: dir_size(base / "repo-restic-c"),
                lambda: change_one_percent(d3),
            )  # fmt: skip
            results["local"] = report("local directory", ours, theirs, cached, logical)
            for p in ("repo-ours", "repo-restic", "out-ours", "out-restic", "l1", "l2", "l3",
                      "repo-restic-c", "out-restic-c", "restic-cache"):  # fmt: skip
                subprocess.run(["chmod", "-R", "u+w", str(base / p)], check=False)
                shutil.rmtree(base / p, ignore_errors=True)
        if args.only in (None, "moto"):
            results["moto"] = moto_run(base, data, logical, key_file, env)
        if args.only in (None, "rss"):
            results["peak_rss_mib"] = peak_rss(base, args.rss_gib, key_file)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


RSS_CHILD = """
import resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from ops.backuplib import archiver
from ops.backuplib.repository import KeyOptions, Repository
from ops.backuplib.sources import SourceSpec
from ops.backuplib.storage import LocalStorage
repo = Repository.init(LocalStorage(Path(sys.argv[2])), KeyOptions(key_file=Path(sys.argv[3])),
                       lock_days=1)
archiver.backup(repo, [SourceSpec("big", "files", paths=[sys.argv[4]])], quiet=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss(base: Path, gib: float, key_file: Path) -> float:
    """Peak RSS of a separate process that backs up one `gib` GiB file (half random, half a
    repeated pattern, so both sealing paths run)."""
    src = base / "rss-src"
    src.mkdir()
    big = src / "big.bin"
    progress(f"writing a {gib} GiB file for the peak RSS")
    block = os.urandom(1 << 20)
    with big.open("wb") as f:
        for i in range(int(gib * 1024)):
            f.write(os.urandom(1 << 20) if i % 2 else block)
    progress("peak RSS: claims-dc backing it up in a separate process")
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(REPO), str(base / "repo-rss"), str(key_file),
         str(src)], capture_output=True, text=True, check=True,
    )  # fmt: skip
    mib = int(out.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux
    print(f"\npeak RSS backing up a {gib:g} GiB file: {mib:.0f} MiB (bound: 256 MiB)")
    shutil.rmtree(base / "repo-rss", ignore_errors=True)
    big.unlink()
    return round(mib, 1)


def moto_run(
    base: Path, data: dict[str, Any], logical: int, key_file: Path, env: dict[str, str]
) -> dict[str, Any]:

    import boto3

    aws = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
    }
    with moto_server(REGION) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        kms = boto3.client("kms", endpoint_url=endpoint, region_name=REGION)
        key = kms.create_key()["KeyMetadata"]["Arn"]
        s3.create_bucket(
            Bucket="bench-ours",
            ObjectLockEnabledForBucket=True,
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )
        s3.put_object_lock_configuration(
            Bucket="bench-ours",
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )
        for bucket in ("bench-restic", "bench-restic-c"):
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        progress("moto S3: claims-dc")
        d1 = fresh_copy(data, base, "m1")
        ours = run_ours(
            S3Storage("s3://bench-ours/db", client=s3, endpoint_url=endpoint),
            KeyOptions(kms=kms, kms_key_id=key),
            d1,
            base / "mout-ours",
            lambda: bucket_size(s3, "bench-ours"),
            lambda: change_one_percent(d1),
        )
        progress("moto S3: restic")
        d2 = fresh_copy(data, base, "m2")
        theirs = run_restic(
            {**env, **aws, "RESTIC_REPOSITORY": f"s3:{endpoint}/bench-restic"},
            d2,
            base / "mout-restic",
            lambda: bucket_size(s3, "bench-restic"),
            lambda: change_one_percent(d2),
        )
        progress("moto S3: restic with its cache")
        d3 = fresh_copy(data, base, "m3")
        cached = run_restic(
            {**env, **aws, "RESTIC_REPOSITORY": f"s3:{endpoint}/bench-restic-c",
             "RESTIC_CACHE_DIR": str(base / "mrestic-cache")},
            d3,
            base / "mout-restic-c",
            lambda: bucket_size(s3, "bench-restic-c"),
            lambda: change_one_percent(d3),
        )  # fmt: skip
        return report("moto S3 (separate process, loopback)", ours, theirs, cached, logical)


if __name__ == "__main__":
    sys.exit(main())
