"""How long site.yml takes on the lab: a converge of the whole lab from fresh hosts, and the
idempotent rerun after it, each with SSH pipelining on and off, side by side in one run.

Fresh means the data-center containers are removed and made again from the golden image
(`claims-dc lab up` repairs what is missing), so every converge starts from the same state.
The lab must be up (`make lab-up`) and the bundle built (`make bundle`).

    python bench/ansible_converge.py            # both modes
    python bench/ansible_converge.py --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from infra.config import load_stack
from lab import lab
from lab import podman as pm
from lab.plan import build_plan
from ops import bundle
from ops.playbook import run_playbook

REPO = Path(__file__).resolve().parent.parent


def fresh_hosts(stack: str) -> str:
    config = load_stack(stack, REPO)
    for host in build_plan(config).hosts:
        if not config.hosts[host.name].stand_in:
            pm.podman("rm", "-f", "-t", "0", host.container)
    report = lab.up(config)
    stand_ins = run_playbook(report.inventory, "lab_stand_ins.yml")
    if not stand_ins.ok:
        raise SystemExit(f"lab_stand_ins.yml failed:\n{stand_ins.stdout[-2000:]}")
    return report.inventory


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--stack", default="lab")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    for product in bundle.PRODUCTS.values():
        bundle.build(product=product)
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for pipelining in (True, False):
            mode = "pipelining on" if pipelining else "pipelining off"
            inventory = fresh_hosts(args.stack)
            converge = run_playbook(inventory, "site.yml", pipelining=pipelining)
            rerun = run_playbook(inventory, "site.yml", pipelining=pipelining)
            for name, run in (("converge", converge), ("rerun", rerun)):
                if not run.ok:
                    raise SystemExit(f"{mode} {name} failed:\n{run.stdout[-3000:]}")
            if sum(rerun.changed().values()):
                raise SystemExit(f"{mode}: the rerun changed something: {rerun.summary()}")
            print(f"{mode}: converge {converge.seconds}s, rerun {rerun.seconds}s",
                  file=sys.stderr)  # fmt: skip
            row = results.setdefault(mode, {"converge": [], "rerun": []})
            row["converge"].append(converge.seconds)
            row["rerun"].append(rerun.seconds)
    print(
        f"{'site.yml on the lab (4 hosts)':32} {'converge from fresh':>20} {'idempotent rerun':>18}"
    )
    for mode, row in results.items():
        print(f"{mode:32} {statistics.median(row['converge']):19.1f}s "
              f"{statistics.median(row['rerun']):17.1f}s")  # fmt: skip
    on, off = results["pipelining on"], results["pipelining off"]

    def ratio(kind: str) -> float:
        return statistics.median(off[kind]) / statistics.median(on[kind])

    print(f"ratio off/on: converge {ratio('converge'):.2f}x, rerun {ratio('rerun'):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
