"""A new tenant's stack file, written into the fleet: a directory of `Pulumi.<stack>.yaml`, one
per municipality, and nothing else to keep in step.

What the data center decides is allocated here, against every tenant already in the fleet: the
VPC (the lowest free /16 of 10.16.0.0-10.250.255.255 that overlaps no CIDR any tenant uses,
inside or outside), its five zones (/24s at .10, .20, .30, .40, .50 as in DESIGN.md), the four
hosts, and a private BGP ASN for each line that no other line in the fleet has. What only the
municipality or the fund can say (the LGWAN and fund networks, each line's router address or
Direct Connect connection) is left as a `FILL IN:` placeholder, which the stack loader refuses
by name until it is filled in. The file is checked before it is written: with documentation
values in the placeholders, it must load and pass the fleet's cross-tenant checks.
"""

from __future__ import annotations

import copy
import fcntl
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import (
    ACCOUNT_ID,
    ALLOWED_REGIONS,
    NS,
    PLACEHOLDER,
    SAFE_LOADER,
    ConfigError,
    StackConfig,
    parse,
    placeholders,
    private_asn,
)
from ops.fleet.codes import Municipality

POOL = [ipaddress.IPv4Network(f"10.{n}.0.0/16") for n in range(16, 251)]
ASN_FIRST = 64600
AZS = {"ap-northeast-1": ["ap-northeast-1a", "ap-northeast-1c"],
       "ap-northeast-3": ["ap-northeast-3a", "ap-northeast-3b"]}  # fmt: skip
ZONE_OCTETS = {"app": 10, "db": 20, "intake": 30, "mgmt": 40, "endpoints": 50}
HOSTS = {"app-1": "app", "db-1": "db", "intake-1": "intake", "bastion-1": "mgmt"}
ROLE_OF_ZONE = {"app": "app", "db": "db", "intake": "intake", "mgmt": "bastion"}
# The design's flow policy (DESIGN.md), the same for every tenant.
FLOWS = [
    {"from": "lgwan", "to": "app", "port": 443, "why": "caseworkers use the claim application"},
    {"from": "fund", "to": "intake", "port": 22, "service": "sftp",
     "why": "the fund delivers claim files"},
    {"from": ["app", "intake"], "to": "db", "port": 5432,
     "why": "application and intake write claims"},
    {"from": "mgmt", "to": ["app", "db", "intake"], "port": 22,
     "why": "operators administer hosts"},
    {"from": ["app", "db", "intake", "mgmt"], "to": "endpoints", "port": 443,
     "why": "backups, keys, logs"},
]  # fmt: skip
STACK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_STACK_FILE = 1 << 20  # a stack file is a few kilobytes; anything this size is not one


class FleetError(ValueError):
    pass


@dataclass
class Fleet:
    """What the tenants already in DIR use, read from their files as written (placeholders
    and all: a tenant still being filled in holds its allocation too)."""

    directory: Path
    files: dict[Path, dict[str, Any]]

    @classmethod
    def read(cls, directory: Path) -> Fleet:
        if not directory.is_dir():
            raise FleetError(f"--fleet {directory}: not a directory")
        files = {}
        for path in sorted(directory.glob("Pulumi.*.yaml")):
            try:
                if path.stat().st_size > MAX_STACK_FILE:
                    raise FleetError(f"{path}: over {MAX_STACK_FILE} bytes: not a stack file")
                doc = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                raise FleetError(f"{path}: cannot be read as a stack file ({e})") from e
            config = doc.get("config") if isinstance(doc, dict) else None
            if not isinstance(config, dict):
                raise FleetError(f"{path}: no `config:` mapping")
            files[path] = config
        return cls(directory, files)

    def networks(self) -> list[tuple[Path, ipaddress.IPv4Network]]:
        out = []
        for path, config in self.files.items():
            values = [config.get(f"{NS}vpcCidr")]
            zones = config.get(f"{NS}zones")
            if isinstance(zones, dict):
                values += [z.get("cidr") for z in zones.values() if isinstance(z, dict)]
            for value in values:
                try:
                    out.append((path, ipaddress.IPv4Network(str(value), strict=False)))
                except ValueError:
                    continue  # a placeholder, or a problem the loader names
        return out

    def asns(self) -> set[int]:
        used = set()
        for config in self.files.values():
            lines = config.get(f"{NS}lines")
            for line in lines.values() if isinstance(lines, dict) else ():
                if isinstance(line, dict) and isinstance(line.get("bgpAsn"), int):
                    used.add(int(line["bgpAsn"]))
        return used

    def holding(self, code: str) -> Path | None:
        for path, config in self.files.items():
            municipality = config.get(f"{NS}municipality")
            if isinstance(municipality, dict) and str(municipality.get("code")) == code:
                return path
        return None


