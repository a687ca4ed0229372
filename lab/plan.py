"""What the lab is made of, derived from the stack config alone (no podman, no I/O).

Networks, containers, addresses, the router's nftables ruleset, each host's routes and the
Ansible inventory all come from `StackConfig`, so the lab mirrors the zones and flows that the
Pulumi program declares. Everything here is a pure function that the unit tests call directly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.config import Flow, StackConfig
from lab.image import OPERATOR_USER
from ops.inventory.generate import Layer

# The moto server listens on the endpoints network's gateway (the control node); the endpoint
# stand-in terminates TLS on 443 and forwards to it, as a VPC interface endpoint would.
MOTO_PORT = 4566
NFT_ROUTER_TABLE = "claims_dc_router"
# Stand-ins for what is outside the data center's hosts, which the lab drives over SSH: the
# city's terminal, the fund's sender, and AWS's endpoints.
OUTSIDE_PARTY_ROLES = ("terminal", "sender", "endpoint")


@dataclass(frozen=True)
class LabNetwork:
    zone: str
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address  # the control node's address on this network


@dataclass(frozen=True)
class LabHost:
    name: str  # the config's host name, also the container's hostname
    container: str
    zone: str
    role: str
    address: ipaddress.IPv4Address
    routes: tuple[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address], ...]


@dataclass(frozen=True)
class LabPlan:
    stack: str
    label: str
    networks: tuple[LabNetwork, ...]
    hosts: tuple[LabHost, ...]
    router: str
    router_legs: tuple[tuple[str, ipaddress.IPv4Address], ...]  # (network name, address)
    host_table: str  # the control node's nftables table guarding it from the lab

    def network(self, zone: str) -> LabNetwork:
        return next(n for n in self.networks if n.zone == zone)

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"no host {name!r} in stack {self.stack}; hosts: {self.host_names()}")

    def host_names(self) -> list[str]:
        return [h.name for h in self.hosts]

    @property
    def moto_address(self) -> ipaddress.IPv4Address:
        return self.network("endpoints").gateway

    def first(self, role: str) -> LabHost:
        """The first host of `role` (config order)."""
        for h in self.hosts:
            if h.role == role:
                return h
        raise KeyError(f"no host with role {role!r} in stack {self.stack}")

    def endpoint_host(self) -> LabHost:
        return self.first("endpoint")

    @property
    def endpoint_url(self) -> str:
        return f"https://{self.endpoint_host().address}"


def build_plan(config: StackConfig) -> LabPlan:
    prefix = f"cdc-{config.stack}"
    networks = tuple(
        LabNetwork(
            zone=zone.name,
            name=f"{prefix}-{zone.name}",
            subnet=zone.cidr,
            gateway=zone.cidr.network_address + 1,
        )
        for zone in config.zones.values()
    )
    hosts = []
    for host in config.hosts.values():
        own = config.zones[host.zone]
        # A route to every other zone through the router, and no default route: the router
        # decides, so a denied flow is refused there, visibly, rather than simply unroutable.
        routes = tuple(
            (zone.cidr, own.router_address)
            for zone in config.zones.values()
            if zone.name != host.zone
        )
        hosts.append(
            LabHost(
                name=host.name,
                container=f"{prefix}-{host.name}",
                zone=host.zone,
                role=host.role,
                address=host.address,
                routes=routes,
            )
        )
    return LabPlan(
        stack=config.stack,
        label=f"claims-dc.lab={config.stack}",
        networks=networks,
        hosts=tuple(hosts),
        router=f"{prefix}-router",
        router_legs=tuple((n.name, config.zones[n.zone].router_address) for n in networks),
        host_table=f"claims_dc_lab_{config.stack.replace('-', '_')}",
    )


def _flow_rules(config: StackConfig, flow: Flow) -> list[str]:
    rules = [
        f"# {', '.join(flow.sources)} -> {', '.join(flow.destinations)} "
        f"{flow.port}/{flow.protocol}: {flow.why}"
    ]
    for src, dst in flow.pairs():
        rules.append(
            f"ip saddr {config.zones[src].cidr} ip daddr {config.zones[dst].cidr} "
            f"{flow.protocol} dport {flow.port} ct state new counter accept"
        )
    return rules


def router_ruleset(config: StackConfig) -> str:
    """The lab router's nftables ruleset: forward exactly the flow policy, drop the rest.

    Denied traffic is rejected (ICMP administratively prohibited) rather than silently dropped
    so that a refused connection fails at once and the evidence names the router.
    """
    forward = [rule for flow in config.flows for rule in _flow_rules(config, flow)]
    body = "\n".join(f"        {line}" for line in forward)
    return f"""#!/usr/sbin/nft -f
# claims-dc lab router for stack {config.stack}, generated from {config.source}. Do not edit.
flush ruleset

