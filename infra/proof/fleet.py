"""Check many tenants in one run: each one's config, policy pack and proof, in parallel over
the cores, and then the tenants against each other.

About 100 municipalities share the service. Tenants that share a line (the same LGWAN customer
gateway, or the same Direct Connect connection and VLAN) must not overlap in any CIDR, and no
tenant may route towards another tenant's addresses, from a VPC route table or from a transit
gateway route table.

Each tenant is checked in a worker process (the program under Pulumi's mocks is CPU-bound
Python, so threads would share one core); a worker returns a `TenantCheck` holding only what
the report and the cross-tenant checks need. A tenant whose config is refused, whose program
fails or whose check does not finish within its deadline is reported as such, by name, and the
others are still checked.
"""

from __future__ import annotations

import concurrent.futures as cf
import ipaddress
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from infra.config import ConfigError
from infra.proof.model import Net, overlaps
from infra.proof.verdicts import HOLDS, sites_of

TENANT_SECONDS = 120.0  # one tenant's check takes about half a second
# What each worker imports before its first tenant, once, in the forkserver.
PRELOAD = [
    "infra.offline",
    "infra.program",
    "infra.policy.rules",
    "infra.proof",
    "infra.proof.verdicts",
]


@dataclass(frozen=True)
class TenantCheck:
    stack_file: str
    stack: str
    problems: tuple[str, ...] = ()  # config refused, the program failed, no answer in time
    violations: tuple[str, ...] = ()  # the policy pack's, one line each
    verdicts: tuple[tuple[str, str], ...] = ()  # proof verdict id -> HOLDS/VIOLATED/UNKNOWN
    counterexamples: tuple[str, ...] = ()
    blocks: tuple[tuple[str, str], ...] = ()  # ("vpc" or an outside zone, CIDR)
    line_keys: tuple[str, ...] = ()
    routed: tuple[tuple[str, str], ...] = ()  # (where, destination CIDR)
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return (
            not self.problems
            and not self.violations
            and bool(self.verdicts)
            and all(status == HOLDS for _, status in self.verdicts)
        )


def check_tenant(stack_file: str) -> TenantCheck:
    """One tenant, whole: what a worker process runs."""
    from infra.offline import evaluate
    from infra.policy.rules import stack_violations
    from infra.proof import model_of
    from infra.proof.verdicts import prove

    path = Path(stack_file)
    started = time.monotonic()
    stack = _stack(stack_file)
    try:
        ev = evaluate(path)
    except ConfigError as e:
        return TenantCheck(stack_file, stack, problems=tuple(f"config: {p}" for p in e.problems))
    except Exception as e:  # the program failed under the mocks: named, the others go on
        failed = f"the program failed: {type(e).__name__}: {e}"[:500]
        return TenantCheck(stack_file, stack, problems=(failed,))
    violations = stack_violations(
        ev.policy_view(), yaml.safe_load(path.read_text(encoding="utf-8")), path.name, ev.config
    )
    model = model_of(ev)
    proof = prove(model, ev.config)
    blocks = [("vpc", str(ev.config.vpc_cidr))]
    blocks += [(z.name, str(z.cidr)) for z in ev.config.zones.values() if z.external]
    routed = [
        (f"route table {table.name}: {route.resource}", str(route.destination))
        for table in model.route_tables.values()
        for route in table.routes
        if route.destination is not None
    ]
    routed += [
        (f"transit gateway {gw.name} route table {name}", str(r.destination))
        for gw in model.tgws.values()
        for name, routes in gw.route_tables.items()
        for r in routes
    ]
    return TenantCheck(
        stack_file,
        ev.config.stack,
        violations=tuple(f"{v.rule} [{v.severity}] {v.resource}: {v.message}" for v in violations),
        verdicts=tuple((v.id, v.status) for v in proof.verdicts),
        counterexamples=tuple(
            f"{v.id}: {c.summary}" for v in proof.verdicts for c in v.counterexamples[:3]
        ),
        blocks=tuple(blocks),
        line_keys=tuple(sorted(sites_of(ev.config))),
        routed=tuple(routed),
        seconds=round(time.monotonic() - started, 3),
    )


