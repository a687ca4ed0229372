"""The Pulumi program as a function of the typed config, so tests can run it under mocks.

Issue 2 lays the ground: the program loads and validates the stack config through the engine
and exports the environment's shape. The components (closed segment, lines, hosts, backup
storage) compose here as they land.
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra.config import StackConfig


def outputs(config: StackConfig) -> dict[str, Any]:
    return {
        "municipality": {"code": config.municipality.code, "name": config.municipality.name},
        "region": config.region,
        "vpcCidr": str(config.vpc_cidr),
        "zones": {name: str(zone.cidr) for name, zone in config.zones.items()},
        "hosts": {
            name: {"zone": h.zone, "role": h.role, "address": str(h.address)}
            for name, h in config.hosts.items()
            if not h.stand_in
        },
        "flows": sorted(f"{s}->{d}:{p}/{proto}" for s, d, p, proto in config.allowed()),
    }


def run(config: StackConfig) -> None:
    for key, value in outputs(config).items():
        pulumi.export(key, value)
