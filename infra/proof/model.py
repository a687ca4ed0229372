"""The network model: what the program declares, as a graph a proof can walk.

Built from the resources recorded under mocks (every property referring to another resource by
its `<name>-id`). It knows VPCs, subnets, route tables (and their routes, associations and VGW
propagation), internet / egress-only / NAT / virtual private / transit gateways with their route
tables, attachments, associations and propagations, VPN connections (and their static routes),
Direct Connect gateways and transit VIFs, VPC peering, VPC endpoints, security groups and their
rules, NACLs and their rules, public-IP settings, EIPs, instances and network interfaces.

It fails closed: a resource type that can carry traffic and that the model does not understand
is listed in `unknown`, and every verdict over such a model is UNKNOWN, never HOLDS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from infra.config import ALLOWED_REGIONS
from infra.network.services import aws_service

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Types that carry no traffic: identities, keys, storage, logs, the lab's components.
NON_TRAFFIC_PREFIXES = (
    "claims-dc:", "pulumi:providers:", "aws:kms/", "aws:iam/", "aws:s3/", "aws:cloudwatch/",
    "aws:cloudtrail/",
)  # fmt: skip
NON_TRAFFIC_TYPES = frozenset({
    "aws:ec2/flowLog:FlowLog",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/networkAclAssociation:NetworkAclAssociation",
    "aws:ec2transitgateway/routeTableAssociation:RouteTableAssociation",
    "aws:ec2transitgateway/routeTablePropagation:RouteTablePropagation",
    "aws:directconnect/gatewayAssociation:GatewayAssociation",
    "aws:ec2/vpnGatewayAttachment:VpnGatewayAttachment",
    "aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment",
    "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation",
    "aws:ec2/eipAssociation:EipAssociation",
    "aws:ec2/vpnConnectionRoute:VpnConnectionRoute",
})  # fmt: skip


@dataclass(frozen=True)
class Route:
    resource: str  # the resource that declares it (a Route, or the table for inline routes)
    destination: Net | None  # None when it is a prefix list (see prefix_list)
    target_kind: str  # local, igw, eigw, nat, vgw, tgw, pcx, vpce, eni, unknown
    target: str  # the target's resource name
    prefix_list: str | None = None


@dataclass
class RouteTable:
    name: str
    vpc: str
    routes: list[Route] = field(default_factory=list)
    propagating_vgws: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FilterRule:
    resource: str
    egress: bool
    allow: bool
    number: int  # NACL rule number (order); 0 for security group rules
    cidr: Net | None
    protocol: str  # "tcp", "udp", "icmp", "-1" (all)
    from_port: int
    to_port: int
    prefix_list: str | None = None
    group: str | None = None  # a security group referenced as the peer

    def matches(
        self,
        peer: Address,
        port: int,
        protocol: str,
        prefix_cidrs: Mapping[str, list[Net]],
        peer_groups: Iterable[str],
    ) -> bool:
        if self.protocol not in ("-1", protocol):
            return False
        if self.protocol != "-1" and not self.from_port <= port <= self.to_port:
            return False
        if self.cidr is not None:
            return peer.version == self.cidr.version and peer in self.cidr
        if self.prefix_list is not None:
            return any(peer in c for c in prefix_cidrs.get(self.prefix_list, []))
        if self.group is not None:
            return self.group in set(peer_groups)
        return False


@dataclass
class SecurityGroup:
    name: str
    vpc: str
    rules: list[FilterRule] = field(default_factory=list)


@dataclass
class Nacl:
    name: str
    vpc: str
    subnets: list[str] = field(default_factory=list)
    rules: list[FilterRule] = field(default_factory=list)


@dataclass
class Subnet:
    name: str
    vpc: str
    cidr: Net
    public_ip_on_launch: bool = False
    cidr6: Net | None = None  # its IPv6 CIDR, if any
    ipv6_on_launch: bool = False

    def holds(self, address: Address) -> bool:
        return any(
            n is not None and address.version == n.version and address in n
            for n in (self.cidr, self.cidr6)
        )


@dataclass
class Interface:
    """Something with addresses in a subnet: an instance, an ENI, an interface endpoint."""

    name: str
    subnet: str
    addresses: list[Address]  # every private address, IPv4 and IPv6; the primary first
    groups: list[str]
    public_ip: bool = False
    source_dest_check: bool = True
    kind: str = "instance"
    endpoint: str | None = None  # for an interface endpoint: the VpcEndpoint's name

    @property
    def address(self) -> Address | None:
        return self.addresses[0] if self.addresses else None


@dataclass(frozen=True)
class Endpoint:
    """A VPC endpoint: a door to the service it names."""

    name: str
    kind: str  # Gateway, Interface, GatewayLoadBalancer
    service: str
    aws: bool  # one of the stack region's AWS services (infra.network.services)
    prefix_list: str | None = None  # a gateway endpoint's service prefix list


@dataclass
class Attachment:
    name: str
    tgw: str
    kind: str  # vpc, vpn, dx
    vpc: str | None = None
    subnets: list[str] = field(default_factory=list)
    site: str | None = None  # for vpn / dx: the customer gateway's IP or the DX connection


class TgwRoute(NamedTuple):
    destination: Net
    attachment: str
    resource: str  # the Route that declares it


@dataclass
class TransitGateway:
    name: str
    route_tables: dict[str, list[TgwRoute]] = field(default_factory=dict)  # rt -> routes
    association: dict[str, str] = field(default_factory=dict)  # attachment -> route table
    propagation: dict[str, list[str]] = field(default_factory=dict)  # rt -> attachments
    default_association: bool = True
    default_propagation: bool = True


@dataclass
class VpnConnection:
    name: str
    site: str  # customer gateway IP
    vgw: str | None
    tgw: str | None
    static_routes: list[Net] = field(default_factory=list)


@dataclass
class Model:
    vpcs: dict[str, Net] = field(default_factory=dict)
    vpc_v6: dict[str, Net] = field(default_factory=dict)  # VPC -> its IPv6 CIDR
    igw: dict[str, str] = field(default_factory=dict)  # igw name -> vpc
    eigw: dict[str, str] = field(default_factory=dict)
    nat: dict[str, str] = field(default_factory=dict)  # nat name -> subnet
    vgw: dict[str, str | None] = field(default_factory=dict)  # vgw name -> vpc
    peering: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # pcx -> (vpc, peer)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    route_tables: dict[str, RouteTable] = field(default_factory=dict)
    subnet_table: dict[str, str] = field(default_factory=dict)
    main_table: dict[str, str] = field(default_factory=dict)  # vpc -> route table
    nacls: dict[str, Nacl] = field(default_factory=dict)
    groups: dict[str, SecurityGroup] = field(default_factory=dict)
    interfaces: list[Interface] = field(default_factory=list)
    eips: list[str] = field(default_factory=list)
    tgws: dict[str, TransitGateway] = field(default_factory=dict)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    vpns: dict[str, VpnConnection] = field(default_factory=dict)
    prefix_cidrs: dict[str, list[Net]] = field(default_factory=dict)  # prefix list -> CIDRs
    gateway_endpoints: dict[str, str] = field(default_factory=dict)  # prefix list -> endpoint
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # "type name" the model cannot read
    counted: int = 0  # resources read

    def nacl_of(self, subnet: str) -> Nacl | None:
        return next((n for n in self.nacls.values() if subnet in n.subnets), None)

    def subnet_at(self, address: Address) -> str | None:
        return next((n for n, s in self.subnets.items() if s.holds(address)), None)

    def interface_at(self, address: Address) -> Interface | None:
        return next((i for i in self.interfaces if address in i.addresses), None)

    def vpc_holds(self, vpc: str | None, address: Address) -> bool:
        """`address` is inside the VPC's IPv4 or IPv6 CIDR."""
        return any(
            n is not None and address.version == n.version and address in n
            for n in (self.vpcs.get(vpc or ""), self.vpc_v6.get(vpc or ""))
        )


