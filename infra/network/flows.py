"""Firewall rules derived from the flow policy: NACLs (stateless) and security groups (stateful).

Pure functions of the config, shared by the components and tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import DATACENTER_ZONES, StackConfig

# Replies to a connection come back to the client's ephemeral port; NACLs are stateless, so
# each allowed flow needs its return path opened too. Security groups then keep it stateful.
EPHEMERAL = (1024, 65535)
PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17"}


@dataclass(frozen=True)
class NaclRule:
    egress: bool
    rule_number: int
    cidr: str
    from_port: int
    to_port: int
    protocol: str  # IANA number as a string, as the EC2 API takes it
    why: str


@dataclass(frozen=True)
class SgRule:
    ingress: bool
    cidr: str
    port: int
    protocol: str
    why: str


def nacl_rules(config: StackConfig, zone: str, s3_cidrs: tuple[str, ...] = ()) -> list[NaclRule]:
    """Allow rules for `zone`'s NACL; everything else falls to the implicit deny.

    `s3_cidrs` are the addresses of S3 in the region (its prefix list). The S3 gateway endpoint
    is reached at those addresses, not in the endpoints zone, so a zone the policy lets reach the
    endpoints also needs them in its NACL; the route to them exists only via the endpoint.
    """
    wanted: list[tuple[bool, str, int, int, str, str]] = []
    for flow in config.flows:
        proto = PROTOCOL_NUMBERS[flow.protocol]
        for src, dst in flow.pairs():
            if dst == zone:
                peer = str(config.zones[src].cidr)
                wanted.append(
                    (False, peer, flow.port, flow.port, proto, f"{src}->{dst} {flow.why}")
                )
                wanted.append((True, peer, *EPHEMERAL, proto, f"replies to {src}"))
            if src == zone:
                peer = str(config.zones[dst].cidr)
                wanted.append((True, peer, flow.port, flow.port, proto, f"{src}->{dst} {flow.why}"))
                wanted.append((False, peer, *EPHEMERAL, proto, f"replies from {dst}"))
    if zone in endpoint_clients(config):
        for cidr in s3_cidrs:
            wanted.append((True, cidr, 443, 443, "6", f"{zone}->S3 via the gateway endpoint"))
            wanted.append((False, cidr, *EPHEMERAL, "6", "replies from S3"))
    rules: list[NaclRule] = []
    seen: set[tuple[bool, str, int, int, str]] = set()
    numbers = {True: 100, False: 100}
    for egress, cidr, low, high, proto, why in wanted:
        if (egress, cidr, low, high, proto) in seen:
            continue
        seen.add((egress, cidr, low, high, proto))
        rules.append(NaclRule(egress, numbers[egress], cidr, low, high, proto, why))
        numbers[egress] += 10
    return rules


def sg_rules(config: StackConfig, zone: str) -> list[SgRule]:
    """Ingress from each allowed source zone, egress to each allowed destination zone."""
    rules: list[SgRule] = []
    for flow in config.flows:
        for src, dst in flow.pairs():
            if dst == zone:
                rules.append(
                    SgRule(
                        True,
                        str(config.zones[src].cidr),
                        flow.port,
                        flow.protocol,
                        f"from {src}: {flow.why}",
                    )
                )
            if src == zone:
                rules.append(
                    SgRule(
                        False,
                        str(config.zones[dst].cidr),
                        flow.port,
                        flow.protocol,
                        f"to {dst}: {flow.why}",
                    )
                )
    return rules


def endpoint_clients(config: StackConfig) -> list[str]:
    """The data-center zones the flow policy lets reach the AWS endpoints on 443."""
    return sorted(
        src
        for flow in config.flows
        for src, dst in flow.pairs()
        if dst == "endpoints" and flow.port == 443 and src in DATACENTER_ZONES
    )