table inet {NFT_ROUTER_TABLE} {{
    chain input {{
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        counter reject with icmpx type admin-prohibited
    }}

    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid counter drop
{body}
        counter reject with icmpx type admin-prohibited
    }}

    chain output {{
        type filter hook output priority filter; policy drop;
        oif "lo" accept
        ct state established,related accept
        icmp type destination-unreachable accept
    }}
}}
"""


def host_guard_ruleset(plan: LabPlan, bridges: dict[str, str]) -> str:
    """The control node's own guard: lab hosts may not start connections to it or through it;
    the control node sends nothing for a lab address anywhere but into the lab; and into the
    lab it may start only what production has:

    - the bastion's SSH port: the stand-in for the Session Manager leg, the operators' only
      way in (every other host is reached through the bastion);
    - the endpoint stand-in's HTTPS: the control node's own AWS calls (AWS's API in
      production);
    - the stand-ins for outside parties (the city's terminal, the fund's sender, AWS's
      endpoints), which the lab plays over SSH: they are not data-center hosts.

    Each lab network has the control node on its gateway address (podman's bridge), which would
    otherwise be a way out of the closed segment. Only the endpoint stand-in may reach the moto
    server. `bridges` maps network name to its bridge interface.
    """
    names = ", ".join(f'"{bridges[n.name]}"' for n in plan.networks)
    # With bridge netfilter on (it is on some machines), frames bridged inside one lab network
    # also pass the forward hook: they stay on their bridge, so they are not a way out.
    same_bridge = ", ".join(f'"{b}" . "{b}"' for b in (bridges[n.name] for n in plan.networks))
    endpoints_bridge = bridges[plan.network("endpoints").name]
    endpoint = plan.endpoint_host().address
    bastion = plan.first("bastion").address
    outside_parties = ", ".join(str(h.address) for h in plan.hosts if h.role in OUTSIDE_PARTY_ROLES)
    # Whatever the routing table says, nothing the control node sends to a lab address may
    # leave through anything but the lab's own bridges: never out of the machine.
    cidrs = ", ".join(str(n.subnet) for n in plan.networks)
    return f"""table inet {plan.host_table} {{
    chain input {{
        type filter hook input priority filter - 10; policy accept;
        iifname {{ {names} }} jump from_lab
    }}

    chain from_lab {{
        ct state established,related accept
        iifname "{endpoints_bridge}" ip saddr {endpoint} ip daddr {plan.moto_address} tcp dport {MOTO_PORT} accept
        counter reject with icmpx type admin-prohibited
    }}

    chain output {{
        type filter hook output priority filter - 10; policy accept;
        ip daddr {{ {cidrs} }} oifname != {{ {names}, "lo" }} counter reject with icmpx type admin-prohibited
        oifname {{ {names} }} jump into_lab
    }}

    chain into_lab {{
        ct state established,related accept
        ip daddr {bastion} tcp dport 22 accept
        ip daddr {endpoint} tcp dport 443 accept
        ip daddr {{ {outside_parties} }} tcp dport 22 accept
        counter reject with icmpx type admin-prohibited
    }}

    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        iifname . oifname {{ {same_bridge} }} accept
        iifname {{ {names} }} counter reject with icmpx type admin-prohibited
        oifname {{ {names} }} counter drop
    }}
}}
"""  # noqa: E501


LAB_OPERATOR_STAFF_ID = "L0001"  # the roster's lab operator (lab/review.py)
AWS_PLACEHOLDER_CONFIG = "aws-placeholder.conf"


def operators_yaml(public_key: str) -> str:
    """The lab's operators file: one named operator, the account Ansible runs as."""
    document = {
        "operators": [
            {
                "name": OPERATOR_USER,
                "staff_id": LAB_OPERATOR_STAFF_ID,
                "comment": "lab operator, runs Ansible",
                "public_keys": [public_key.strip()],
            }
        ]
    }
    header = "# Written by `claims-dc lab up`: the lab's one operator.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def aws_placeholder_config(config: StackConfig) -> str:
    """The control node's AWS config in the lab: moto accepts any key, and these are none."""
    return (
        "# Written by `claims-dc lab up`. Placeholders, not secrets: the lab's AWS API (moto)\n"
        "# does not authenticate.\n"
        f"[default]\nregion = {config.region}\n"
        "aws_access_key_id = placeholder-the-lab-api-does-not-authenticate\n"
        "aws_secret_access_key = placeholder-the-lab-api-does-not-authenticate\n"
    )


def inventory_layer(config: StackConfig, plan: LabPlan, state_dir: Path) -> Layer:
    """What the lab adds to the inventory that `ops.inventory` writes for every environment:
    the stand-ins, and the few inputs that differ because the lab's hosts are containers on
    this machine and its AWS is moto. Each with the reason."""
    gateways = {n.zone: str(n.gateway) for n in plan.networks}
    stand_ins = [h for h in plan.hosts if config.hosts[h.name].stand_in]
    return Layer(
        name="50-lab",
        title="the local lab's layer (lab/plan.py inventory_layer)",
        variables={
            "claims_dc_aws_endpoint_url": (
                plan.endpoint_url,
                "the endpoint stand-in plays the VPC interface endpoints; in AWS the services' "
                "own names resolve to them",
            ),
            "claims_dc_aws_ca_cert_file": (
                str(state_dir / "pki" / "ca.crt"),
                "the endpoint stand-in's TLS certificate comes from the lab CA",
            ),
            "claims_dc_aws_placeholder_credentials": (
                True,
                "moto does not authenticate, and containers have no instance profile (IMDS) "
                "to take credentials from",
            ),
            "claims_dc_aws_config_file": (
                str(state_dir / AWS_PLACEHOLDER_CONFIG),
                "the control node's AWS calls go to moto, which takes placeholder keys",
            ),
            "claims_dc_in_container": (
                True,
                "the hosts are podman containers: the clock, kernel settings and auditd "
                "belong to this machine",
            ),
            "firewall_admin_sources": (
                "{{ ['" + gateways[plan.first("bastion").zone] + "'] "
                "if claims_dc_role == 'bastion' else [] }}",
                "the control node reaches the bastion from its gateway address on the "
                "management network, where Session Manager would arrive on the bastion itself",
            ),
        },
        hosts={
            h.name: {
                "ansible_host": str(h.address),
                "claims_dc_zone": h.zone,
                "claims_dc_role": h.role,
            }
            for h in stand_ins
        },
        groups={"stand_ins": [h.name for h in stand_ins]},
    )
