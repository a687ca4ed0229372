"""The proof: three verdicts over the declared network, each HOLDS, VIOLATED or UNKNOWN.

1. closed: no path between anything in the VPC and the internet, either way, and no layer that
   would admit the internet if a route appeared (a public address, a filter open to /0, a
   transit gateway leading to an internet-connected VPC);
2. policy: the (source zone, destination zone, port) triples that get through routes, NACLs and
   security groups are exactly the flow policy, allowed flows work both ways, and every route
   towards an outside zone serves a flow of the policy;
3. separated: no packet from the LGWAN side reaches the fund's line, or back, not even through
   the data center.

A model with a traffic-carrying resource it does not understand gives UNKNOWN, never HOLDS.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.config import EXTERNAL_ZONES, StackConfig
from infra.proof.model import Model, Net, Route, dx_site, overlaps, public_v6, within
from infra.proof.reach import (
    EPHEMERAL_PORT,
    INTERNET_V4,
    INTERNET_V6,
    Context,
    Site,
    Source,
    Trace,
    open_rules,
    trace,
)

HOLDS, VIOLATED, UNKNOWN = "HOLDS", "VIOLATED", "UNKNOWN"
UNLISTED_PORTS = (8080,)  # ports no flow names, probed on every pair


@dataclass
class Counterexample:
    summary: str
    hops: list[str]


@dataclass
class Verdict:
    id: str
    title: str
    status: str = HOLDS
    checked: dict[str, int] = field(default_factory=dict)
    counterexamples: list[Counterexample] = field(default_factory=list)

    def violate(self, summary: str, hops: Iterable[str]) -> None:
        self.status = VIOLATED
        self.counterexamples.append(Counterexample(summary, list(hops)))

    def cannot_tell(self, summary: str, hops: Iterable[str]) -> None:
        """Something the proof cannot see past: UNKNOWN, unless already VIOLATED."""
        self.status = UNKNOWN if self.status == HOLDS else self.status
        self.counterexamples.append(Counterexample(summary, list(hops)))


@dataclass
class Proof:
    verdicts: list[Verdict]
    unknown: list[str]

    @property
    def holds(self) -> bool:
        return all(v.status == HOLDS for v in self.verdicts)


def sites_of(config: StackConfig) -> dict[str, Site]:
    sites = {}
    for name, line in config.lines.items():
        key = (str(line.customer_gateway_ip) if line.kind == "vpn"
               else dx_site(line.dx_connection_id, line.vlan))  # fmt: skip
        sites[key] = Site(name, key, config.zones[name].cidr)
    return sites


def _zone_sources(ctx: Context, config: StackConfig, zone: str) -> list[Source]:
    cidr = config.zones[zone].cidr
    if zone in EXTERNAL_ZONES:
        site = next(s for s in ctx.sites.values() if s.zone == zone)
        return [Source("site", zone, cidr.network_address + 10, site=site)]
    # A member by its IPv4 address in the zone; a source and target at every address it has.
    return [
        Source("interface", i.name, a, interface=i)
        for i in ctx.model.interfaces
        if any(x.version == 4 and x in cidr for x in i.addresses)
        for a in i.addresses
    ]


def _ports(config: StackConfig, model: Model) -> list[int]:
    ports = {p for p, _ in config.ports()} | set(UNLISTED_PORTS)
    for group in model.groups.values():
        ports |= {r.from_port for r in group.rules if r.from_port == r.to_port and r.from_port}
    return sorted(ports)


def line_gateways(ctx: Context) -> dict[str, set[str]]:
    """Outside zone -> the gateways and attachments that carry this stack's line to it."""
    model = ctx.model
    found: dict[str, set[str]] = {}
    for att in model.attachments.values():
        zone = ctx.site(att.site).zone if att.kind in ("vpn", "dx") else None
        if zone is not None:
            found.setdefault(zone, set()).update({att.tgw, att.name})
    for vpn in model.vpns.values():
        zone = ctx.site(vpn.site).zone
        if zone is not None and vpn.vgw:
            found.setdefault(zone, set()).add(vpn.vgw)
    return found