def _free_vpc(fleet: Fleet) -> ipaddress.IPv4Network:
    used = [net for _, net in fleet.networks()]
    for candidate in POOL:
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise FleetError(f"{fleet.directory}: no free /16 left in 10.16.0.0-10.250.255.255")


def _free_asns(fleet: Fleet, count: int) -> list[int]:
    used, asn = fleet.asns(), ASN_FIRST
    found: list[int] = []
    while len(found) < count:
        if asn not in used and private_asn(asn):
            found.append(asn)
        asn += 1
        if asn > 65534:
            raise FleetError(f"{fleet.directory}: no free private 2-byte ASN left")
    return found


def _line(kind: str, asn: int, line: str) -> dict[str, Any]:
    if kind == "vpn":
        return {"type": "vpn", "customerGatewayIp": f"{PLACEHOLDER} the public IPv4 address of "
                f"the VPN router at the far end of {line}", "bgpAsn": asn}  # fmt: skip
    return {"type": "dx", "connectionId": f"{PLACEHOLDER} the Direct Connect connection ID "
            f"(dxcon-...) of {line}", "vlan": f"{PLACEHOLDER} the VLAN (1-4094) of {line}",
            "bgpAsn": asn}  # fmt: skip


def stack_config(municipality: Municipality, region: str, vpc: ipaddress.IPv4Network,
                 asns: list[int], lines: dict[str, str],
                 operations_account: str | None = None) -> dict[str, Any]:  # fmt: skip
    base = str(vpc.network_address).rsplit(".", 2)[0]  # "10.x"
    other = next(r for r in ALLOWED_REGIONS if r != region)
    return {
        "aws:region": region,
        "aws:allowedAccountIds": f'{PLACEHOLDER} ["<the 12-digit AWS account ID this '
        "municipality's environment is deployed into>\"]",
        f"{NS}municipality": {"code": municipality.code, "name": municipality.name},
        f"{NS}vpcCidr": str(vpc),
        f"{NS}zones": {
            "lgwan": {"cidr": f"{PLACEHOLDER} the municipality's LGWAN terminal network (CIDR)"},
            "fund": {"cidr": f"{PLACEHOLDER} the fund's sender network (CIDR)"},
            **{z: {"cidr": f"{base}.{o}.0/24"} for z, o in ZONE_OCTETS.items()},
        },
        f"{NS}hosts": {
            h: {"zone": z, "role": ROLE_OF_ZONE[z], "address": f"{base}.{ZONE_OCTETS[z]}.10"}
            for h, z in HOSTS.items()
        },
        f"{NS}flows": copy.deepcopy(FLOWS),
        f"{NS}availabilityZones": AZS[region],
        f"{NS}lines": {
            "lgwan": _line(lines["lgwan"], asns[0], "the municipality's LGWAN line"),
            "fund": _line(lines["fund"], asns[1], "the fund's dedicated line"),
        },
        f"{NS}backup": {
            "retentionDays": 90,
            "noncurrentExpireDays": 400,
            "coldAfterDays": 30,
            "replicaRegion": other,
        },
        f"{NS}logs": {"retentionDays": 731},
        # The fleet board's way in: one external ID per tenant, made here, not a secret.
        f"{NS}fleetReader": {
            "operationsAccountId": operations_account
            or f"{PLACEHOLDER} the operations account's 12-digit AWS account ID",
            "externalId": f"{municipality.code}-{secrets.token_hex(12)}",
        },
    }


