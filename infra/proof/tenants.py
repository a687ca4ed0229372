"""Synthetic tenants: N municipalities' stack configs, each isolated, for tests and the bench.

Tenant i gets its own VPC (10.<i>.0.0/16), LGWAN terminal range (172.16.<i>.0/24) and fund range
(172.17.<i>.0/24), a municipality code with a valid check digit, and the design's flow policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.config import municipality_check_digit

MAX_TENANTS = 250


def tenant_config(i: int) -> dict[str, Any]:
    if not 1 <= i <= MAX_TENANTS:
        raise ValueError(f"tenant index {i} outside 1..{MAX_TENANTS}")
    first_five = f"9{i:04d}"
    code = f"{first_five}{municipality_check_digit(first_five)}"
    zone = {
        z: f"10.{i}.{n}.0/24"
        for z, n in (("app", 10), ("db", 20), ("intake", 30), ("mgmt", 40), ("endpoints", 50))
    }
    return {"secretsprovider": "awskms://alias/claims-dc-pulumi-secrets?region=ap-northeast-1",
            "config": {
        "aws:region": "ap-northeast-1",
        "claims-dc:municipality": {"code": code, "name": f"tenant-{i}"},
        "claims-dc:vpcCidr": f"10.{i}.0.0/16",
        "claims-dc:availabilityZones": ["ap-northeast-1a", "ap-northeast-1c"],
        "claims-dc:zones": {"lgwan": {"cidr": f"172.16.{i}.0/24"},
                            "fund": {"cidr": f"172.17.{i}.0/24"},
                            **{z: {"cidr": c} for z, c in zone.items()}},
        "claims-dc:hosts": {
            "app-1": {"zone": "app", "role": "app", "address": f"10.{i}.10.10"},
            "db-1": {"zone": "db", "role": "db", "address": f"10.{i}.20.10"},
            "intake-1": {"zone": "intake", "role": "intake", "address": f"10.{i}.30.10"},
            "bastion-1": {"zone": "mgmt", "role": "bastion", "address": f"10.{i}.40.10"},
        },
        "claims-dc:flows": [
            {"from": "lgwan", "to": "app", "port": 443, "why": "caseworkers"},
            {"from": "fund", "to": "intake", "port": 22, "why": "claim files"},
            {"from": ["app", "intake"], "to": "db", "port": 5432, "why": "claims"},
            {"from": "mgmt", "to": ["app", "db", "intake"], "port": 22, "why": "operators"},
            {"from": ["app", "db", "intake", "mgmt"], "to": "endpoints", "port": 443,
             "why": "backups, keys, logs"},
        ],
        "claims-dc:lines": {
            "lgwan": {"type": "vpn", "customerGatewayIp": f"203.0.113.{i % 250 + 1}",
                      "bgpAsn": 64600 + i},
            "fund": {"type": "vpn", "customerGatewayIp": f"198.51.100.{i % 250 + 1}",
                     "bgpAsn": 65300 + i},
        },
        "claims-dc:backup": {"retentionDays": 35, "noncurrentExpireDays": 400,
                             "coldAfterDays": 30},
        "claims-dc:logs": {"retentionDays": 400},
    }}  # fmt: skip


def write_tenants(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, count + 1):
        path = directory / f"Pulumi.tenant-{i:03d}.yaml"
        path.write_text(yaml.safe_dump(tenant_config(i), sort_keys=False))
        paths.append(path)
    return paths