OUTSIDE_TARGETS = {
    "igw": "an internet gateway: the internet",
    "eigw": "an egress-only gateway: the internet over IPv6",
    "nat": "a NAT gateway: the internet",
    "pcx": "a peering connection: another VPC and whatever it reaches",
    "eni": "a network interface: an appliance that forwards where the model cannot see",
}


def route_exposure(
    ctx: Context, config: StackConfig, lines: Mapping[str, set[str]], route: Route
) -> str | None:
    """Why a route of a VPC route table leads somewhere the proof does not accept, or None for
    the local route, a line's gateway for a prefix inside that line's zone, and an allowed
    gateway endpoint's service prefix list."""
    kind, model = route.target_kind, ctx.model
    if kind == "local":
        return None
    if kind in ("tgw", "vgw"):
        if route.destination is None:
            return f"prefix list {route.prefix_list} sent to a line: not the zone's own CIDR"
        for zone, gateways in lines.items():
            if route.target in gateways and within(route.destination, config.zones[zone].cidr):
                return None
        return "not inside the zone of a line this gateway carries"
    if kind == "vpce":
        ep = model.endpoints.get(route.target)
        if (ep is not None and ep.aws and ep.kind == "Gateway" and route.destination is None
                and route.prefix_list == ep.prefix_list):  # fmt: skip
            return None
        what = f"{ep.kind} endpoint to {ep.service!r}" if ep else "an endpoint the model lacks"
        return f"{what}: a network the proof cannot see"
    return OUTSIDE_TARGETS.get(kind, f"a {kind} target the model does not understand")


def _tgw_exposure(ctx: Context, config: StackConfig, lines: Mapping[str, set[str]],
                  cidr: Net, att_name: str) -> str | None:  # fmt: skip
    model = ctx.model
    att = model.attachments.get(att_name)
    if att is None:
        return "an attachment the model does not know"
    if att.kind == "vpc":
        if att.vpc not in model.vpcs:
            return "a VPC outside the model"
        igws = [g for g, v in model.igw.items() if v == att.vpc]
        if igws:
            return f"VPC {att.vpc}, which has internet gateway {igws[0]}"
        inside = any(within(cidr, n) for n in (model.vpcs[att.vpc], model.vpc_v6.get(att.vpc))
                     if n is not None)  # fmt: skip
        return None if inside else f"wider than VPC {att.vpc}"
    zone = ctx.site(att.site).zone
    if zone is not None and att.name in lines.get(zone, set()):
        return None if within(cidr, config.zones[zone].cidr) else f"wider than zone {zone}"
    return "a line to a site the stack does not know"