# Documentation values (RFC 5737 and 198.18.0.0/15, never routed) for the self-check.
def _sample(key: str, n: int) -> Any:
    if key.endswith("allowedAccountIds"):
        return ["111122223333"]
    if key.endswith("AccountId"):
        return "444455556666"
    if key.endswith("customerGatewayIp"):
        return f"192.0.2.{10 + n}"
    if key.endswith("connectionId"):
        return "dxcon-fexample1"
    if key.endswith("vlan"):
        return 100 + n
    return f"198.18.{n}.0/24"


def self_check(config: dict[str, Any], fleet: Fleet, stack: str) -> StackConfig:
    """The new file, with documentation values in its placeholders, loads, and overlaps no
    other tenant."""
    filled = copy.deepcopy(config)
    for n, (key, _) in enumerate(placeholders(filled)):
        *parents, leaf = key.split(".")  # top-level keys hold ':' but never '.'
        node: Any = filled
        for part in parents:
            node = node[part]
        node[leaf] = _sample(key, n)
    try:
        loaded = parse(filled, stack=stack, source=f"Pulumi.{stack}.yaml")
    except ConfigError as e:
        raise FleetError(f"the new stack would not load: {e}") from e
    mine = [loaded.vpc_cidr]
    for path, net in fleet.networks():
        if any(net.overlaps(m) for m in mine):
            raise FleetError(f"the new stack's {mine[0]} overlaps {net} of {path}")
    return loaded


def new_tenant(directory: Path, municipality: Municipality, *, region: str, stack: str,
               lines: dict[str, str], operations_account: str | None = None,
               ) -> tuple[Path, list[tuple[str, str]]]:  # fmt: skip
    """Allocate and write under a lock on the fleet directory, so two operators onboarding
    at once cannot be given the same networks."""
    if not directory.is_dir():
        raise FleetError(f"--fleet {directory}: not a directory")
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return write_new(Fleet.read(directory), municipality, region=region, stack=stack,
                         lines=lines, operations_account=operations_account)  # fmt: skip
    finally:
        os.close(fd)


def write_new(fleet: Fleet, municipality: Municipality, *, region: str, stack: str,
              lines: dict[str, str], operations_account: str | None = None,
              ) -> tuple[Path, list[tuple[str, str]]]:  # fmt: skip
    """Write the tenant's stack file; its path and the placeholders to fill in."""
    if not STACK_NAME.match(stack):
        raise FleetError(f"--stack {stack!r}: lowercase letters, digits and '-', e.g. omuta-prod")
    if operations_account is not None and not ACCOUNT_ID.match(operations_account):
        raise FleetError(f"--operations-account {operations_account!r}: 12 digits")
    if region not in ALLOWED_REGIONS:
        raise FleetError(
            f"--region {region!r}: data stays in Japan: {' or '.join(ALLOWED_REGIONS)}"
        )
    held = fleet.holding(municipality.code)
    if held is not None:
        raise FleetError(f"--code {municipality.code}: {municipality.name} is a tenant already "
                         f"({held})")  # fmt: skip
    path = fleet.directory / f"Pulumi.{stack}.yaml"
    if path.exists():
        raise FleetError(f"{path} exists: choose another --stack")
    config = stack_config(municipality, region, _free_vpc(fleet), _free_asns(fleet, 2), lines,
                          operations_account)  # fmt: skip
    self_check(config, fleet, stack)
    header = (
        f"# {municipality.prefecture}{municipality.city} ({municipality.code}), written by "
        "claims-dc fleet new.\n"
        "# Fill in every `FILL IN:` value (the stack loader refuses the file until then).\n"
        f"# Stack secrets are encrypted by the vendor's KMS key in Tokyo (docs/deploy.md).\n"
    )
    body = yaml.safe_dump(
        {"secretsprovider": "awskms://alias/claims-dc-pulumi-secrets?region=ap-northeast-1",
         "config": config}, sort_keys=False, allow_unicode=True, width=100,
    )  # fmt: skip
    # O_EXCL: two operators onboarding at once cannot overwrite each other's file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(header + body)
    return path, placeholders(config)
