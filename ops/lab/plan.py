"""What the lab is made of, derived from the stack config alone (no podman, no I/O).

Networks, containers, addresses, the router's nftables ruleset, each host's routes and the
Ansible inventory all come from `StackConfig`, so the lab mirrors the zones and flows that the
Pulumi program declares. Everything here is a pure function that the unit tests call directly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import DATACENTER_ZONES, Flow, StackConfig
from ops.lab.image import OPERATOR_USER

# The moto server listens on the endpoints network's gateway (the control node); the endpoint
# stand-in terminates TLS on 443 and forwards to it, as a VPC interface endpoint would.
MOTO_PORT = 4566
NFT_ROUTER_TABLE = "claims_dc_router"


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
    """The control node's own guard: lab hosts may not start connections to it or through it,
    and the control node sends nothing for a lab address anywhere but into the lab.

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
    }}

    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        iifname . oifname {{ {same_bridge} }} accept
        iifname {{ {names} }} counter reject with icmpx type admin-prohibited
        oifname {{ {names} }} counter drop
    }}
}}
"""  # noqa: E501


def inventory(
    config: StackConfig, plan: LabPlan, state_dir: Path, aws: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The Ansible inventory of the running lab: groups per zone and per role; `aws` is what
    the lab apply created (the backup bucket and key)."""
    aws = aws or {}
    hosts: dict[str, Any] = {
        h.name: {
            "ansible_host": str(h.address),
            "claims_dc_zone": h.zone,
            "claims_dc_role": h.role,
            # In the lab, Ansible runs on the control node, which sits on every zone's network
            # at its gateway address; in production it runs from the bastion (mgmt zone).
            "claims_dc_control_node": str(plan.network(h.zone).gateway),
        }
        for h in plan.hosts
    }
    children: dict[str, Any] = {}
    for zone in config.zones:
        members = {h.name: None for h in plan.hosts if h.zone == zone}
        if members:
            children[f"zone_{zone}"] = {"hosts": members}
    for role in sorted({h.role for h in plan.hosts}):
        children[f"role_{role}"] = {"hosts": {h.name: None for h in plan.hosts if h.role == role}}
    children["datacenter"] = {
        "hosts": {h.name: None for h in plan.hosts if not config.hosts[h.name].stand_in}
    }
    children["stand_ins"] = {
        "hosts": {h.name: None for h in plan.hosts if config.hosts[h.name].stand_in}
    }
    return {
        "all": {
            "vars": {
                "ansible_user": OPERATOR_USER,
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_private_key_file": str(state_dir / "operator_ed25519"),
                "ansible_ssh_common_args": f"-F {state_dir / 'ssh_config'}",
                "claims_dc_stack": config.stack,
                "claims_dc_datacenter_zones": list(DATACENTER_ZONES),
                "claims_dc_aws_endpoint_url": plan.endpoint_url,
                "claims_dc_aws_region": config.region,
                "claims_dc_lab": True,
                "claims_dc_backup_bucket": aws.get("backup_bucket") or "",
                "claims_dc_backup_kms_key_id": aws.get("storage_key_arn") or "",
                "claims_dc_backup_lock_days": config.backup.retention_days,
                # One named operator in the lab: the account Ansible runs as.
                "base_operators": [
                    {
                        "name": OPERATOR_USER,
                        "comment": "lab operator, runs Ansible",
                        "public_keys": [
                            "{{ lookup('ansible.builtin.file', inventory_dir ~ "
                            "'/operator_ed25519.pub') }}"
                        ],
                    }
                ],
                # The flow policy, for the host firewalls: the same zones and flows as the
                # Pulumi program and the lab router, never a second copy.
                "claims_dc_zones": {z.name: str(z.cidr) for z in config.zones.values()},
                "claims_dc_flows": [
                    {
                        "from": list(f.sources),
                        "to": list(f.destinations),
                        "port": f.port,
                        "protocol": f.protocol,
                        "service": f.service or "",
                        "why": f.why,
                    }
                    for f in config.flows
                ],
            },
            "hosts": hosts,
            "children": children,
        }
    }


def inventory_yaml(
    config: StackConfig, plan: LabPlan, state_dir: Path, aws: dict[str, Any] | None = None
) -> str:
    header = f"# Written by `python -m ops.lab up` from {config.source}; regenerated on every up.\n"
    return header + yaml.safe_dump(
        inventory(config, plan, state_dir, aws), sort_keys=False, allow_unicode=True
    )


def ssh_config(plan: LabPlan, state_dir: Path) -> str:
    """OpenSSH client config for the lab: the lab key, strict host keys from the lab's own file."""
    blocks = []
    for h in plan.hosts:
        blocks.append(
            f"Host {h.name} {h.address}\n"
            f"    HostName {h.address}\n"
            f"    User {OPERATOR_USER}\n"
            f"    IdentityFile {state_dir / 'operator_ed25519'}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {state_dir / 'known_hosts'}\n"
            f"    StrictHostKeyChecking yes\n"
            f"    PasswordAuthentication no\n"
            f"    ConnectTimeout 5\n"
        )
    return "\n".join(blocks)
