"""Nothing in the lab has a way out: no default route, no uplink, and the control node refuses
connections from the lab hosts (its addresses on their networks are not a back door)."""

from __future__ import annotations

import ipaddress

import pytest

from infra.config import StackConfig
from lab import podman as pm
from lab.lab import UpReport
from lab.plan import MOTO_PORT, LabPlan
from lab.probes import probe

pytestmark = pytest.mark.lab

# TEST-NET-2 (RFC 5737): never routed anywhere. Only probed after checking there is no route,
# so no packet leaves the host.
OUTSIDE = "198.51.100.1"


def _routes(container: str) -> list[str]:
    return pm.exec_in(container, ["ip", "-4", "route", "show"]).stdout.splitlines()


def test_no_host_has_a_default_route(lab_up: UpReport, lab_plan: LabPlan) -> None:
    for host in lab_plan.hosts:
        routes = _routes(host.container)
        assert not [r for r in routes if r.startswith("default")], (host.name, routes)
        get = pm.exec_in(host.container, ["ip", "route", "get", OUTSIDE], check=False)
        assert get.returncode != 0 and "unreachable" in get.stderr, (host.name, get.stderr)


def test_outside_connections_fail_at_once(lab_up: UpReport, lab_plan: LabPlan) -> None:
    for host in lab_plan.hosts:
        result = probe(host.container, [f"{OUTSIDE}:443", f"{OUTSIDE}:80"], timeout=5)
        # ENETUNREACH comes from the host's own routing table, before any packet is sent;
        # a timeout here would mean a packet went looking for a way out.
        assert set(result.values()) == {"ENETUNREACH"}, (host.name, result)


def test_the_control_node_is_no_way_out(lab_up: UpReport, lab_plan: LabPlan) -> None:
    for host in lab_plan.hosts:
        gateway = lab_plan.network(host.zone).gateway
        result = probe(host.container, [f"{gateway}:22", f"{gateway}:{MOTO_PORT}"])
        expect = {"EHOSTUNREACH"}
        if host.role == "endpoint":
            # Only the endpoint stand-in may reach the AWS API behind it.
            assert result[f"{gateway}:{MOTO_PORT}"] == "open"
            result.pop(f"{gateway}:{MOTO_PORT}")
        assert set(result.values()) == expect, (host.name, result)


def test_the_router_has_no_uplink(
    lab_up: UpReport, lab_plan: LabPlan, lab_config: StackConfig
) -> None:
    routes = _routes(lab_plan.router)
    assert not [r for r in routes if r.startswith("default")], routes
    addrs = pm.exec_in(lab_plan.router, ["ip", "-4", "-o", "addr", "show", "scope", "global"])
    for line in addrs.stdout.splitlines():
        addr = ipaddress.IPv4Interface(line.split()[3]).ip
        assert any(addr in z.cidr for z in lab_config.zones.values()), line


def test_lab_networks_are_internal(lab_up: UpReport, lab_plan: LabPlan) -> None:
    for net in lab_plan.networks:
        info = pm.inspect_network(net.name)
        assert info is not None and info["internal"] is True, net.name
        assert [s["subnet"] for s in info["subnets"]] == [str(net.subnet)]
