"""Check many tenants in one run: each one's proof, and the tenants against each other.

About 100 municipalities share the service. Tenants that share a line (the same LGWAN customer
gateway, or the same Direct Connect connection and VLAN) must not overlap in any CIDR, and no
tenant may route towards another tenant's addresses, from a VPC route table or from a transit
gateway route table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from infra.config import StackConfig
from infra.offline import evaluate
from infra.proof import model_of
from infra.proof.model import Model, Net, overlaps
from infra.proof.verdicts import Proof, prove, sites_of


@dataclass
class Tenant:
    stack_file: Path
    config: StackConfig
    model: Model
    proof: Proof

    @property
    def blocks(self) -> list[tuple[str, Net]]:
        blocks: list[tuple[str, Net]] = [("vpc", self.config.vpc_cidr)]
        blocks += [(z.name, z.cidr) for z in self.config.zones.values() if z.external]
        return blocks

    def line_keys(self) -> set[str]:
        return set(sites_of(self.config))

    def routed(self) -> Iterable[tuple[str, Net]]:
        for table in self.model.route_tables.values():
            for route in table.routes:
                if route.destination is not None:
                    yield f"route table {table.name}: {route.resource}", route.destination
        for gw in self.model.tgws.values():
            for name, routes in gw.route_tables.items():
                for tgw_route in routes:
                    yield f"transit gateway {gw.name} route table {name}", tgw_route.destination


@dataclass
class FleetResult:
    tenants: list[Tenant]
    problems: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.problems and all(t.proof.holds for t in self.tenants)


def check_fleet(stack_files: list[Path]) -> FleetResult:
    tenants = []
    for path in stack_files:
        ev = evaluate(path)
        model = model_of(ev)
        tenants.append(Tenant(path, ev.config, model, prove(model, ev.config)))
    result = FleetResult(tenants)
    for i, a in enumerate(tenants):
        for b in tenants[i + 1 :]:
            shared = a.line_keys() & b.line_keys()
            if shared:
                for za, ca in a.blocks:
                    for zb, cb in b.blocks:
                        if overlaps(ca, cb):
                            result.problems.append(
                                f"{a.config.stack} {za} {ca} overlaps {b.config.stack} {zb} {cb}, "
                                f"and they share the line {', '.join(sorted(shared))}"
                            )
            for x, y in ((a, b), (b, a)):
                for where, cidr in x.routed():
                    if cidr == ipaddress.ip_network("0.0.0.0/0"):
                        continue  # a default route is the proof's business, not the fleet's
                    for zone, block in y.blocks:
                        if zone != "vpc":
                            continue
                        if overlaps(cidr, block):
                            result.problems.append(
                                f"{x.config.stack} routes {cidr} towards {y.config.stack}'s "
                                f"VPC {block} ({where})"
                            )
    return result