def _closed(ctx: Context, config: StackConfig, verdict: Verdict) -> None:
    model = ctx.model
    for subnet in model.subnets.values():
        if subnet.public_ip_on_launch:
            verdict.violate(
                f"subnet {subnet.name} gives every instance a public address",
                [f"subnet {subnet.name}: map_public_ip_on_launch"],
            )
    for iface in model.interfaces:
        if iface.public_ip:
            public = [str(a) for a in iface.addresses if public_v6(a)]
            verdict.violate(
                f"{iface.kind} {iface.name} has a public address",
                [f"{iface.kind} {iface.name}: public IP, EIP or global IPv6 "
                 f"{', '.join(public)}".rstrip()],
            )  # fmt: skip
    for eip in model.eips:
        verdict.violate(f"{eip} is an Elastic IP: an address on the internet", [f"EIP {eip}"])
    for text in open_rules(model):
        verdict.violate("a filter admits the whole internet", [text])
    for ep in model.endpoints.values():
        if not ep.aws:
            accepted = config.endpoint_exceptions.get(ep.service)
            verdict.cannot_tell(
                f"endpoint {ep.name} ({ep.kind}) reaches {ep.service!r}, not an AWS service of "
                f"{config.region}: a network the proof cannot see",
                [f"VPC endpoint {ep.name}: service {ep.service}"]
                + ([f"accepted in {config.source}: {accepted}"] if accepted else []),
            )
    # Latent exposure: every route that leads anywhere but a line of its own zone or an
    # allowed endpoint, whether or not a packet takes it today.
    lines = line_gateways(ctx)
    for table in model.route_tables.values():
        for route in table.routes:
            why = route_exposure(ctx, config, lines, route)
            if why is not None:
                dest = route.destination or route.prefix_list
                verdict.violate(
                    f"route table {table.name} routes {dest} to {route.target_kind} "
                    f"{route.target}: {why}",
                    [f"route table {table.name}: {route.resource} {dest} -> "
                     f"{route.target_kind} {route.target}"],
                )  # fmt: skip
        for vgw in table.propagating_vgws:
            verdict.violate(
                f"route table {table.name} takes whatever routes VGW {vgw} learns",
                [
                    f"route table {table.name}: propagation from {vgw} (any prefix, "
                    f"0.0.0.0/0 included)"
                ],
            )
    for gw in model.tgws.values():
        for tgw_table, routes in gw.route_tables.items():
            for cidr, att_name, resource in routes:
                why = _tgw_exposure(ctx, config, lines, cidr, att_name)
                if why is not None:
                    verdict.violate(
                        f"transit gateway {gw.name} routes {cidr} to {att_name}: {why}",
                        [f"{tgw_table}: {resource} {cidr} -> {att_name}"],
                    )
    paths = 0
    for iface in model.interfaces:
        for address in iface.addresses:
            src = Source("interface", iface.name, address, interface=iface)
            for dst in (INTERNET_V4, INTERNET_V6):
                for port in (443, 80, 22):
                    paths += 1
                    t = trace(ctx, src, dst, port)
                    if t.arrived and t.exit in ("internet", "unknown"):
                        verdict.violate(f"{iface.name} reaches the internet on {port}", t.hops)
                        break
            outside = INTERNET_V4 if address.version == 4 else INTERNET_V6
            inbound = trace(ctx, Source("internet", "internet", outside), address, 443)
            paths += 1
            if inbound.arrived:
                verdict.violate(f"the internet reaches {iface.name} at {address}", inbound.hops)
    verdict.checked.update({"interfaces": len(model.interfaces), "paths traced": paths,
                            "route tables": len(model.route_tables),
                            "filters": len(model.groups) + len(model.nacls)})  # fmt: skip


def _policy(ctx: Context, config: StackConfig, verdict: Verdict) -> None:
    ports = _ports(config, ctx.model)
    triples = paths = 0
    members = {zone: _zone_sources(ctx, config, zone) for zone in config.zones}
    for src_zone, sources in members.items():
        for dst_zone, targets in members.items():
            if dst_zone == src_zone:
                continue
            for port in ports:
                triples += 1
                allowed = config.is_allowed(src_zone, dst_zone, port)
                arrived: Trace | None = None
                blocked: Trace | None = None
                for src in sources:
                    for dst in targets:
                        if src.address.version != dst.address.version:
                            continue
                        paths += 1
                        t = trace(ctx, src, dst.address, port)
                        if reached(t, dst):
                            arrived = arrived or t
                            if allowed:
                                back = _return(ctx, src, dst, port)
                                if not reached(back, src):
                                    verdict.violate(
                                        f"{src_zone} -> {dst_zone}:{port} is allowed but the "
                                        f"reply from {dst.name} cannot come back",
                                        back.hops,
                                    )
                        else:
                            blocked = blocked or t
                if arrived is not None and not allowed:
                    verdict.violate(
                        f"{src_zone} -> {dst_zone}:{port} gets through but no flow allows it",
                        arrived.hops,
                    )
                if allowed and arrived is None:
                    hops = blocked.hops if blocked else ["no source or destination in the model"]
                    verdict.violate(f"{src_zone} -> {dst_zone}:{port} is allowed but blocked", hops)
    _route_intent(ctx, config, verdict)
    verdict.checked.update(
        {"zone pairs x ports": triples, "paths traced": paths, "ports": len(ports)}
    )


def reached(t: Trace, dst: Source) -> bool:
    """The packet arrived where it was sent, not somewhere a route diverted it to."""
    if not t.arrived:
        return False
    if dst.kind == "interface":
        return t.exit == f"host:{dst.name}"
    return dst.site is not None and t.exit == f"site:{dst.site.zone}"


def _return(ctx: Context, src: Source, dst: Source, port: int) -> Trace:
    """The reply of an allowed connection: from the destination back to the source's port."""
    if dst.kind == "interface":
        reply = Source("interface", dst.name, dst.address, interface=dst.interface)
    else:
        reply = Source("site", dst.name, dst.address, site=dst.site)
    return trace(ctx, reply, src.address, EPHEMERAL_PORT, stateful_return=True)


