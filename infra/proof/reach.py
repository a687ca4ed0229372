"""Follow one packet through the model, hop by hop.

A packet has a source (an interface in the VPC, an outside site, or the internet), a destination
address, a port and a protocol. `trace` walks it through security groups (stateful), NACLs
(stateless, first matching rule by number, implicit deny), route tables (longest prefix, the
VPC's local route, gateway-endpoint prefix lists, VGW propagation), transit gateways (the route
table associated with the attachment it arrives on, static routes and propagations), virtual
private gateways (VPN CloudHub included) and VPC peering, and returns every hop with the
resource and rule that let it through, or the one that stopped it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from infra.proof.model import FilterRule, Interface, Model, Net, Route

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
INTERNET_V4 = ipaddress.ip_address("198.51.100.77")  # stands for any internet address
INTERNET_V6 = ipaddress.ip_address("2001:db8::77")
EPHEMERAL_PORT = 49152
OPEN = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@dataclass(frozen=True)
class Site:
    """An outside party reached over a line: LGWAN, the fund, or one the model cannot name."""

    zone: str | None  # None: a site the stack config does not know
    key: str  # customer gateway IP or "dx:<connection>:<vlan>"
    cidr: Net | None


@dataclass(frozen=True)
class Source:
    kind: str  # interface, site, internet
    name: str
    address: Address
    interface: Interface | None = None
    site: Site | None = None


@dataclass
class Trace:
    arrived: bool = False
    exit: str | None = None  # internet, unknown, site:<zone>, aws-service, host:<name>
    hops: list[str] = field(default_factory=list)
    blocked: str | None = None

    def block(self, why: str) -> Trace:
        self.blocked = why
        self.hops.append(f"BLOCKED: {why}")
        return self


@dataclass
class Context:
    model: Model
    sites: Mapping[str, Site]  # site key -> site

    def site(self, key: str | None) -> Site:
        return self.sites.get(key or "", Site(None, key or "unknown", None))


def _rule_text(rule: FilterRule) -> str:
    peer = rule.cidr or rule.prefix_list or f"group {rule.group}"
    ports = "all" if rule.protocol == "-1" else f"{rule.protocol} {rule.from_port}-{rule.to_port}"
    return f"{rule.resource} ({peer}, {ports})"


def nacl_allows(
    model: Model, subnet: str, egress: bool, peer: Address, port: int, protocol: str
) -> tuple[bool, str]:
    acl = model.nacl_of(subnet)
    if acl is None:
        return True, f"subnet {subnet} has the VPC's default NACL, which allows everything"
    rules = sorted((r for r in acl.rules if r.egress == egress), key=lambda r: r.number)
    for rule in rules:
        if rule.matches(peer, port, protocol, model.prefix_cidrs, ()):
            verb = "allows" if rule.allow else "denies"
            return (
                rule.allow,
                f"NACL {acl.name} {'out' if egress else 'in'} rule #{rule.number} "
                f"{_rule_text(rule)} {verb} {peer}:{port}",
            )
    return False, f"NACL {acl.name} {'out' if egress else 'in'}: no rule admits {peer}:{port}"


def groups_allow(
    model: Model,
    groups: Iterable[str],
    egress: bool,
    peer: Address,
    port: int,
    protocol: str,
    peer_groups: Iterable[str],
) -> tuple[bool, str]:
    names = list(groups)
    for name in names:
        group = model.groups.get(name)
        if group is None:
            return True, f"security group {name} is not in the model: assumed open"
        for rule in group.rules:
            if rule.egress == egress and rule.matches(
                peer, port, protocol, model.prefix_cidrs, peer_groups
            ):
                return (
                    True,
                    f"security group {name} {'egress' if egress else 'ingress'} "
                    f"{_rule_text(rule)} allows {peer}:{port}",
                )
    return (
        False,
        f"security groups {', '.join(names) or '(none)'} admit no "
        f"{'egress to' if egress else 'ingress from'} {peer}:{port}",
    )


def _best_route(ctx: Context, table_name: str, dst: Address) -> Route | None:
    model = ctx.model
    table = model.route_tables[table_name]
    candidates: list[tuple[int, Route]] = []
    for vpc in (model.vpcs.get(table.vpc), model.vpc_v6.get(table.vpc)):
        if vpc is not None and dst.version == vpc.version and dst in vpc:
            local = Route(f"{table_name} (local)", vpc, "local", table.vpc)
            candidates.append((vpc.prefixlen, local))
    for route in table.routes:
        if route.destination is not None:
            if dst.version == route.destination.version and dst in route.destination:
                candidates.append((route.destination.prefixlen, route))
        elif route.prefix_list is not None:
            for cidr in model.prefix_cidrs.get(route.prefix_list, []):
                if dst.version == cidr.version and dst in cidr:
                    candidates.append((cidr.prefixlen, route))
    for vgw in table.propagating_vgws:
        for vpn in model.vpns.values():
            if vpn.vgw == vgw:
                for cidr in vpn.static_routes:
                    if dst.version == cidr.version and dst in cidr:
                        candidates.append(
                            (
                                cidr.prefixlen,
                                Route(f"{table_name} (propagated from {vgw})", cidr, "vgw", vgw),
                            )
                        )
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0])[1]


def _deliver(
    ctx: Context,
    t: Trace,
    src: Source,
    dst: Address,
    port: int,
    protocol: str,
    from_subnet: str | None,
    stateful_return: bool,
) -> Trace:
    model = ctx.model
    iface = model.interface_at(dst)
    subnet = iface.subnet if iface else model.subnet_at(dst)
    if subnet is None:
        return t.block(f"nothing in the VPC at {dst}")
    if subnet != from_subnet:
        ok, why = nacl_allows(model, subnet, False, src.address, port, protocol)
        t.hops.append(why)
        if not ok:
            return t.block(why)
    if iface is None:
        t.hops.append(f"address {dst} in subnet {subnet} (no interface declared there)")
        t.arrived, t.exit = True, f"address:{dst}"
        return t
    if not stateful_return:
        peer_groups = src.interface.groups if src.interface else []
        ok, why = groups_allow(model, iface.groups, False, src.address, port, protocol, peer_groups)
        t.hops.append(why)
        if not ok:
            return t.block(why)
    endpoint = model.endpoints.get(iface.endpoint or "")
    if endpoint is not None and not endpoint.aws:
        t.hops.append(f"enters endpoint {endpoint.name} to {endpoint.service!r}: not an AWS "
                      f"service, a network the model cannot see")  # fmt: skip
        t.arrived, t.exit = True, "unknown"
        return t
    t.hops.append(f"arrives at {iface.kind} {iface.name} ({dst})")
    t.arrived, t.exit = True, f"host:{iface.name}"
    return t


def _from_table(
    ctx: Context,
    t: Trace,
    src: Source,
    table_name: str | None,
    dst: Address,
    port: int,
    protocol: str,
    from_subnet: str | None,
    stateful_return: bool,
    seen: set[str],
) -> Trace:
    model = ctx.model
    if table_name is None or table_name not in model.route_tables:
        return t.block(f"subnet {from_subnet} has no route table in the model")
    route = _best_route(ctx, table_name, dst)
    if route is None:
        return t.block(f"route table {table_name} has no route to {dst}")
    dest = route.destination or route.prefix_list
    t.hops.append(
        f"route table {table_name}: {route.resource} {dest} -> {route.target_kind} {route.target}"
    )
    kind, target = route.target_kind, route.target
    if kind == "local":
        return _deliver(ctx, t, src, dst, port, protocol, from_subnet, stateful_return)
    if kind in ("igw", "eigw", "nat"):
        t.hops.append(f"{kind} {target} leads to the internet")
        t.arrived, t.exit = True, "internet"
        return t
    if kind == "vpce":
        endpoint = model.endpoints.get(target)
        if (endpoint is not None and endpoint.aws and endpoint.kind == "Gateway"
                and route.prefix_list == endpoint.prefix_list):  # fmt: skip
            t.hops.append(f"gateway endpoint {target} ({endpoint.service}): an AWS service, "
                          f"not the internet")  # fmt: skip
            t.arrived, t.exit = True, "aws-service"
            return t
        what = f"{endpoint.kind} endpoint to {endpoint.service!r}" if endpoint else "an endpoint"
        t.hops.append(f"{target} is {what}: a network the model cannot see")
        t.arrived, t.exit = True, "unknown"
        return t
    if kind == "pcx":
        vpc, peer = model.peering.get(target, ("", None))
        if peer is None:
            t.hops.append(f"peering {target} leads to a VPC outside the model")
            t.arrived, t.exit = True, "unknown"
            return t
        igws = [g for g, v in model.igw.items() if v == peer]
        if igws:
            t.hops.append(f"peering {target} to VPC {peer}, which has internet gateway {igws[0]}")
            t.arrived, t.exit = True, "internet"
            return t
        t.hops.append(f"peering {target} to VPC {peer}")
        t.arrived, t.exit = True, f"vpc:{peer}"
        return t
    if kind == "vgw":
        return _via_vgw(ctx, t, target, None, dst)
    if kind == "tgw":
        vpc = model.route_tables[table_name].vpc
        attachment = next(
            (
                a
                for a in model.attachments.values()
                if a.tgw == target and a.kind == "vpc" and a.vpc == vpc
            ),
            None,
        )
        if attachment is None:
            return t.block(f"transit gateway {target} has no attachment to VPC {vpc}")
        return _via_tgw(ctx, t, src, attachment.name, dst, port, protocol, stateful_return, seen)
    t.hops.append(f"target {kind} {target} is not understood by the model")
    t.arrived, t.exit = True, "unknown"
    return t


def _via_vgw(ctx: Context, t: Trace, vgw: str, came_from: str | None, dst: Address) -> Trace:
    for vpn in ctx.model.vpns.values():
        if vpn.vgw != vgw or vpn.name == came_from:
            continue
        if any(dst.version == c.version and dst in c for c in vpn.static_routes):
            site = ctx.site(vpn.site)
            t.hops.append(
                f"virtual private gateway {vgw} -> VPN {vpn.name} -> site "
                f"{site.zone or 'unknown'} ({site.key})"
            )
            return _at_site(t, site, dst)
    return t.block(f"virtual private gateway {vgw} has no VPN route to {dst}")


def _at_site(t: Trace, site: Site, dst: Address) -> Trace:
    if site.zone is None:
        t.arrived, t.exit = True, "unknown"
        t.hops.append(f"site {site.key} is not one the stack knows: it may lead anywhere")
        return t
    if site.cidr is not None and dst.version == site.cidr.version and dst in site.cidr:
        t.arrived, t.exit = True, f"site:{site.zone}"
        t.hops.append(f"arrives at {site.zone} ({dst})")
        return t
    return t.block(f"{site.zone} is a closed network: it does not route {dst} onward")


def _tgw_lookup(ctx: Context, tgw_name: str, table: str, dst: Address) -> tuple[Net, str] | None:
    model = ctx.model
    gw = model.tgws[tgw_name]
    candidates = [
        (cidr, att)
        for cidr, att, _ in gw.route_tables.get(table, [])
        if dst.version == cidr.version and dst in cidr
    ]
    for att_name in gw.propagation.get(table, []):
        att = model.attachments[att_name]
        if att.kind == "vpc" and att.vpc in model.vpcs:
            candidates.append((model.vpcs[att.vpc], att_name))
        elif att.kind == "vpn":
            vpn = model.vpns.get(att_name)
            for cidr in vpn.static_routes if vpn else []:
                candidates.append((cidr, att_name))
        else:  # Direct Connect: BGP, the site may announce anything
            candidates.append((ipaddress.ip_network("0.0.0.0/0"), att_name))
    candidates = [(c, a) for c, a in candidates if dst.version == c.version and dst in c]
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0].prefixlen)


def _via_tgw(
    ctx: Context,
    t: Trace,
    src: Source,
    arrived_on: str,
    dst: Address,
    port: int,
    protocol: str,
    stateful_return: bool,
    seen: set[str],
) -> Trace:
    model = ctx.model
    att = model.attachments[arrived_on]
    key = f"{att.tgw}:{arrived_on}"
    if key in seen:
        return t.block(f"routing loop at transit gateway {att.tgw}")
    seen.add(key)
    gw = model.tgws[att.tgw]
    table = gw.association.get(arrived_on)
    if table is None:
        return t.block(f"attachment {arrived_on} is associated with no route table of {att.tgw}")
    found = _tgw_lookup(ctx, att.tgw, table, dst)
    if found is None:
        return t.block(f"transit gateway {att.tgw} route table {table} has no route to {dst}")
    cidr, next_name = found
    nxt = model.attachments[next_name]
    t.hops.append(
        f"transit gateway {att.tgw} route table {table}: {cidr} -> attachment "
        f"{next_name} ({nxt.kind})"
    )
    if nxt.kind in ("vpn", "dx"):
        return _at_site(t, ctx.site(nxt.site), dst)
    if nxt.vpc not in model.vpcs:
        t.hops.append(f"attachment {next_name} leads to a VPC outside the model")
        t.arrived, t.exit = True, "unknown"
        return t
    igws = [g for g, v in model.igw.items() if v == nxt.vpc]
    if igws and not model.vpc_holds(nxt.vpc, dst):
        t.hops.append(f"VPC {nxt.vpc} has internet gateway {igws[0]}")
        t.arrived, t.exit = True, "internet"
        return t
    subnet = nxt.subnets[0] if nxt.subnets else None
    if subnet is None or subnet not in model.subnets:
        return t.block(f"attachment {next_name} has no subnet in the model")
    t.hops.append(f"enters VPC {nxt.vpc} through {next_name} in subnet {subnet}")
    table_name = model.subnet_table.get(subnet) or model.main_table.get(nxt.vpc)
    return _from_table(ctx, t, src, table_name, dst, port, protocol, subnet, stateful_return, seen)


def trace(
    ctx: Context,
    src: Source,
    dst: Address,
    port: int,
    protocol: str = "tcp",
    stateful_return: bool = False,
) -> Trace:
    """Where a packet from `src` to `dst`:`port` gets, and through what.

    `stateful_return` walks a reply: security groups pass it (they are stateful), NACLs and
    routes still apply.
    """
    # Long on purpose: one packet's walk hop by hop (subnet, NACL out, route, target, NACL in,
    # security group); the hops share the trace being written
    model = ctx.model
    t = Trace()
    if src.kind == "interface":
        iface = src.interface
        assert iface is not None
        t.hops.append(f"{iface.kind} {iface.name} ({src.address}) in subnet {iface.subnet}")
        if not stateful_return:
            ok, why = groups_allow(model, iface.groups, True, dst, port, protocol, [])
            t.hops.append(why)
            if not ok:
                return t.block(why)
        dst_subnet = model.subnet_at(dst)
        if dst_subnet != iface.subnet:
            ok, why = nacl_allows(model, iface.subnet, True, dst, port, protocol)
            t.hops.append(why)
            if not ok:
                return t.block(why)
        return _from_table(
            ctx,
            t,
            src,
            model.subnet_table.get(iface.subnet)
            or model.main_table.get(model.subnets[iface.subnet].vpc),
            dst,
            port,
            protocol,
            iface.subnet,
            stateful_return,
            set(),
        )
    if src.kind == "site":
        site = src.site
        assert site is not None
        t.hops.append(f"site {site.zone or 'unknown'} ({src.address}) over {site.key}")
        entries = [
            a for a in model.attachments.values() if a.kind in ("vpn", "dx") and a.site == site.key
        ]
        vgw_vpns = [v for v in model.vpns.values() if v.vgw and v.site == site.key]
        last = (
            t.block(f"no line from {site.zone or site.key} is declared")
            if not entries and not vgw_vpns
            else t
        )
        for entry in entries:
            attempt = Trace(hops=list(t.hops))
            attempt.hops.append(f"line attachment {entry.name} on transit gateway {entry.tgw}")
            result = _via_tgw(
                ctx, attempt, src, entry.name, dst, port, protocol, stateful_return, set()
            )
            if result.arrived:
                return result
            last = result
        for vpn in vgw_vpns:
            attempt = Trace(hops=list(t.hops))
            attempt.hops.append(f"VPN {vpn.name} on virtual private gateway {vpn.vgw}")
            vpc = model.vgw.get(vpn.vgw or "")
            if model.vpc_holds(vpc, dst):
                result = _deliver(ctx, attempt, src, dst, port, protocol, None, stateful_return)
            else:
                result = _via_vgw(ctx, attempt, vpn.vgw or "", vpn.name, dst)
            if result.arrived:
                return result
            last = result
        return last
    # From the internet: only through an internet gateway to an interface with a public address.
    t.hops.append(f"the internet ({src.address})")
    iface = model.interface_at(dst)
    if iface is None or not iface.public_ip:
        return t.block(f"{dst} has no public address")
    vpc = model.subnets[iface.subnet].vpc
    igws = [g for g, v in model.igw.items() if v == vpc]
    if not igws:
        return t.block(f"VPC {vpc} has no internet gateway")
    t.hops.append(f"internet gateway {igws[0]} to the public address of {iface.name}")
    return _deliver(ctx, t, src, dst, port, protocol, None, stateful_return)


def open_rules(model: Model) -> list[str]:
    """Filter rules that admit the whole internet: latent paths even where no route exists."""
    found = []
    for group in model.groups.values():
        for rule in group.rules:
            if rule.cidr in OPEN:
                found.append(
                    f"security group {group.name}: {_rule_text(rule)} "
                    f"{'egress' if rule.egress else 'ingress'} admits {rule.cidr}"
                )
    for acl in model.nacls.values():
        for rule in acl.rules:
            if rule.allow and rule.cidr in OPEN:
                found.append(
                    f"NACL {acl.name}: rule #{rule.number} {_rule_text(rule)} "
                    f"{'out' if rule.egress else 'in'} allows {rule.cidr}"
                )
    return found