def dx_site(connection: object, vlan: object) -> str:
    """How a Direct Connect line is named as a site: its connection and VLAN."""
    return f"dx:{connection}:{vlan}"


def within(inner: Net, outer: Net) -> bool:
    """`inner` lies inside `outer` (False across IP versions)."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def overlaps(a: Net, b: Net) -> bool:
    """`a` and `b` share an address (False across IP versions)."""
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.overlaps(b)
    if isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network):
        return a.overlaps(b)
    return False


def _net(value: Any) -> Net | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _port(value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _protocol(value: Any) -> str:
    text = str(value if value is not None else "-1").lower()
    return {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1"}.get(text, text)


# --- building the model from declared resources ----------------------------------------------

TARGET_KEYS = (
    ("gatewayId", "gateway"), ("natGatewayId", "nat"), ("transitGatewayId", "tgw"),
    ("vpcPeeringConnectionId", "pcx"), ("egressOnlyGatewayId", "eigw"),
    ("networkInterfaceId", "eni"), ("vpcEndpointId", "vpce"), ("carrierGatewayId", "unknown"),
    ("localGatewayId", "unknown"), ("coreNetworkArn", "unknown"),
)  # fmt: skip


# Every input through which one resource names another, at any depth (inline routes and rules
# included). Each value must resolve to a declared resource, a prefix list the model knows, or
# "local"; anything else is an unknown, whatever reader would have met it.
REFERENCE_KEYS = frozenset({
    "vpcId", "subnetId", "subnetIds", "routeTableId", "routeTableIds", "defaultRouteTableId",
    "defaultNetworkAclId", "gatewayId", "natGatewayId", "transitGatewayId",
    "vpcPeeringConnectionId", "egressOnlyGatewayId", "networkInterfaceId", "vpcEndpointId",
    "carrierGatewayId", "localGatewayId", "coreNetworkArn", "securityGroupId",
    "securityGroupIds", "vpcSecurityGroupIds", "securityGroups", "referencedSecurityGroupId",
    "sourceSecurityGroupId", "networkAclId", "prefixListId", "prefixListIds",
    "destinationPrefixListId", "transitGatewayAttachmentId", "transitGatewayRouteTableId",
    "vpnGatewayId", "customerGatewayId", "vpnConnectionId", "internetGatewayId", "instance",
    "instanceId", "networkInterface", "allocationId", "peerVpcId", "dxGatewayId",
    "associatedGatewayId",
})  # fmt: skip
PREFIX_LIST_KEYS = frozenset({"prefixListId", "prefixListIds", "destinationPrefixListId"})
ULA = ipaddress.ip_network("fc00::/7")  # the only IPv6 space that is not public
# An AWS-generated IPv6 block is known only after deploy; this documentation /56 stands in.
GENERATED_V6 = ipaddress.ip_network("2001:db8:c1a1:ff00::/56")


def public_v6(address: Address) -> bool:
    return address.version == 6 and address not in ULA


@dataclass(frozen=True)
class Declared:
    """One declared resource, as the model reads it."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any] = field(default_factory=dict)