def _route_intent(ctx: Context, config: StackConfig, verdict: Verdict) -> None:
    """Every route towards an outside zone must serve a flow between that zone and the table's."""
    model = ctx.model
    partners = {z: {d for f in config.flows for s, d in f.pairs() if s == z}
                | {s for f in config.flows for s, d in f.pairs() if d == z}
                for z in config.zones}  # fmt: skip
    for table in model.route_tables.values():
        zones = {
            zone
            for zone, z in config.zones.items()
            for sub in model.subnets.values()
            if model.subnet_table.get(sub.name) == table.name and within(sub.cidr, z.cidr)
        }
        for route in table.routes:
            if route.destination is None or route.target_kind not in ("tgw", "vgw"):
                continue
            for outside in EXTERNAL_ZONES:
                if not route.destination.overlaps(config.zones[outside].cidr):
                    continue
                strangers = [z for z in zones if outside not in partners[z]]
                if strangers:
                    verdict.violate(
                        f"route table {table.name} routes {route.destination} ({outside}) for "
                        f"zone {', '.join(strangers)}, which no flow joins to {outside}",
                        [
                            f"route table {table.name}: {route.resource} {route.destination} -> "
                            f"{route.target_kind} {route.target}"
                        ],
                    )
            if not any(within(route.destination, config.zones[o].cidr) for o in EXTERNAL_ZONES):
                verdict.violate(
                    f"route table {table.name} routes {route.destination}, wider "
                    f"than any outside zone",
                    [
                        f"route table {table.name}: {route.resource} -> "
                        f"{route.target_kind} {route.target}"
                    ],
                )
    for found in diversions(ctx, config, config.zones):
        verdict.violate(found.summary, found.hops)
    for gw in model.tgws.values():
        for att_name, line_table in gw.association.items():
            att = model.attachments[att_name]
            site = ctx.sites.get(att.site or "")
            if att.kind == "vpc" or site is None or site.zone is None:
                continue
            served = [config.zones[z].cidr for z in partners[site.zone]]
            for cidr, next_hop, resource in gw.route_tables.get(line_table, []):
                where = [f"transit gateway {gw.name} route table {line_table}: {resource} {cidr}"]
                if not any(within(cidr, s) for s in served):
                    verdict.violate(
                        f"the {site.zone} line can address {cidr}, which no flow of "
                        f"{site.zone} needs",
                        where,
                    )
                    continue
                nxt = model.attachments.get(next_hop)
                home = model.vpcs.get(nxt.vpc or "") if nxt and nxt.kind == "vpc" else None
                if home is None or not within(cidr, home):
                    verdict.violate(
                        f"the {site.zone} line sends {cidr} to {next_hop}, not to the VPC that "
                        f"holds it",
                        where,
                    )


def diversions(ctx: Context, config: StackConfig, zones: Iterable[str]) -> list[Counterexample]:
    """A route that covers any part of a zone must lead to that zone: the local route for the
    data center's own zones, that zone's line for an outside one. Anything else diverts some
    of the zone's packets, whichever address the traces happen to pick."""
    model = ctx.model
    lines = line_gateways(ctx)
    found = []
    wanted = set(zones)
    for table in model.route_tables.values():
        for route in table.routes:
            if route.target_kind == "local":
                continue
            endpoint = model.endpoints.get(route.target) if route.target_kind == "vpce" else None
            if endpoint is not None and endpoint.aws and route.destination is None:
                continue  # an AWS gateway endpoint's own service list
            dests = ([route.destination] if route.destination is not None
                     else model.prefix_cidrs.get(route.prefix_list or "", []))  # fmt: skip
            for zone_name, zone in config.zones.items():
                if zone_name not in wanted or not any(overlaps(d, zone.cidr) for d in dests):
                    continue
                if zone.external and route.target in lines.get(zone_name, set()):
                    continue
                found.append(Counterexample(
                    f"route table {table.name} sends part of zone {zone_name} to "
                    f"{route.target_kind} {route.target}, not "
                    + (f"{zone_name}'s line" if zone.external else "the VPC's local route"),
                    [f"route table {table.name}: {route.resource} "
                     f"{route.destination or route.prefix_list} -> {route.target_kind} "
                     f"{route.target}"],
                ))  # fmt: skip
    for gw in model.tgws.values():
        for tgw_table, routes in gw.route_tables.items():
            for cidr, att_name, resource in routes:
                att = model.attachments.get(att_name)
                for zone_name, zone in config.zones.items():
                    if zone_name not in wanted or not overlaps(cidr, zone.cidr):
                        continue
                    if zone.external and att_name in lines.get(zone_name, set()):
                        continue
                    if not zone.external and att is not None and att.kind == "vpc" and (
                            model.vpc_holds(att.vpc, zone.cidr.network_address)):  # fmt: skip
                        continue
                    found.append(Counterexample(
                        f"transit gateway {gw.name} sends part of zone {zone_name} to "
                        f"{att_name}, which does not lead to it",
                        [f"{tgw_table}: {resource} {cidr} -> {att_name}"],
                    ))  # fmt: skip
    return found


