"""The typed stack config: one municipality's environment, parsed once, validated, frozen.

Everything about an environment lives in its Pulumi stack file, `Pulumi.<stack>.yaml`. This module
is the only reader of that file. The Pulumi program, the local lab, the Ansible inventory and the
reports all take the `StackConfig` it returns, so no CIDR, port or host name exists twice.

A bad config fails at load time. Every problem found is reported at once, each naming the file,
the key and the value, for example::

    Pulumi.lab.yaml: claims-dc:zones.app.cidr = '10.231.10.0/33': not an IPv4 CIDR
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from infra.cidr import aws_reserved, split_for_azs
from infra.network.services import SERVICE_NAME, allowed_services

PROJECT = "claims-dc"
NS = f"{PROJECT}:"

# Data must stay in Japan: Tokyo or Osaka.
ALLOWED_REGIONS = ("ap-northeast-1", "ap-northeast-3")

# The zones of DESIGN.md. The two outside zones are reached over their own lines, never the
# internet; the rest are subnets of the data-center VPC.
EXTERNAL_ZONES = ("lgwan", "fund")
DATACENTER_ZONES = ("app", "db", "intake", "mgmt", "endpoints")
ZONE_NAMES = EXTERNAL_ZONES + DATACENTER_ZONES

# Each host role lives in exactly one zone. Data-center roles become real instances; stand-in
# roles exist only in the local lab, playing the parties that sit outside the data center
# (a caseworker's terminal, the fund's sender) and the AWS service endpoints.
ROLE_ZONES: dict[str, str] = {
    "app": "app",
    "db": "db",
    "intake": "intake",
    "bastion": "mgmt",
    "terminal": "lgwan",
    "sender": "fund",
    "endpoint": "endpoints",
}
# Hosts that back up their own data (ops/backup.py), each into its own prefix of the bucket;
# the database hosts also drill a restore.
BACKUP_WRITER_ROLES = ("app", "db", "intake")
DRILL_ROLES = ("db",)
DATACENTER_ROLES = ("app", "db", "intake", "bastion")
STAND_IN_ROLES = ("terminal", "sender", "endpoint")

PROTOCOLS = ("tcp", "udp")
# LGWAN and the fund's line must never reach each other, not even through the data center.
FORBIDDEN_PAIRS = frozenset({("lgwan", "fund"), ("fund", "lgwan")})

KNOWN_KEYS = (
    "municipality",
    "vpcCidr",
    "availabilityZones",
    "zones",
    "hosts",
    "flows",
    "lines",
    "backup",
    "logs",
    "endpointServices",
    "rotation",
    "fleetReader",
    "cost",
)
# libyaml's safe loader where PyYAML has it (ten times faster): a fleet is a hundred files.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
# AWS's own rule for an external ID: 2 to 1224 of these characters. A fleet asks for 16 or more.
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9+=,.@:/-]{16,1224}$")
LINE_KINDS = ("vpn", "dx")
# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
AZ_NAME = re.compile(r"^ap-northeast-[13][a-d]$")
DX_CONNECTION = re.compile(r"^dxcon-[a-z0-9]{6,12}$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
DEFAULT_INSTANCE_TYPE = "t3.medium"


def private_asn(asn: int) -> bool:
    return 64512 <= asn <= 65534 or 4200000000 <= asn <= 4294967294


HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
MUNICIPALITY_CODE = re.compile(r"^[0-9]{6}$")


class ConfigError(ValueError):
    """The stack config is invalid; `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Zone:
    name: str
    cidr: ipaddress.IPv4Network
    subnets: tuple[ipaddress.IPv4Network, ...] = ()  # one per AZ; data-center zones only

    @property
    def external(self) -> bool:
        return self.name in EXTERNAL_ZONES

    @property
    def router_address(self) -> ipaddress.IPv4Address:
        """The lab router's leg in this zone: the last usable address (AWS reserves the last)."""
        return self.cidr.broadcast_address - 1

    @property
    def reserved(self) -> frozenset[ipaddress.IPv4Address]:
        """Addresses no host may take: AWS keeps the first four and the last of every subnet,
        and the lab router takes the last usable one."""
        reserved = set(aws_reserved(self.cidr)) | {self.router_address}
        for subnet in self.subnets:
            reserved |= aws_reserved(subnet)
        return frozenset(reserved)

    def subnet_of(self, address: ipaddress.IPv4Address) -> int:
        """Index of the AZ subnet holding `address`."""
        return next(i for i, net in enumerate(self.subnets) if address in net)


@dataclass(frozen=True)
class Host:
    name: str
    zone: str
    role: str
    address: ipaddress.IPv4Address
    instance_type: str = DEFAULT_INSTANCE_TYPE

    @property
    def stand_in(self) -> bool:
        """True for a lab-only host standing in for a party outside the data center."""
        return self.role in STAND_IN_ROLES


@dataclass(frozen=True)
class Flow:
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    port: int
    protocol: str
    why: str
    service: str | None = None

    def pairs(self) -> Iterator[tuple[str, str]]:
        for src in self.sources:
            for dst in self.destinations:
                yield src, dst


@dataclass(frozen=True)
class Line:
    """A private line into the data center: LGWAN, or the fund's dedicated line."""

    name: str
    kind: str  # vpn: Site-to-Site VPN with static routes; dx: Direct Connect transit VIF
    bgp_asn: int
    customer_gateway_ip: ipaddress.IPv4Address | None = None
    dx_connection_id: str | None = None
    vlan: int | None = None


@dataclass(frozen=True)
class Backup:
    retention_days: int  # Object Lock COMPLIANCE default retention
    noncurrent_expire_days: int
    cold_after_days: int
    replica_region: str | None


# The kinds of secret key rotation knows (ops/rotation/driver.py), and how often each is rotated
# when a stack's `rotation.everyDays` does not say: host identities and the user CA yearly,
# logins and access keys quarterly, the fund's SFTP key yearly (or as agreed with the fund).
ROTATION_KINDS = ("ssh-user-ca", "host-keys", "db-login", "tls", "aws", "sftp-key")
# A web host's certificate from the internal CA lives this long (ops/rotation/tls.py), and the
# fleet board warns this long before a certificate expires; the TLS calendar must rotate
# before the warning, never after the expiry.
TLS_CERT_DAYS = 90
CERT_WARNING_DAYS = 30
TLS_MAX_ROTATION_DAYS = TLS_CERT_DAYS - CERT_WARNING_DAYS
DEFAULT_ROTATION_DAYS = {
    "ssh-user-ca": 365,
    "host-keys": 365,
    "db-login": 90,
    "tls": TLS_MAX_ROTATION_DAYS,
    "aws": 90,
    "sftp-key": 365,
}
# How long ahead a partner is told of a new key it pins, when the stack does not say.
DEFAULT_NOTICE_DAYS = 14
# An outside party connecting over SSH pins the host keys of the hosts it reaches.
SSH_PORT = 22


@dataclass(frozen=True)
class Rotation:
    every_days: Mapping[str, int]  # kind -> days between rotations
    notice_days: int  # a new key a partner pins is announced this long before the switch


@dataclass(frozen=True)
class FleetReader:
    """Who reads the environment's status for the fleet board: a role assumable from the
    operations account, only with the external ID (AWS's guard against a confused deputy)."""

    operations_account_id: str
    external_id: str


# What the cost estimate (infra/cost.py) cannot read from the program: the month's data volumes,
# each a number of GB (or GB a day), and the exchange rate. Every key is required, so an estimate
# never rests on a default nobody chose.
COST_USAGE_KEYS = {
    "backupFullGb": "one full backup as stored: deduplicated, compressed, all hosts",
    "backupChangeGbPerDay": "new backup data stored each day",
    "lgwanGbPerMonth": "sent to the caseworkers over the LGWAN line",
    "fundGbPerMonth": "exchanged with the payment fund over its line",
    "endpointGbPerMonth": "through the interface endpoints (KMS, logs, SSM, STS)",
    "flowLogGbPerMonth": "VPC flow log records ingested",
    "auditLogGbPerMonth": "CloudTrail log files written to the audit bucket",
}
# The on-premises baseline the operator enters, in yen, as the council's comparison had it.
ON_PREMISES_KEYS = {
    "serverRenewalYen": "renewing the servers once: hardware, OS, set-up",
    "maintenanceYenPerYear": "hardware and software maintenance contracts",
    "linesYenPerMonth": "the LGWAN and fund lines to the city's own server room",
    "facilityYenPerMonth": "power, cooling and space",
}


@dataclass(frozen=True)
class CostInputs:
    """The cost block of a stack file (`claims-dc:cost`)."""

    jpy_per_usd: float
    years: int
    usage: Mapping[str, float]  # COST_USAGE_KEYS -> value
    on_premises: Mapping[str, float] | None  # ON_PREMISES_KEYS -> yen, or None


@dataclass(frozen=True)
class Municipality:
    code: str
    name: str


@dataclass(frozen=True)
class StackConfig:
    stack: str
    source: str
    region: str
    municipality: Municipality
    vpc_cidr: ipaddress.IPv4Network
    availability_zones: tuple[str, ...]
    zones: Mapping[str, Zone]
    hosts: Mapping[str, Host]
    flows: tuple[Flow, ...]
    lines: Mapping[str, Line]
    backup: Backup
    log_retention_days: int
    # Non-AWS endpoint services the council accepted: full service name -> the reason.
    endpoint_exceptions: Mapping[str, str] = field(default_factory=dict)
    rotation: Rotation = field(
        default_factory=lambda: Rotation(dict(DEFAULT_ROTATION_DAYS), DEFAULT_NOTICE_DAYS)
    )
    # The AWS account the stack deploys into (aws:allowedAccountIds, one ID): the provider
    # refuses any other, and the fleet board names the status bucket and reader role with it.
    account_id: str | None = None
    fleet_reader: FleetReader | None = None
    cost: CostInputs | None = None
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def resource_base(self) -> str:
        """The prefix of the environment's named resources: claims-dc-<code>-<stack>."""
        return f"claims-dc-{self.municipality.code}-{self.stack}"

    def status_bucket(self, account_id: str) -> str:
        return f"{self.resource_base}-status-{account_id}"

    @property
    def fleet_reader_role(self) -> str:
        return f"{self.resource_base}-fleet-reader"

    def allowed(self) -> frozenset[tuple[str, str, int, str]]:
        """Every (source zone, destination zone, port, protocol) the flow policy allows."""
        return self._allowed

    @cached_property
    def _allowed(self) -> frozenset[tuple[str, str, int, str]]:
        # Derived once: is_allowed sits in the inner loops of the proof and the lab's matrix.
        return frozenset(
            (src, dst, flow.port, flow.protocol) for flow in self.flows for src, dst in flow.pairs()
        )

    def is_allowed(self, src: str, dst: str, port: int, protocol: str = "tcp") -> bool:
        return (src, dst, port, protocol) in self.allowed()

    def ports(self) -> tuple[tuple[int, str], ...]:
        """Every (port, protocol) the policy mentions, in a stable order."""
        return tuple(sorted({(f.port, f.protocol) for f in self.flows}))

    def line_zone(self, outside: str) -> str:
        """The one data-center zone an outside zone's line serves."""
        (zone,) = {d for f in self.flows for s, d in f.pairs() if s == outside}
        return zone

    def host_key_pinned_by(self, host: str) -> list[str]:
        """The outside zones whose parties log in to `host` over SSH, and so pin its host key
        (the fund's SFTP client pins the intake host's): a new key must be announced to them
        before it is served."""
        zone = self.hosts[host].zone
        return sorted(
            {
                src
                for f in self.flows
                if f.port == SSH_PORT and f.protocol == "tcp"
                for src, dst in f.pairs()
                if dst == zone and src in EXTERNAL_ZONES
            }
        )


def municipality_check_digit(first_five: str) -> int:
    """The check digit of a local government code (総務省 全国地方公共団体コード)."""
    total = sum(int(d) * w for d, w in zip(first_five, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


# Key names whose values are secrets: a message about such a key never repeats its value.
SECRET_KEY_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|private[_-]?key|api[_-]?key|credential|salt|psk"
    r"|pre[_-]?shared)",
    re.I,
)


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, key: str, value: object, why: str) -> None:
        leaf = key.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
        shown = "(not shown: a secret's name)" if SECRET_KEY_NAME.search(leaf) else repr(value)
        self.lines.append(f"{self.source}: {key} = {shown}: {why}")


def _network(problems: _Problems, key: str, value: object) -> ipaddress.IPv4Network | None:
    if not isinstance(value, str):
        problems.add(key, value, "must be an IPv4 CIDR string such as 10.231.10.0/24")
        return None
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        problems.add(key, value, f"not an IPv4 CIDR ({exc})")
        return None
    if not 16 <= net.prefixlen <= 28:
        problems.add(key, value, "prefix length must be between /16 and /28 (AWS subnet limits)")
        return None
    return net


def _mapping(problems: _Problems, key: str, value: object) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        problems.add(key, value, "must be a mapping")
        return None
    return value


def _int(problems: _Problems, key: str, value: object, low: int, high: int) -> int | None:
    # bool is an int in Python; `yes` must not become 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(key, value, f"must be an integer from {low} to {high}")
        return None
    return value


def _parse_azs(problems: _Problems, raw: object, region: object) -> tuple[str, ...]:
    key = f"{NS}availabilityZones"
    if not isinstance(raw, list) or len(raw) < 2:
        problems.add(key, raw, "must list at least two availability zones")
        return ()
    good: list[str] = []
    for i, az in enumerate(raw):
        if not isinstance(az, str) or not AZ_NAME.match(az):
            problems.add(f"{key}[{i}]", az, "not an availability zone of Tokyo or Osaka")
        elif isinstance(region, str) and not az.startswith(region):
            problems.add(f"{key}[{i}]", az, f"not in the stack's region {region}")
        elif az in good:
            problems.add(f"{key}[{i}]", az, "listed twice")
        else:
            good.append(az)
    return tuple(good) if len(good) == len(raw) else ()


def _zone_list(problems: _Problems, key: str, value: object) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        problems.add(key, value, "must be a zone name or a non-empty list of zone names")
        return ()
    good: list[str] = []
    for name in names:
        if name not in ZONE_NAMES:
            problems.add(key, name, f"unknown zone; zones are {', '.join(ZONE_NAMES)}")
        else:
            good.append(name)
    return tuple(good)


def _parse_municipality(problems: _Problems, raw: object) -> Municipality:
    key = f"{NS}municipality"
    data = _mapping(problems, key, raw) or {}
    code = data.get("code")
    name = data.get("name")
    if not isinstance(code, str) or not MUNICIPALITY_CODE.match(code):
        problems.add(f"{key}.code", code, "must be the 6-digit local government code, quoted")
        code = ""
    elif municipality_check_digit(code[:5]) != int(code[5]):
        problems.add(
            f"{key}.code",
            code,
            f"check digit should be {municipality_check_digit(code[:5])} (JIS X 0401/0402)",
        )
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{key}.name", name, "must be the municipality's name")
        name = ""
    return Municipality(code=str(code), name=str(name))


def _parse_zones(
    problems: _Problems, raw: object, vpc: ipaddress.IPv4Network | None, az_count: int
) -> dict[str, Zone]:
    key = f"{NS}zones"
    data = _mapping(problems, key, raw)
    if data is None:
        return {}
    for name in data:
        if name not in ZONE_NAMES:
            problems.add(f"{key}.{name}", name, f"unknown zone; zones are {', '.join(ZONE_NAMES)}")
    for name in ZONE_NAMES:
        if name not in data:
            problems.add(f"{key}.{name}", None, "missing; every zone of the design needs a CIDR")
    zones: dict[str, Zone] = {}
    for name in ZONE_NAMES:
        entry = data.get(name)
        if entry is None:
            continue
        entry_map = _mapping(problems, f"{key}.{name}", entry)
        if entry_map is None:
            continue
        net = _network(problems, f"{key}.{name}.cidr", entry_map.get("cidr"))
        if net is None:
            continue
        if vpc is not None:
            inside = net.subnet_of(vpc)
            if name in DATACENTER_ZONES and not inside:
                problems.add(f"{key}.{name}.cidr", str(net), f"must lie inside vpcCidr {vpc}")
                continue
            if name in EXTERNAL_ZONES and net.overlaps(vpc):
                problems.add(
                    f"{key}.{name}.cidr",
                    str(net),
                    f"an outside zone must not overlap vpcCidr {vpc}",
                )
                continue
        subnets: tuple[ipaddress.IPv4Network, ...] = ()
        if name in DATACENTER_ZONES and az_count:
            try:
                subnets = tuple(split_for_azs(net, az_count))
            except ValueError as exc:
                problems.add(f"{key}.{name}.cidr", str(net), str(exc))
                continue
        zones[name] = Zone(name=name, cidr=net, subnets=subnets)
    placed = list(zones.values())
    for i, a in enumerate(placed):
        for b in placed[i + 1 :]:
            if a.cidr.overlaps(b.cidr):
                problems.add(
                    f"{key}.{b.name}.cidr",
                    str(b.cidr),
                    f"overlaps {key}.{a.name}.cidr {a.cidr}",
                )
    return zones


def _parse_hosts(problems: _Problems, raw: object, zones: Mapping[str, Zone]) -> dict[str, Host]:
    key = f"{NS}hosts"
    data = _mapping(problems, key, raw)
    if data is None:
        return {}
    hosts: dict[str, Host] = {}
    seen: dict[ipaddress.IPv4Address, str] = {}
    for name, entry in data.items():
        hkey = f"{key}.{name}"
        if not isinstance(name, str) or not HOST_NAME.match(name):
            problems.add(hkey, name, "host name must be a lowercase DNS label (a-z, 0-9, -)")
            continue
        entry_map = _mapping(problems, hkey, entry)
        if entry_map is None:
            continue
        unknown = set(entry_map) - {"zone", "role", "address", "instanceType"}
        for extra in sorted(unknown):
            problems.add(f"{hkey}.{extra}", entry_map[extra], "unknown key")
        zone = entry_map.get("zone")
        role = entry_map.get("role")
        address = entry_map.get("address")
        instance_type = entry_map.get("instanceType", DEFAULT_INSTANCE_TYPE)
        if not isinstance(instance_type, str) or not INSTANCE_TYPE.match(instance_type):
            problems.add(f"{hkey}.instanceType", instance_type, "not an EC2 instance type")
            continue
        if zone not in ZONE_NAMES:
            problems.add(f"{hkey}.zone", zone, f"unknown zone; zones are {', '.join(ZONE_NAMES)}")
            continue
        if role not in ROLE_ZONES:
            problems.add(f"{hkey}.role", role, f"unknown role; roles are {', '.join(ROLE_ZONES)}")
            continue
        if ROLE_ZONES[role] != zone:
            problems.add(f"{hkey}.zone", zone, f"a {role} host belongs in zone {ROLE_ZONES[role]}")
            continue
        try:
            addr = ipaddress.IPv4Address(address)
        except (ValueError, TypeError):
            problems.add(f"{hkey}.address", address, "not an IPv4 address")
            continue
        z = zones.get(zone)
        if z is None:
            continue  # the zone's own problem is already reported
        if addr not in z.cidr:
            problems.add(f"{hkey}.address", str(addr), f"not inside zone {zone} ({z.cidr})")
            continue
        if addr in z.reserved:
            problems.add(
                f"{hkey}.address",
                str(addr),
                f"reserved in {z.cidr} (first four and last by AWS, "
                f"{z.router_address} for the lab router)",
            )
            continue
        if addr in seen:
            problems.add(f"{hkey}.address", str(addr), f"already taken by host {seen[addr]}")
            continue
        seen[addr] = name
        hosts[name] = Host(
            name=name, zone=zone, role=role, address=addr, instance_type=instance_type
        )
    return hosts


def _parse_flows(problems: _Problems, raw: object) -> tuple[Flow, ...]:
    key = f"{NS}flows"
    if not isinstance(raw, list) or not raw:
        problems.add(key, raw, "must be a non-empty list of flows")
        return ()
    flows: list[Flow] = []
    seen: dict[tuple[str, str, int, str], int] = {}
    for i, entry in enumerate(raw):
        fkey = f"{key}[{i}]"
        entry_map = _mapping(problems, fkey, entry)
        if entry_map is None:
            continue
        unknown = set(entry_map) - {"from", "to", "port", "protocol", "why", "service"}
        for extra in sorted(unknown):
            problems.add(f"{fkey}.{extra}", entry_map[extra], "unknown key")
        sources = _zone_list(problems, f"{fkey}.from", entry_map.get("from"))
        destinations = _zone_list(problems, f"{fkey}.to", entry_map.get("to"))
        port = entry_map.get("port")
        # bool is an int in Python; `port: yes` must not become port 1.
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            problems.add(f"{fkey}.port", port, "must be an integer port from 1 to 65535")
            continue
        protocol = entry_map.get("protocol", "tcp")
        if protocol not in PROTOCOLS:
            problems.add(f"{fkey}.protocol", protocol, f"must be one of {', '.join(PROTOCOLS)}")
            continue
        why = entry_map.get("why")
        if not isinstance(why, str) or not why.strip():
            problems.add(f"{fkey}.why", why, "every flow must say why it exists")
            continue
        service = entry_map.get("service")
        if service is not None and not isinstance(service, str):
            problems.add(f"{fkey}.service", service, "must be a string such as sftp")
            continue
        bad = False
        for src, dst in ((s, d) for s in sources for d in destinations):
            if src == dst:
                problems.add(f"{fkey}", f"{src} -> {dst}", "a flow must join two different zones")
                bad = True
            elif (src, dst) in FORBIDDEN_PAIRS:
                problems.add(
                    f"{fkey}",
                    f"{src} -> {dst}",
                    "LGWAN and the fund's line must never reach each other",
                )
                bad = True
            elif (src, dst, port, protocol) in seen:
                problems.add(
                    f"{fkey}",
                    f"{src} -> {dst} {port}/{protocol}",
                    f"duplicates {key}[{seen[(src, dst, port, protocol)]}]",
                )
                bad = True
            else:
                seen[(src, dst, port, protocol)] = i
        if bad or not sources or not destinations:
            continue
        flows.append(
            Flow(
                sources=sources,
                destinations=destinations,
                port=port,
                protocol=protocol,
                why=why.strip(),
                service=service,
            )
        )
    return tuple(flows)


def _parse_line(problems: _Problems, name: str, raw: object) -> Line | None:
    key = f"{NS}lines.{name}"
    data = _mapping(problems, key, raw)
    if data is None:
        return None
    kind = data.get("type")
    if kind not in LINE_KINDS:
        problems.add(f"{key}.type", kind, f"must be one of {', '.join(LINE_KINDS)}")
        return None
    allowed = {"type", "bgpAsn"} | (
        {"customerGatewayIp"} if kind == "vpn" else {"connectionId", "vlan"}
    )
    for extra in sorted(set(data) - allowed):
        problems.add(f"{key}.{extra}", data[extra], f"unknown key for a {kind} line")
    asn = _int(problems, f"{key}.bgpAsn", data.get("bgpAsn"), 1, 4294967294)
    if asn is not None and not private_asn(asn):
        problems.add(f"{key}.bgpAsn", asn, "must be a private ASN (64512-65534, 42xxxxxxxx)")
        asn = None
    if kind == "vpn":
        try:
            ip = ipaddress.IPv4Address(data.get("customerGatewayIp"))
        except (ValueError, TypeError):
            problems.add(
                f"{key}.customerGatewayIp", data.get("customerGatewayIp"), "not an IPv4 address"
            )
            return None
        return None if asn is None else Line(name, kind, asn, customer_gateway_ip=ip)
    connection = data.get("connectionId")
    if not isinstance(connection, str) or not DX_CONNECTION.match(connection):
        problems.add(f"{key}.connectionId", connection, "not a Direct Connect connection ID")
        return None
    vlan = _int(problems, f"{key}.vlan", data.get("vlan"), 1, 4094)
    if asn is None or vlan is None:
        return None
    return Line(name, kind, asn, dx_connection_id=connection, vlan=vlan)


def _parse_lines(problems: _Problems, raw: object) -> dict[str, Line]:
    key = f"{NS}lines"
    data = _mapping(problems, key, raw)
    if data is None:
        return {}
    for name in sorted(set(data) - set(EXTERNAL_ZONES)):
        problems.add(f"{key}.{name}", name, f"unknown line; lines are {', '.join(EXTERNAL_ZONES)}")
    lines: dict[str, Line] = {}
    for name in EXTERNAL_ZONES:
        if name not in data:
            problems.add(f"{key}.{name}", None, "missing; every outside zone needs its own line")
            continue
        line = _parse_line(problems, name, data[name])
        if line is not None:
            lines[name] = line
    if len(lines) == 2:
        lgwan, fund = lines["lgwan"], lines["fund"]
        same_vpn = lgwan.customer_gateway_ip and (
            lgwan.customer_gateway_ip == fund.customer_gateway_ip
        )
        same_dx = lgwan.dx_connection_id and (
            (lgwan.dx_connection_id, lgwan.vlan) == (fund.dx_connection_id, fund.vlan)
        )
        if same_vpn or same_dx:
            problems.add(
                f"{key}.fund",
                fund.customer_gateway_ip or fund.dx_connection_id,
                "the fund's line must be separate from LGWAN",
            )
    return lines


def _parse_backup(problems: _Problems, raw: object, region: object) -> Backup | None:
    key = f"{NS}backup"
    data = _mapping(problems, key, raw)
    if data is None:
        return None
    allowed = {"retentionDays", "noncurrentExpireDays", "coldAfterDays", "replicaRegion"}
    for extra in sorted(set(data) - allowed):
        problems.add(f"{key}.{extra}", data[extra], "unknown key")
    retention = _int(problems, f"{key}.retentionDays", data.get("retentionDays"), 1, 3650)
    expire = _int(
        problems, f"{key}.noncurrentExpireDays", data.get("noncurrentExpireDays"), 1, 3650
    )
    # S3 moves nothing to STANDARD_IA before 30 days.
    cold = _int(problems, f"{key}.coldAfterDays", data.get("coldAfterDays"), 30, 3650)
    replica = data.get("replicaRegion")
    if replica is not None and (replica not in ALLOWED_REGIONS or replica == region):
        problems.add(
            f"{key}.replicaRegion", replica, "must be the other Japanese region, or left out"
        )
        return None
    if retention is None or expire is None or cold is None:
        return None
    if expire < retention:
        problems.add(
            f"{key}.noncurrentExpireDays",
            expire,
            f"must be at least retentionDays ({retention}): locked versions stay",
        )
        return None
    return Backup(retention, expire, cold, replica)


def _parse_logs(problems: _Problems, raw: object) -> int | None:
    key = f"{NS}logs"
    data = _mapping(problems, key, raw)
    if data is None:
        return None
    for extra in sorted(set(data) - {"retentionDays"}):
        problems.add(f"{key}.{extra}", data[extra], "unknown key")
    days = data.get("retentionDays")
    if days not in LOG_RETENTION_DAYS or isinstance(days, bool):
        problems.add(f"{key}.retentionDays", days, "not a retention CloudWatch Logs accepts")
        return None
    return int(days)


def _parse_rotation(problems: _Problems, raw: object) -> Rotation:
    """Optional: every kind not named keeps its default interval."""
    key = f"{NS}rotation"
    every = dict(DEFAULT_ROTATION_DAYS)
    if raw is None:
        return Rotation(every, DEFAULT_NOTICE_DAYS)
    data = _mapping(problems, key, raw)
    if data is None:
        return Rotation(every, DEFAULT_NOTICE_DAYS)
    for extra in sorted(set(data) - {"everyDays", "noticeDays"}):
        problems.add(f"{key}.{extra}", data[extra], "unknown key")
    given = _mapping(problems, f"{key}.everyDays", data.get("everyDays", {})) or {}
    for kind, days in given.items():
        if kind not in ROTATION_KINDS:
            problems.add(f"{key}.everyDays.{kind}", days,
                         f"unknown kind; kinds are {', '.join(ROTATION_KINDS)}")  # fmt: skip
            continue
        checked = _int(problems, f"{key}.everyDays.{kind}", days, 1, 3650)
        if checked is not None and kind == "tls" and checked > TLS_MAX_ROTATION_DAYS:
            problems.add(f"{key}.everyDays.tls", days,
                         f"a certificate lives {TLS_CERT_DAYS} days: rotate at least every "
                         f"{TLS_MAX_ROTATION_DAYS} days, before the {CERT_WARNING_DAYS}-day "
                         "warning")  # fmt: skip
        elif checked is not None:
            every[kind] = checked
    notice = _int(problems, f"{key}.noticeDays", data.get("noticeDays", DEFAULT_NOTICE_DAYS),
                  1, 90)  # fmt: skip
    return Rotation(every, notice if notice is not None else DEFAULT_NOTICE_DAYS)


def _parse_account(problems: _Problems, raw: object) -> str | None:
    """Optional `aws:allowedAccountIds` (the AWS provider's own key): exactly one account."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        with contextlib.suppress(json.JSONDecodeError):
            raw = json.loads(raw)  # as the engine passes a list
    if not (isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str)
            and ACCOUNT_ID.match(raw[0])):  # fmt: skip
        problems.add("aws:allowedAccountIds", raw, "one 12-digit AWS account ID in a list")
        return None
    return raw[0]


def _parse_fleet_reader(problems: _Problems, raw: object) -> FleetReader | None:
    key = f"{NS}fleetReader"
    if raw is None:
        return None
    data = _mapping(problems, key, raw)
    if data is None:
        return None
    for extra in sorted(set(data) - {"operationsAccountId", "externalId"}):
        problems.add(f"{key}.{extra}", data[extra], "unknown key")
    account, external = data.get("operationsAccountId"), data.get("externalId")
    ok = True
    if not (isinstance(account, str) and ACCOUNT_ID.match(account)):
        problems.add(f"{key}.operationsAccountId", account, "a 12-digit AWS account ID")
        ok = False
    if not (isinstance(external, str) and EXTERNAL_ID.match(external)):
        problems.add(f"{key}.externalId", "(given)" if external else external,
                     "16 to 1224 of A-Z a-z 0-9 + = , . @ : / -")  # fmt: skip
        ok = False
    return FleetReader(str(account), str(external)) if ok else None


def _number(problems: _Problems, key: str, value: object, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        problems.add(key, value, f"must be a number from {low:g} to {high:g}")
        return None
    return float(value)


def _numbers(
    problems: _Problems, key: str, raw: object, known: Mapping[str, str], high: float
) -> dict[str, float] | None:
    data = _mapping(problems, key, raw)
    if data is None:
        return None
    for extra in sorted(set(data) - set(known)):
        problems.add(f"{key}.{extra}", data[extra], f"unknown key; known are {', '.join(known)}")
    found = {}
    for name in known:
        if name not in data:
            problems.add(f"{key}.{name}", None, f"required: {known[name]}")
            continue
        value = _number(problems, f"{key}.{name}", data[name], 0, high)
        if value is not None:
            found[name] = value
    return found if len(found) == len(known) and set(data) <= set(known) else None


def _parse_cost(problems: _Problems, raw: object) -> CostInputs | None:
    key = f"{NS}cost"
    if raw is None:
        return None
    data = _mapping(problems, key, raw)
    if data is None:
        return None
    for extra in sorted(set(data) - {"jpyPerUsd", "years", "usage", "onPremises"}):
        problems.add(f"{key}.{extra}", data[extra], "unknown key")
    rate = _number(problems, f"{key}.jpyPerUsd", data.get("jpyPerUsd"), 50, 500)
    years = _int(problems, f"{key}.years", data.get("years", 5), 1, 10)
    usage = _numbers(problems, f"{key}.usage", data.get("usage"), COST_USAGE_KEYS, 1e7)
    baseline = None
    if data.get("onPremises") is not None:
        baseline = _numbers(
            problems, f"{key}.onPremises", data["onPremises"], ON_PREMISES_KEYS, 1e11
        )
    if rate is None or years is None or usage is None:
        return None
    if data.get("onPremises") is not None and baseline is None:
        return None
    return CostInputs(rate, years, usage, baseline)


def _parse_endpoint_services(problems: _Problems, raw: object) -> dict[str, str]:
    """Services other than AWS's own that an endpoint may reach, each with its reason. Listing
    one quiets the policy rule; the proof still cannot see past it."""
    key = f"{NS}endpointServices"
    if raw is None:
        return {}
    if not isinstance(raw, list):
        problems.add(key, raw, "must be a list of {service, why}")
        return {}
    found: dict[str, str] = {}
    for i, entry in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != {"service", "why"}:
            problems.add(where, entry, "must be {service: NAME, why: REASON}")
            continue
        name, why = entry["service"], entry["why"]
        if not isinstance(name, str) or not SERVICE_NAME.match(name):
            problems.add(f"{where}.service", name, "not an endpoint service name")
        elif name in allowed_services(ALLOWED_REGIONS[0]) or name in allowed_services(
            ALLOWED_REGIONS[1]
        ):
            problems.add(f"{where}.service", name, "an AWS service: it needs no exception")
        elif not isinstance(why, str) or len(why.strip()) < 10 or len(why) > 500:
            problems.add(f"{where}.why", why, "give the reason (10 to 500 characters)")
        elif name in found:
            problems.add(f"{where}.service", name, "listed twice")
        else:
            found[name] = why.strip()
    return found


# What `claims-dc fleet new` writes where only the municipality or the fund can give the
# value (a line's router address, the far side's network): refused by name until filled in.
PLACEHOLDER = "FILL IN:"


def placeholders(value: object, key: str = "") -> list[tuple[str, str]]:
    """(key, what to fill in) for every placeholder left in a stack's config."""
    if isinstance(value, str):
        return [(key, value)] if value.startswith(PLACEHOLDER) else []
    found: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            found += placeholders(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += placeholders(v, f"{key}[{i}]")
    return found


def parse(config: Mapping[str, Any], *, stack: str, source: str) -> StackConfig:
    """Validate the `config:` mapping of a stack file (keys like `claims-dc:zones`)."""
    problems = _Problems(source)
    unfilled = placeholders(config)
    if unfilled:
        # Everything else is judged once these are real values: one message per blank.
        raise ConfigError([f"{source}: {k}: not filled in yet ({v})" for k, v in unfilled])
    for key in config:
        if key.startswith(NS) and key[len(NS) :] not in KNOWN_KEYS:
            problems.add(key, config[key], f"unknown key; known are {', '.join(KNOWN_KEYS)}")
    region = config.get("aws:region")
    if region not in ALLOWED_REGIONS:
        problems.add(
            "aws:region",
            region,
            f"data must stay in Japan: use {' or '.join(ALLOWED_REGIONS)}",
        )
    municipality = _parse_municipality(problems, config.get(f"{NS}municipality"))
    vpc = _network(problems, f"{NS}vpcCidr", config.get(f"{NS}vpcCidr"))
    azs = _parse_azs(problems, config.get(f"{NS}availabilityZones"), region)
    zones = _parse_zones(problems, config.get(f"{NS}zones"), vpc, len(azs))
    hosts = _parse_hosts(problems, config.get(f"{NS}hosts"), zones)
    before_flows = len(problems.lines)
    flows = _parse_flows(problems, config.get(f"{NS}flows"))
    # Judged only on a flow list that parsed cleanly, so one bad flow is not reported twice.
    for outside in EXTERNAL_ZONES if len(problems.lines) == before_flows else ():
        served = sorted({d for f in flows for s, d in f.pairs() if s == outside})
        if len(served) != 1:
            problems.add(
                f"{NS}flows",
                f"{outside} -> {', '.join(served) or 'nothing'}",
                f"the {outside} line must serve exactly one data-center zone",
            )
    lines = _parse_lines(problems, config.get(f"{NS}lines"))
    backup = _parse_backup(problems, config.get(f"{NS}backup"), region)
    log_days = _parse_logs(problems, config.get(f"{NS}logs"))
    exceptions = _parse_endpoint_services(problems, config.get(f"{NS}endpointServices"))
    rotation = _parse_rotation(problems, config.get(f"{NS}rotation"))
    account_id = _parse_account(problems, config.get("aws:allowedAccountIds"))
    fleet_reader = _parse_fleet_reader(problems, config.get(f"{NS}fleetReader"))
    cost = _parse_cost(problems, config.get(f"{NS}cost"))
    if problems.lines:
        raise ConfigError(problems.lines)
    # no problems means every part parsed
    assert vpc is not None and backup is not None and log_days is not None
    return StackConfig(
        stack=stack,
        source=source,
        region=str(region),
        municipality=municipality,
        vpc_cidr=vpc,
        availability_zones=azs,
        zones=zones,
        hosts=hosts,
        flows=flows,
        lines=lines,
        backup=backup,
        log_retention_days=log_days,
        endpoint_exceptions=exceptions,
        rotation=rotation,
        account_id=account_id,
        fleet_reader=fleet_reader,
        cost=cost,
        raw=dict(config),
    )


def stack_file(stack: str, root: Path | None = None) -> Path:
    return (root or Path(__file__).resolve().parent.parent) / f"Pulumi.{stack}.yaml"


def load_file(path: Path) -> StackConfig:
    """Load `Pulumi.<stack>.yaml`; the stack name comes from the file name."""
    match = re.fullmatch(r"Pulumi\.([A-Za-z0-9_.-]+)\.yaml", path.name)
    if match is None:
        raise ConfigError([f"{path}: file name must be Pulumi.<stack>.yaml"])
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("config"), Mapping):
        raise ConfigError([f"{path}: config = {document!r}: needs a top-level 'config:' mapping"])
    return parse(document["config"], stack=match.group(1), source=path.name)


def load_stack(stack: str, root: Path | None = None) -> StackConfig:
    return load_file(stack_file(stack, root))


def from_pulumi() -> StackConfig:
    """Inside a Pulumi program: read the same keys through the engine and validate them alike."""
    import pulumi

    project = pulumi.Config(PROJECT)
    aws = pulumi.Config("aws")
    raw: dict[str, Any] = {"aws:region": aws.get("region")}
    if aws.get("allowedAccountIds") is not None:
        raw["aws:allowedAccountIds"] = aws.get("allowedAccountIds")
    for key in KNOWN_KEYS:
        value = project.get(key)
        if value is None:
            continue
        # The engine passes structured values as JSON text and plain strings as they are.
        if value.lstrip()[:1] in ("{", "["):
            try:
                raw[f"{NS}{key}"] = json.loads(value)
            except json.JSONDecodeError:
                raw[f"{NS}{key}"] = value
        else:
            raw[f"{NS}{key}"] = value
    stack = pulumi.get_stack()
    return parse(raw, stack=stack, source=f"Pulumi.{stack}.yaml")