class _Builder:
    def __init__(
        self,
        resources: list[Declared],
        sites: Mapping[str, str],
        prefix_cidrs: Mapping[str, list[str]],
        dx_attachment_id: str | None,
        region: str,
    ) -> None:
        self.resources = resources
        self.sites = sites
        self.region = region
        # Addresses AWS assigns at deploy time, given out after every declared one is known.
        self.to_place: list[tuple[Interface, int, int]] = []  # (interface, version, how many)
        self.m = Model(prefix_cidrs={k: [n for n in map(_net, v) if n] for k, v in
                                     prefix_cidrs.items()})  # fmt: skip
        # Under mocks every resource's id is `<name>-id`; computed ids map to their owners too.
        self.ids: dict[str, str] = {f"{r.name}-id": r.name for r in resources}
        for r in resources:
            att = r.outputs.get("transitGatewayAttachmentId")
            if isinstance(att, str):
                self.ids[att] = r.name
        dx = [
            r
            for r in resources
            if r.type == "aws:directconnect/gatewayAssociation:GatewayAssociation"
        ]
        if dx_attachment_id and len(dx) == 1:
            self.ids[dx_attachment_id] = dx[0].name
        self.types = {r.name: r.type for r in resources}
        self.cgw_ip: dict[str, str] = {}
        self.dx_sites: dict[str, list[str]] = {}  # dx gateway -> sites

    def ref(self, value: Any) -> str | None:
        return self.ids.get(value) if isinstance(value, str) else None

    def refs(self, value: Any) -> list[str]:
        values = value if isinstance(value, list) else [value]
        return [n for n in (self.ref(v) for v in values) if n]

    def build(self) -> Model:
        # Four phases by dependency: things, what sits in them, what attaches, what routes
        # over the attachments. Record order is not dependency order (registration is async).
        # Long on purpose: four dependency phases, each a table from resource type to its handler;
        # the tables are the reading
        first = {
            "aws:ec2/vpc:Vpc": self._vpc,
            "aws:ec2/managedPrefixList:ManagedPrefixList": self._prefix_list,
            "aws:ec2/internetGateway:InternetGateway": self._igw,
            "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway": self._eigw,
            "aws:ec2/vpnGateway:VpnGateway": self._vgw,
            "aws:ec2transitgateway/transitGateway:TransitGateway": self._tgw,
            "aws:ec2/customerGateway:CustomerGateway": self._cgw,
            "aws:directconnect/gateway:Gateway": lambda r: None,
        }
        second = {
            "aws:ec2/subnet:Subnet": self._subnet,
            "aws:ec2/managedPrefixListEntry:ManagedPrefixListEntry": self._prefix_list_entry,
            "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment": self._igw_attachment,
            "aws:ec2/vpnGatewayAttachment:VpnGatewayAttachment": self._vgw_attachment,
            "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": self._peering,
            "aws:ec2/routeTable:RouteTable": self._route_table,
            "aws:ec2/defaultRouteTable:DefaultRouteTable": self._default_route_table,
            "aws:ec2/networkAcl:NetworkAcl": self._nacl,
            "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl": self._nacl,
            "aws:ec2/securityGroup:SecurityGroup": self._group,
            "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": self._group,
            "aws:ec2transitgateway/routeTable:RouteTable": self._tgw_route_table,
            "aws:directconnect/transitVirtualInterface:TransitVirtualInterface": self._vif,
            "aws:directconnect/privateVirtualInterface:PrivateVirtualInterface": self._vif,
        }
        third = {
            "aws:ec2/natGateway:NatGateway": self._nat,
            "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation": self._main_assoc,
            "aws:ec2/routeTableAssociation:RouteTableAssociation": self._rt_assoc,
            "aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation": self._propagation,
            "aws:ec2/vpcEndpoint:VpcEndpoint": self._endpoint,
            "aws:ec2/route:Route": self._route,
            "aws:ec2/networkAclRule:NetworkAclRule": self._nacl_rule,
            "aws:ec2/networkAclAssociation:NetworkAclAssociation": self._nacl_assoc,
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": self._sg_rule,
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": self._sg_rule,
            "aws:ec2/securityGroupRule:SecurityGroupRule": self._sg_rule_classic,
            "aws:ec2/instance:Instance": self._instance,
            "aws:ec2/networkInterface:NetworkInterface": self._eni,
            "aws:ec2transitgateway/vpcAttachment:VpcAttachment": self._tgw_vpc_attachment,
            "aws:ec2/vpnConnection:VpnConnection": self._vpn,
            "aws:directconnect/gatewayAssociation:GatewayAssociation": self._dx_association,
        }
        fourth = {
            "aws:ec2/eip:Eip": self._eip,
            "aws:ec2/eipAssociation:EipAssociation": self._eip,
            "aws:ec2/vpnConnectionRoute:VpnConnectionRoute": self._vpn_route,
            "aws:ec2transitgateway/routeTableAssociation:RouteTableAssociation": self._tgw_assoc,
            "aws:ec2transitgateway/routeTablePropagation:RouteTablePropagation": self._tgw_prop,
            "aws:ec2transitgateway/route:Route": self._tgw_route,
        }
        phases = (first, second, third, fourth)
        handled: set[str] = set()
        for phase in phases:
            handled |= set(phase)
            for r in self.resources:
                handler = phase.get(r.type)
                if handler is None:
                    continue
                try:
                    handler(r)
                except Exception as exc:  # a resource the reader fails on is not understood
                    self.m.unknown.append(
                        f"{r.type} {r.name} (the model could not read it: "
                        f"{type(exc).__name__}: {str(exc)[:120]})"
                    )
                self.m.counted += 1
        for r in self.resources:
            if r.type.startswith(NON_TRAFFIC_PREFIXES):
                continue
            self._check_references(r)
            if r.type not in handled and r.type not in NON_TRAFFIC_TYPES:
                self.m.unknown.append(f"{r.type} {r.name}")
        self._place_addresses()
        eips = [
            r
            for r in self.resources
            if r.type in ("aws:ec2/eip:Eip", "aws:ec2/eipAssociation:EipAssociation")
        ]
        for r in eips:
            for target in self.refs([r.inputs.get("instance"), r.inputs.get("networkInterface")]):
                for iface in self.m.interfaces:
                    if iface.name == target:
                        iface.public_ip = True
        return self.m

    def _resolves(self, key: str, value: str) -> bool:
        if value in self.ids:
            return True
        if key in PREFIX_LIST_KEYS:
            return value in self.m.prefix_cidrs
        return key == "gatewayId" and value == "local"

    def _check_references(self, r: Declared) -> None:
        def walk(node: Any, path: str) -> None:
            if isinstance(node, Mapping):
                for key, value in node.items():
                    where = f"{path}.{key}" if path else str(key)
                    if key in REFERENCE_KEYS:
                        for v in value if isinstance(value, list) else [value]:
                            if isinstance(v, str) and v and not self._resolves(key, v):
                                self.m.unknown.append(
                                    f"{r.type} {r.name} ({where} = {v[:64]!r} is not declared "
                                    f"in the program)"
                                )
                            elif v is not None and not isinstance(v, str):
                                self.m.unknown.append(
                                    f"{r.type} {r.name} ({where} is not a reference the model "
                                    f"can read)"
                                )
                    else:
                        walk(value, where)
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, f"{path}[{i}]")

        walk(r.inputs, "")

    def _place_addresses(self) -> None:
        """Give each interface AWS would number at deploy time its own addresses, past AWS's
        reserved four and clear of every declared one, so no two share an address."""
        taken = {a for i in self.m.interfaces for a in i.addresses}
        for iface, version, count in self.to_place:
            subnet = self.m.subnets[iface.subnet]
            net = subnet.cidr if version == 4 else subnet.cidr6
            if net is None:
                self.m.unknown.append(f"{iface.kind} {iface.name} (IPv{version} address in a "
                                      f"subnet without IPv{version})")  # fmt: skip
                continue
            candidate = net.network_address + 4
            for _ in range(count):
                while candidate in taken:
                    candidate += 1
                if candidate not in net or candidate == net.broadcast_address:
                    self.m.unknown.append(f"{iface.kind} {iface.name} (subnet {subnet.name} "
                                          f"is full)")  # fmt: skip
                    break
                iface.addresses.append(candidate)
                taken.add(candidate)
        for iface in self.m.interfaces:
            if any(public_v6(a) for a in iface.addresses):
                iface.public_ip = True

    def _addresses(self, r: Declared, subnet: str, keys: tuple[str, ...]) -> list[Address]:
        """Declared addresses under `keys` (one value or a list each), in order, once each."""
        found: list[Address] = []
        for key in keys:
            value = r.inputs.get(key)
            for v in value if isinstance(value, list) else [value]:
                if v in (None, ""):
                    continue
                address = ipaddress.ip_address(v)  # a bad one makes the resource unknown
                if not self.m.subnets[subnet].holds(address):
                    raise ValueError(f"{key} {address} is outside subnet {subnet}")
                if address not in found:
                    found.append(address)
        return found

    def _counts(self, iface: Interface, r: Declared, v4_key: str | None, v6_key: str) -> None:
        """Addresses asked for by number: AWS picks them; the model places stand-ins."""
        subnet = self.m.subnets[iface.subnet]
        v6 = _port(r.inputs.get(v6_key), 0)
        if v6 == 0 and subnet.ipv6_on_launch and not any(a.version == 6 for a in iface.addresses):
            v6 = 1
        if v6:
            self.to_place.append((iface, 6, v6))
        if v4_key and _port(r.inputs.get(v4_key), 0):
            self.to_place.append((iface, 4, _port(r.inputs.get(v4_key), 0)))
        if not iface.addresses:
            self.to_place.insert(0, (iface, 4, 1))

    # --- resource readers ---

    def _prefix_list(self, r: Declared) -> None:
        entries = r.inputs.get("entries") or []
        cidrs = [_net(e.get("cidr")) for e in entries if isinstance(e, Mapping)]
        if any(c is None for c in cidrs):
            raise ValueError("an entry's cidr is not a CIDR")
        self.m.prefix_cidrs[f"{r.name}-id"] = [c for c in cidrs if c is not None]

    def _prefix_list_entry(self, r: Declared) -> None:
        cidr = _net(r.inputs.get("cidr"))
        pl = r.inputs.get("prefixListId")
        if cidr is None or pl not in self.m.prefix_cidrs:
            raise ValueError("no CIDR, or a prefix list the program does not declare")
        self.m.prefix_cidrs[pl].append(cidr)

    def _vpc(self, r: Declared) -> None:
        cidr = _net(r.inputs.get("cidrBlock"))
        if cidr is None:
            self.m.unknown.append(f"{r.type} {r.name} (no CIDR)")
            return
        self.m.vpcs[r.name] = cidr
        v6 = _net(r.inputs.get("ipv6CidrBlock"))
        if v6 is None and (r.inputs.get("assignGeneratedIpv6CidrBlock")
                           or r.inputs.get("ipv6IpamPoolId")):  # fmt: skip
            v6 = GENERATED_V6
        if v6 is not None:
            self.m.vpc_v6[r.name] = v6

    def _subnet(self, r: Declared) -> None:
        vpc, cidr = self.ref(r.inputs.get("vpcId")), _net(r.inputs.get("cidrBlock"))
        if vpc is None or cidr is None:
            self.m.unknown.append(f"{r.type} {r.name}")
            return
        v6 = _net(r.inputs.get("ipv6CidrBlock"))
        if v6 is None and r.inputs.get("ipv6CidrBlock"):
            raise ValueError("ipv6CidrBlock is not a CIDR")
        if v6 is None and r.inputs.get("ipv6Native"):
            v6 = GENERATED_V6
        self.m.subnets[r.name] = Subnet(
            r.name, vpc, cidr, bool(r.inputs.get("mapPublicIpOnLaunch")), v6,
            bool(r.inputs.get("assignIpv6AddressOnCreation")),
        )  # fmt: skip

    def _igw(self, r: Declared) -> None:
        self.m.igw[r.name] = self.ref(r.inputs.get("vpcId")) or ""

    def _igw_attachment(self, r: Declared) -> None:
        igw = self.ref(r.inputs.get("internetGatewayId"))
        if igw:
            self.m.igw[igw] = self.ref(r.inputs.get("vpcId")) or ""

    def _eigw(self, r: Declared) -> None:
        self.m.eigw[r.name] = self.ref(r.inputs.get("vpcId")) or ""

    def _nat(self, r: Declared) -> None:
        self.m.nat[r.name] = self.ref(r.inputs.get("subnetId")) or ""

    def _vgw(self, r: Declared) -> None:
        self.m.vgw[r.name] = self.ref(r.inputs.get("vpcId"))

    def _vgw_attachment(self, r: Declared) -> None:
        vgw = self.ref(r.inputs.get("vpnGatewayId"))
        if vgw:
            self.m.vgw[vgw] = self.ref(r.inputs.get("vpcId"))

    def _peering(self, r: Declared) -> None:
        self.m.peering[r.name] = (self.ref(r.inputs.get("vpcId")) or "",
                                  self.ref(r.inputs.get("peerVpcId")))  # fmt: skip

    def _route_table(self, r: Declared) -> None:
        table = RouteTable(r.name, self.ref(r.inputs.get("vpcId")) or "")
        self.m.route_tables[r.name] = table
        for route in r.inputs.get("routes") or []:
            self._add_route(table, r.name, route)
        table.propagating_vgws += self.refs(r.inputs.get("propagatingVgws") or [])

    def _default_route_table(self, r: Declared) -> None:
        # Its VPC is known only through an output; with one VPC there is no doubt.
        table = RouteTable(r.name, next(iter(self.m.vpcs), ""))
        self.m.route_tables[r.name] = table
        if len(self.m.vpcs) != 1:
            self.m.unknown.append(f"{r.type} {r.name} (which VPC?)")
        for route in r.inputs.get("routes") or []:
            self._add_route(table, r.name, route)
        table.propagating_vgws += self.refs(r.inputs.get("propagatingVgws") or [])
        self.m.main_table[table.vpc] = r.name

    def _main_assoc(self, r: Declared) -> None:
        vpc, table = self.ref(r.inputs.get("vpcId")), self.ref(r.inputs.get("routeTableId"))
        if vpc and table:
            self.m.main_table[vpc] = table

    def _rt_assoc(self, r: Declared) -> None:
        subnet, table = self.ref(r.inputs.get("subnetId")), self.ref(r.inputs.get("routeTableId"))
        if subnet and table:
            self.m.subnet_table[subnet] = table
        elif r.inputs.get("gatewayId"):
            self.m.unknown.append(f"{r.type} {r.name} (edge association)")

    def _propagation(self, r: Declared) -> None:
        table, vgw = self.ref(r.inputs.get("routeTableId")), self.ref(r.inputs.get("vpnGatewayId"))
        if table in self.m.route_tables and vgw:
            self.m.route_tables[table].propagating_vgws.append(vgw)

    def _target(self, route: Mapping[str, Any]) -> tuple[str, str]:
        for key, kind in TARGET_KEYS:
            value = route.get(key)
            if value:
                name = self.ref(value) or str(value)
                if kind == "gateway":
                    kind = ("igw" if name in self.m.igw else "vgw" if name in self.m.vgw
                            else "vpce" if self.types.get(name, "").endswith("VpcEndpoint")
                            else "local" if value == "local" else "unknown")  # fmt: skip
                return kind, name
        return "unknown", "?"

    def _add_route(self, table: RouteTable, resource: str, route: Mapping[str, Any]) -> None:
        kind, target = self._target(route)
        dest = _net(
            route.get("destinationCidrBlock")
            or route.get("cidrBlock")
            or route.get("destinationIpv6CidrBlock")
            or route.get("ipv6CidrBlock")
        )
        prefix = route.get("destinationPrefixListId")
        if dest is None and not prefix:
            raise ValueError("a route without a destination the model can read")
        table.routes.append(Route(resource, dest, kind, target, prefix))

    def _route(self, r: Declared) -> None:
        table = self.ref(r.inputs.get("routeTableId"))
        if table not in self.m.route_tables:
            self.m.unknown.append(f"{r.type} {r.name} (table not in the model)")
            return
        self._add_route(self.m.route_tables[table], r.name, r.inputs)

    def _rules_from(self, name: str, egress: bool, rules: Any, nacl: bool) -> list[FilterRule]:
        out = []
        for i, rule in enumerate(rules or []):
            if not isinstance(rule, Mapping):
                continue
            cidrs = [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])]
            if rule.get("cidrBlock"):
                cidrs.append(rule["cidrBlock"])
            if rule.get("ipv6CidrBlock"):
                cidrs.append(rule["ipv6CidrBlock"])
            allow = (rule.get("action", "allow") == "allow") if nacl else True
            number = _port(rule.get("ruleNo"), i) if nacl else 0
            proto = _protocol(rule.get("protocol"))
            low, high = _port(rule.get("fromPort"), 0), _port(rule.get("toPort"), 65535)

            def make(
                cidr: Net | None,
                group: str | None = None,
                pl: str | None = None,
                _a: bool = allow,
                _n: int = number,
                _p: str = proto,
                _l: int = low,
                _h: int = high,
            ) -> FilterRule:
                return FilterRule(name, egress, _a, _n, cidr, _p, _l, _h, pl, group)

            nets = [_net(cidr) for cidr in cidrs]
            if None in nets:
                raise ValueError(f"a CIDR of rule {i} is not a CIDR")
            out += [make(net) for net in nets]
            out += [make(None, group=g) for g in self.refs(rule.get("securityGroups") or [])]
            if rule.get("self"):
                out.append(make(None, group=name))
            out += [make(None, pl=pl) for pl in rule.get("prefixListIds") or []]
        return out

    def _nacl(self, r: Declared) -> None:
        acl = Nacl(r.name, self.ref(r.inputs.get("vpcId")) or "",
                   self.refs(r.inputs.get("subnetIds") or []))  # fmt: skip
        acl.rules += self._rules_from(r.name, False, r.inputs.get("ingress"), nacl=True)
        acl.rules += self._rules_from(r.name, True, r.inputs.get("egress"), nacl=True)
        self.m.nacls[r.name] = acl

    def _nacl_assoc(self, r: Declared) -> None:
        acl, subnet = self.ref(r.inputs.get("networkAclId")), self.ref(r.inputs.get("subnetId"))
        if acl in self.m.nacls and subnet:
            for other in self.m.nacls.values():
                if subnet in other.subnets:
                    other.subnets.remove(subnet)
            self.m.nacls[acl].subnets.append(subnet)

    def _nacl_rule(self, r: Declared) -> None:
        acl = self.ref(r.inputs.get("networkAclId"))
        if acl not in self.m.nacls:
            self.m.unknown.append(f"{r.type} {r.name} (NACL not in the model)")
            return
        i = r.inputs
        text = i.get("cidrBlock") or i.get("ipv6CidrBlock")
        if _net(text) is None:
            raise ValueError("its CIDR is not a CIDR")
        self.m.nacls[acl].rules.append(FilterRule(
            resource=r.name, egress=bool(i.get("egress")), allow=i.get("ruleAction") == "allow",
            number=_port(i.get("ruleNumber"), 0),
            cidr=_net(i.get("cidrBlock") or i.get("ipv6CidrBlock")),
            protocol=_protocol(i.get("protocol")),
            from_port=_port(i.get("fromPort"), 0), to_port=_port(i.get("toPort"), 65535),
        ))  # fmt: skip

    def _group(self, r: Declared) -> None:
        group = SecurityGroup(r.name, self.ref(r.inputs.get("vpcId")) or "")
        group.rules += self._rules_from(r.name, False, r.inputs.get("ingress"), nacl=False)
        group.rules += self._rules_from(r.name, True, r.inputs.get("egress"), nacl=False)
        self.m.groups[r.name] = group

    def _sg_rule(self, r: Declared) -> None:
        group = self.ref(r.inputs.get("securityGroupId"))
        if group not in self.m.groups:
            self.m.unknown.append(f"{r.type} {r.name} (group not in the model)")
            return
        egress = r.type.endswith("EgressRule")
        text = r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6")
        cidr = _net(text)
        if text and cidr is None:
            raise ValueError("its CIDR is not a CIDR")
        proto = _protocol(r.inputs.get("ipProtocol"))
        low, high = _port(r.inputs.get("fromPort"), 0), _port(r.inputs.get("toPort"), 65535)
        self.m.groups[group].rules.append(FilterRule(
            resource=r.name, egress=egress, allow=True, number=0, cidr=cidr, protocol=proto,
            from_port=low, to_port=high,
            prefix_list=r.inputs.get("prefixListId"),
            group=self.ref(r.inputs.get("referencedSecurityGroupId")),
        ))  # fmt: skip

    def _sg_rule_classic(self, r: Declared) -> None:
        group = self.ref(r.inputs.get("securityGroupId"))
        if group not in self.m.groups:
            self.m.unknown.append(f"{r.type} {r.name} (group not in the model)")
            return
        egress = r.inputs.get("type") == "egress"
        rule = dict(r.inputs)
        if r.inputs.get("sourceSecurityGroupId"):
            rule["securityGroups"] = [r.inputs["sourceSecurityGroupId"]]
        self.m.groups[group].rules += self._rules_from(r.name, egress, [rule], nacl=False)

    def _instance(self, r: Declared) -> None:
        subnet = self.ref(r.inputs.get("subnetId"))
        if subnet not in self.m.subnets:
            self.m.unknown.append(f"{r.type} {r.name} (subnet not in the model)")
            return
        iface = Interface(
            r.name, subnet,
            self._addresses(r, subnet, ("privateIp", "secondaryPrivateIps", "ipv6Addresses")),
            self.refs(r.inputs.get("vpcSecurityGroupIds") or []),
            public_ip=bool(r.inputs.get("associatePublicIpAddress"))
            or self.m.subnets[subnet].public_ip_on_launch,
            source_dest_check=r.inputs.get("sourceDestCheck", True) is not False,
        )  # fmt: skip
        self._counts(iface, r, None, "ipv6AddressCount")
        self.m.interfaces.append(iface)

    def _eni(self, r: Declared) -> None:
        subnet = self.ref(r.inputs.get("subnetId"))
        if subnet not in self.m.subnets:
            self.m.unknown.append(f"{r.type} {r.name} (subnet not in the model)")
            return
        keys = ("privateIp", "privateIps", "privateIpList", "ipv6Addresses", "ipv6AddressList")
        iface = Interface(
            r.name,
            subnet,
            self._addresses(r, subnet, keys),
            self.refs(r.inputs.get("securityGroups") or []),
            source_dest_check=r.inputs.get("sourceDestCheck", True) is not False,
            kind="eni",
        )
        self._counts(iface, r, "privateIpsCount", "ipv6AddressCount")
        self.m.interfaces.append(iface)

    def _eip(self, r: Declared) -> None:
        self.m.eips.append(r.name)

    def _endpoint(self, r: Declared) -> None:
        kind = str(r.inputs.get("vpcEndpointType") or "Gateway")
        service = str(r.inputs.get("serviceName") or "")
        aws = aws_service(service, self.region, kind) is not None
        prefix = r.outputs.get("prefixListId") if kind == "Gateway" else None
        self.m.endpoints[r.name] = Endpoint(r.name, kind, service, aws, prefix)
        if kind == "Gateway":
            if not prefix:
                raise ValueError("a gateway endpoint without its service's prefix list")
            for table in self.refs(r.inputs.get("routeTableIds") or []):
                if table in self.m.route_tables:
                    self.m.route_tables[table].routes.append(
                        Route(r.name, None, "vpce", r.name, prefix_list=prefix)
                    )
            self.m.gateway_endpoints[prefix] = r.name
            return
        for subnet in self.refs(r.inputs.get("subnetIds") or []):
            if subnet in self.m.subnets:
                # Each endpoint has its own network interface, and address, in each subnet.
                iface = Interface(
                    f"{r.name}@{subnet}",
                    subnet,
                    [],
                    self.refs(r.inputs.get("securityGroupIds") or []),
                    kind="endpoint",
                    endpoint=r.name,
                )
                self.to_place.append((iface, 4, 1))
                self.m.interfaces.append(iface)

    def _tgw(self, r: Declared) -> None:
        self.m.tgws[r.name] = TransitGateway(
            r.name,
            default_association=r.inputs.get("defaultRouteTableAssociation", "enable") != "disable",
            default_propagation=r.inputs.get("defaultRouteTablePropagation", "enable") != "disable",
        )
        if self.m.tgws[r.name].default_association or self.m.tgws[r.name].default_propagation:
            self.m.tgws[r.name].route_tables[f"{r.name}:default"] = []

    def _tgw_vpc_attachment(self, r: Declared) -> None:
        tgw = self.ref(r.inputs.get("transitGatewayId"))
        if tgw not in self.m.tgws:
            self.m.unknown.append(f"{r.type} {r.name} (transit gateway not in the model)")
            return
        self.m.attachments[r.name] = Attachment(
            r.name,
            tgw,
            "vpc",
            vpc=self.ref(r.inputs.get("vpcId")),
            subnets=self.refs(r.inputs.get("subnetIds") or []),
        )
        self._default_tgw_wiring(tgw, r.name, r.inputs)

    def _default_tgw_wiring(self, tgw: str, attachment: str, inputs: Mapping[str, Any]) -> None:
        gw = self.m.tgws[tgw]
        default = f"{tgw}:default"
        if gw.default_association and inputs.get(
            "transitGatewayDefaultRouteTableAssociation", True) is not False:  # fmt: skip
            gw.association[attachment] = default
        if gw.default_propagation and inputs.get(
            "transitGatewayDefaultRouteTablePropagation", True) is not False:  # fmt: skip
            gw.propagation.setdefault(default, []).append(attachment)

    def _tgw_route_table(self, r: Declared) -> None:
        tgw = self.ref(r.inputs.get("transitGatewayId"))
        if tgw in self.m.tgws:
            self.m.tgws[tgw].route_tables[r.name] = []

    def _cgw(self, r: Declared) -> None:
        self.cgw_ip[r.name] = str(r.inputs.get("ipAddress"))

    def _vif(self, r: Declared) -> None:
        site = dx_site(r.inputs.get("connectionId"), _port(r.inputs.get("vlan"), 0))
        for gw in self.refs([r.inputs.get("dxGatewayId"), r.inputs.get("vpnGatewayId")]):
            self.dx_sites.setdefault(gw, []).append(site)
            if gw in self.m.vgw:  # a private VIF straight onto a VGW
                self.m.vpns[r.name] = VpnConnection(r.name, site, gw, None)

    def _vpn(self, r: Declared) -> None:
        cgw = self.ref(r.inputs.get("customerGatewayId"))
        site = self.cgw_ip.get(cgw or "", "unknown")
        vgw, tgw = (
            self.ref(r.inputs.get("vpnGatewayId")),
            self.ref(r.inputs.get("transitGatewayId")),
        )
        self.m.vpns[r.name] = VpnConnection(r.name, site, vgw, tgw)
        if tgw in self.m.tgws:
            self.m.attachments[r.name] = Attachment(r.name, tgw, "vpn", site=site)
            self._default_tgw_wiring(tgw, r.name, {})
        if r.inputs.get("staticRoutesOnly") is not True:
            # Dynamic (BGP) routes: the site may announce anything.
            self.m.vpns[r.name].static_routes.append(ipaddress.ip_network("0.0.0.0/0"))

    def _vpn_route(self, r: Declared) -> None:
        vpn = self.ref(r.inputs.get("vpnConnectionId"))
        cidr = _net(r.inputs.get("destinationCidrBlock"))
        if vpn in self.m.vpns and cidr:
            self.m.vpns[vpn].static_routes.append(cidr)

    def _dx_association(self, r: Declared) -> None:
        tgw = self.ref(r.inputs.get("associatedGatewayId"))
        dxgw = self.ref(r.inputs.get("dxGatewayId"))
        if tgw not in self.m.tgws:
            self.m.unknown.append(f"{r.type} {r.name} (gateway not in the model)")
            return
        sites = self.dx_sites.get(dxgw or "", [])
        self.m.attachments[r.name] = Attachment(
            r.name, tgw, "dx", site=sites[0] if len(sites) == 1 else "unknown"
        )
        self._default_tgw_wiring(tgw, r.name, {})

    def _tgw_assoc(self, r: Declared) -> None:
        att = self.ref(r.inputs.get("transitGatewayAttachmentId"))
        table = self.ref(r.inputs.get("transitGatewayRouteTableId"))
        if att in self.m.attachments and table:
            self.m.tgws[self.m.attachments[att].tgw].association[att] = table
        else:
            self.m.unknown.append(f"{r.type} {r.name} (attachment not in the model)")

    def _tgw_prop(self, r: Declared) -> None:
        att = self.ref(r.inputs.get("transitGatewayAttachmentId"))
        table = self.ref(r.inputs.get("transitGatewayRouteTableId"))
        if att in self.m.attachments and table:
            self.m.tgws[self.m.attachments[att].tgw].propagation.setdefault(table, []).append(att)
        else:
            self.m.unknown.append(f"{r.type} {r.name} (attachment not in the model)")

    def _tgw_route(self, r: Declared) -> None:
        table = self.ref(r.inputs.get("transitGatewayRouteTableId"))
        att = self.ref(r.inputs.get("transitGatewayAttachmentId"))
        cidr = _net(r.inputs.get("destinationCidrBlock"))
        if r.inputs.get("blackhole"):
            return
        for gw in self.m.tgws.values():
            # The next hop must be an attachment the model knows, or a walk could not follow it.
            if table in gw.route_tables and cidr and att in self.m.attachments:
                gw.route_tables[table].append(TgwRoute(cidr, att, r.name))
                return
        self.m.unknown.append(f"{r.type} {r.name} (table or attachment not in the model)")


def build_model(
    resources: list[Declared],
    *,
    prefix_cidrs: Mapping[str, list[str]] | None = None,
    dx_attachment_id: str | None = None,
    region: str = ALLOWED_REGIONS[0],
) -> Model:
    return _Builder(resources, {}, prefix_cidrs or {}, dx_attachment_id, region).build()