def _separated(ctx: Context, config: StackConfig, verdict: Verdict) -> None:
    ports = _ports(config, ctx.model)
    paths = 0
    for a, b in ((EXTERNAL_ZONES[0], EXTERNAL_ZONES[1]), (EXTERNAL_ZONES[1], EXTERNAL_ZONES[0])):
        for src in _zone_sources(ctx, config, a):
            for dst in _zone_sources(ctx, config, b):
                if src.address.version != dst.address.version:
                    continue
                for port in ports:
                    paths += 1
                    t = trace(ctx, src, dst.address, port)
                    if reached(t, dst):
                        verdict.violate(f"{a} reaches {b} on {port}", t.hops)
                        break
                    if t.arrived and t.exit in ("internet", "unknown"):
                        verdict.cannot_tell(
                            f"{a}'s packet for {b} leaves to {t.exit}: the proof cannot tell "
                            f"whether it gets there",
                            t.hops,
                        )
                        break
    for found in diversions(ctx, config, EXTERNAL_ZONES):
        verdict.cannot_tell(f"{found.summary}: the traces cannot cover it", found.hops)
    relays = [i for i in ctx.model.interfaces if not i.source_dest_check]
    for relay in relays:
        verdict.cannot_tell(
            f"{relay.name} forwards packets (source/destination check off): the model cannot "
            f"say what it relays",
            [f"{relay.kind} {relay.name}"],
        )
    verdict.checked.update({"paths traced": paths, "ports": len(ports)})


def _where(exc: BaseException) -> str:
    """The innermost frame of the proof's own code that the error came through."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/infra/proof/" in f.filename.replace("\\", "/")]  # fmt: skip
    last = frames[-1] if frames else None
    return f"{Path(last.filename).name}:{last.lineno} ({last.name})" if last else "unknown"


def prove(model: Model, config: StackConfig) -> Proof:
    ctx = Context(model, sites_of(config))
    verdicts = [
        Verdict("closed", "No path to or from the internet"),
        Verdict("policy", "Reachable flows equal the flow policy"),
        Verdict("separated", "LGWAN and the fund's line never reach each other"),
    ]
    checks: list[Callable[[Verdict], None]] = [
        functools.partial(_closed, ctx, config),
        functools.partial(_policy, ctx, config),
        functools.partial(_separated, ctx, config),
    ]
    for verdict, check in zip(verdicts, checks, strict=True):
        try:
            check(verdict)
        except Exception as exc:  # a proof that stopped halfway proves nothing: UNKNOWN
            verdict.status = UNKNOWN if verdict.status == HOLDS else verdict.status
            verdict.counterexamples.append(
                Counterexample(f"the proof failed: {type(exc).__name__}: {str(exc)[:160]}",
                               [f"at {_where(exc)}"])
            )  # fmt: skip
    if model.unknown:
        for v in verdicts:
            if v.status == HOLDS:
                v.status = UNKNOWN
            v.counterexamples.append(
                Counterexample(
                    "the model does not understand these traffic-carrying resources",
                    list(model.unknown),
                )
            )
    for v in verdicts:
        v.checked["resources read"] = model.counted
    return Proof(verdicts, list(model.unknown))
