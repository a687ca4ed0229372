"""The fleet check over N tenants: in parallel over the cores (`claims-dc fleet check`), and
the same tenants one after the other in one process (what `infra.check --fleet` did before),
on the same files in one run. Prints the per-tenant times, the totals and the ratio.

The tenants are made the way an operator makes them: `claims-dc fleet new` for N real
municipality codes from the national list, their blanks then filled with documentation values.

    python bench/fleet_check.py            # N = 100
    python bench/fleet_check.py 20         # other N
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from infra.proof.fleet import check_fleet, default_jobs  # noqa: E402
from lab.fleet import make_fleet  # noqa: E402


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 100
    with tempfile.TemporaryDirectory() as tmp:
        files = make_fleet(Path(tmp), count)
        started = time.perf_counter()
        parallel = check_fleet(files)
        parallel_s = time.perf_counter() - started
        started = time.perf_counter()
        serial = check_fleet(files, jobs=1)
        serial_s = time.perf_counter() - started
    per = [t.seconds for t in serial.tenants]
    print(f"tenants {count}; cores {default_jobs()}")
    print(f"per tenant (serial): median {statistics.median(per):.2f}s, max {max(per):.2f}s")
    print(f"parallel ({parallel.jobs} processes): {parallel_s:.1f}s; all hold: {parallel.holds}")
    print(f"serial (1 process):    {serial_s:.1f}s; all hold: {serial.holds}")
    print(f"ratio serial/parallel: {serial_s / parallel_s:.2f}")
    return 0 if parallel.holds and serial.holds else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
