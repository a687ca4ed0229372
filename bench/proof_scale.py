"""How the closed-network proof grows with the number of tenants.

For N synthetic tenants (infra/proof/tenants.py): evaluate each tenant's program under mocks and
prove it, timing the two apart. No installable anchor exists here (Batfish and AWS's analyzers
need a JVM service or a deployed network), so the figure is the growth with N.

    python bench/proof_scale.py            # N = 1, 10, 100
    python bench/proof_scale.py 1 5        # other N
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from infra.config import load_file
from infra.offline import evaluate
from infra.proof import model_of
from infra.proof.tenants import write_tenants
from infra.proof.verdicts import prove


def run(count: int) -> tuple[float, float, int]:
    evaluation = proof = 0.0
    held = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_tenants(Path(tmp), count):
            started = time.perf_counter()
            ev = evaluate(path)
            evaluation += time.perf_counter() - started
            started = time.perf_counter()
            result = prove(model_of(ev), load_file(path))
            proof += time.perf_counter() - started
            held += result.holds
    return evaluation, proof, held


def main(argv: list[str]) -> int:
    counts = [int(a) for a in argv] or [1, 10, 100]
    print(
        f"{'tenants':>8} {'evaluation s':>13} {'proof s':>9} {'proof ms/tenant':>16} "
        f"{'all hold':>9}"
    )
    base = None
    for count in counts:
        evaluation, proof, held = run(count)
        per = proof / count * 1000
        base = base or per
        print(
            f"{count:>8} {evaluation:>13.1f} {proof:>9.2f} {per:>16.1f} "
            f"{held}/{count:>3}   (per-tenant proof x{per / base:.2f} of N={counts[0]})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
