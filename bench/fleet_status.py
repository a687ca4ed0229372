"""The fleet board over N tenants in a local AWS API (moto on loopback, in its own process):
each tenant's status
bucket and reader role made, its hosts' status published with ages that vary from tenant to
tenant, then `ops.fleet status` read in parallel (16 tenants at once) and, on the same data in
the same run, one tenant after the other. Prints both times, the colours and the ratio.

    python bench/fleet_status.py            # N = 100
    python bench/fleet_status.py 20
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from infra.config import load_file  # noqa: E402
from lab.fleet import Ages, make_fleet, simulate  # noqa: E402
from ops.awsapi import Endpoint  # noqa: E402
from ops.fleet import board  # noqa: E402
from tests.support.motoserver import REGION, moto_process  # noqa: E402

VARIETY = [Ages(), Ages(backup_hours=30), Ages(drill_days=40), Ages(review_days=120),
           Ages(rotated_days=500), Ages(cert_days_left=10), Ages(backup_hours=1)]  # fmt: skip


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 100
    with tempfile.TemporaryDirectory() as tmp, moto_process() as url:
        endpoint = Endpoint(url, REGION, None)
        files = make_fleet(Path(tmp), count)
        started = time.perf_counter()
        for n, path in enumerate(files):
            simulate(endpoint, load_file(path), VARIETY[n % len(VARIETY)])
        print(f"tenants {count}: status published in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        rows = board.board(files, board.Reader(endpoint), workers=16)
        parallel = time.perf_counter() - started
        started = time.perf_counter()
        serial_rows = board.board(files, board.Reader(endpoint), workers=1)
        serial = time.perf_counter() - started
    colours = collections.Counter(r.colour for r in rows)
    same = [r.colour for r in rows] == [r.colour for r in serial_rows]
    print(f"board, 16 at once: {parallel:.1f}s  ({dict(colours)})")
    print(f"board, one by one: {serial:.1f}s  (same colours: {same})")
    print(f"ratio one-by-one/parallel: {serial / parallel:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