@dataclass
class FleetResult:
    tenants: list[TenantCheck]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    jobs: int = 1

    @property
    def holds(self) -> bool:
        return not self.problems and all(t.holds for t in self.tenants)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_fleet(stack_files: list[Path], *, jobs: int | None = None,
                tenant_seconds: float = TENANT_SECONDS) -> FleetResult:  # fmt: skip
    """Every tenant (over `jobs` processes; 1: in this process), then the fleet."""
    started = time.monotonic()
    jobs = max(1, min(jobs or default_jobs(), len(stack_files) or 1))
    names = [str(p) for p in stack_files]
    if jobs == 1:
        tenants = [check_tenant(n) for n in names]
    else:
        tenants = _in_parallel(names, jobs, tenant_seconds)
    result = FleetResult(tenants, cross_tenant(tenants), jobs=jobs)
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _in_parallel(names: list[str], jobs: int, tenant_seconds: float) -> list[TenantCheck]:
    # forkserver: workers start from a clean process, not a copy of a caller holding threads.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    out: dict[str, TenantCheck] = {}
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(check_tenant, n): n for n in names}
        # The whole fleet's deadline: each tenant's, for the tenants each worker takes.
        deadline = tenant_seconds * (len(names) / jobs + 1)
        try:
            for future in cf.as_completed(futures, timeout=deadline):
                name = futures[future]
                try:
                    out[name] = future.result()
                except Exception as e:  # a worker that died: that tenant is named
                    failed = f"the check failed: {type(e).__name__}: {e}"[:500]
                    out[name] = TenantCheck(name, _stack(name), problems=(failed,))
        except cf.TimeoutError:
            for future, name in futures.items():
                future.cancel()
                late = f"no result within the fleet's deadline ({deadline:.0f} s)"
                out.setdefault(name, TenantCheck(name, _stack(name), problems=(late,)))
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()  # a tenant that never ends must not hold the run
    return [out[n] for n in names]


def _stack(name: str) -> str:
    return Path(name).name.removeprefix("Pulumi.").removesuffix(".yaml")


def cross_tenant(tenants: list[TenantCheck]) -> list[str]:
    problems: list[str] = []
    checked = [t for t in tenants if t.blocks]
    # Parsed once: the pairs are quadratic in the fleet's size.
    blocks: list[list[tuple[str, Net]]] = [
        [(z, ipaddress.ip_network(c)) for z, c in t.blocks] for t in checked
    ]
    vpcs = [dict(b)["vpc"] for b in blocks]
    default = ipaddress.ip_network("0.0.0.0/0")
    routed: list[list[tuple[str, Net]]] = [
        # A default route is the proof's business, not the fleet's.
        [(w, n) for w, c in t.routed if (n := ipaddress.ip_network(c)) != default]
        for t in checked
    ]
    lines = [set(t.line_keys) for t in checked]
    for i, a in enumerate(checked):
        for j in range(i + 1, len(checked)):
            b = checked[j]
            shared = lines[i] & lines[j]
            if shared:
                for za, ca in blocks[i]:
                    for zb, cb in blocks[j]:
                        if overlaps(ca, cb):
                            problems.append(
                                f"{a.stack} {za} {ca} overlaps {b.stack} {zb} {cb}, "
                                f"and they share the line {', '.join(sorted(shared))}"
                            )
            for x, y in ((i, j), (j, i)):
                for where, destination in routed[x]:
                    if overlaps(destination, vpcs[y]):
                        problems.append(
                            f"{checked[x].stack} routes {destination} towards "
                            f"{checked[y].stack}'s VPC {vpcs[y]} ({where})"
                        )
    return problems
