"""The lab plan: everything the lab builds is derived from the stack config alone."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import load_stack, parse
from lab.plan import (
    MOTO_PORT,
    build_plan,
    host_guard_ruleset,
    inventory_layer,
    router_ruleset,
)
from ops.inventory.generate import write_inventory
from ops.inventory.operators import load_operators
from ops.inventory.outputs import load_outputs
from tests.support.inventory import make_key, write_operators, write_outputs

REPO = Path(__file__).resolve().parents[2]
ACCEPT = re.compile(
    r"^\s*ip saddr (\S+) ip daddr (\S+) (tcp|udp) dport (\d+) ct state new counter accept$"
)


def _accepts(ruleset: str) -> set[tuple[str, str, int, str]]:
    found = set()
    for line in ruleset.splitlines():
        m = ACCEPT.match(line)
        if m:
            found.add((m.group(1), m.group(2), int(m.group(4)), m.group(3)))
    return found


def test_router_accepts_exactly_the_flow_policy() -> None:
    config = load_stack("lab", REPO)
    want = {
        (str(config.zones[s].cidr), str(config.zones[d].cidr), port, proto)
        for s, d, port, proto in config.allowed()
    }
    ruleset = router_ruleset(config)
    assert _accepts(ruleset) == want
    forward = ruleset.split("chain forward")[1].split("chain output")[0]
    assert "policy drop;" in forward
    # The last verdict refuses everything the policy does not name.
    assert forward.strip().splitlines()[-2].strip() == (
        "counter reject with icmpx type admin-prohibited"
    )


def test_router_follows_a_changed_policy(lab_raw: dict[str, Any]) -> None:
    lab_raw["claims-dc:flows"][3]["to"] = ["app", "intake"]  # mgmt may no longer reach db
    config = parse(lab_raw, stack="lab", source="copy")
    accepts = _accepts(router_ruleset(config))
    assert ("10.231.40.0/24", "10.231.20.0/24", 22, "tcp") not in accepts
    assert ("10.231.40.0/24", "10.231.10.0/24", 22, "tcp") in accepts


def test_hosts_route_other_zones_via_the_router_and_have_no_default() -> None:
    config = load_stack("lab", REPO)
    plan = build_plan(config)
    for host in plan.hosts:
        own = config.zones[host.zone]
        dests = {dest for dest, _ in host.routes}
        assert dests == {z.cidr for z in config.zones.values() if z.name != host.zone}
        assert all(via == own.router_address for _, via in host.routes)
        assert ipaddress.IPv4Network("0.0.0.0/0") not in dests


def test_router_has_one_leg_per_zone() -> None:
    config = load_stack("lab", REPO)
    plan = build_plan(config)
    assert {addr for _, addr in plan.router_legs} == {
        z.router_address for z in config.zones.values()
    }


def test_guard_lets_only_the_endpoint_reach_moto() -> None:
    config = load_stack("lab", REPO)
    plan = build_plan(config)
    bridges = {n.name: f"podman{i}" for i, n in enumerate(plan.networks, 1)}
    ruleset = host_guard_ruleset(plan, bridges)
    from_lab = ruleset.split("chain from_lab")[1].split("chain output")[0]
    accepts = [line.strip() for line in from_lab.splitlines() if line.strip().endswith("accept")]
    assert accepts[0] == "ct state established,related accept"
    assert f"ip saddr 10.231.50.10 ip daddr 10.231.50.1 tcp dport {MOTO_PORT} accept" in accepts[1]
    assert len([a for a in accepts if "dport" in a]) == 1


def test_guard_lets_the_control_node_start_only_what_production_has() -> None:
    plan = build_plan(load_stack("lab", REPO))
    bridges = {n.name: f"podman{i}" for i, n in enumerate(plan.networks, 1)}
    into_lab = host_guard_ruleset(plan, bridges).split("chain into_lab")[1].split("chain ")[0]
    accepts = [x.strip() for x in into_lab.splitlines() if x.strip().endswith("accept")]
    assert accepts == [
        "ct state established,related accept",
        "ip daddr 10.231.40.10 tcp dport 22 accept",  # the bastion: the way in
        "ip daddr 10.231.50.10 tcp dport 443 accept",  # AWS's API, behind the endpoint
        # the outside parties: the city's terminal, the fund's sender, AWS's endpoints
        "ip daddr { 10.232.1.10, 10.233.1.10, 10.231.50.10 } tcp dport 22 accept",
    ]
    assert into_lab.strip().splitlines()[-2].strip() == (
        "counter reject with icmpx type admin-prohibited"
    )


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_generated_rulesets_are_valid_nftables(tmp_path: Path) -> None:
    config = load_stack("lab", REPO)
    plan = build_plan(config)
    bridges = {n.name: f"podman{i}" for i, n in enumerate(plan.networks, 1)}
    for name, text in (
        ("router.nft", router_ruleset(config).replace("flush ruleset\n", "")),
        ("guard.nft", host_guard_ruleset(plan, bridges)),
    ):
        path = tmp_path / name
        path.write_text(text)
        proc = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"


def _lab_inventory(tmp_path: Path) -> Path:
    """The lab's inventory as lab up writes it: the generator plus the lab's layer."""
    config = load_stack("lab", REPO)
    plan = build_plan(config)
    key = make_key(tmp_path / "operator_ed25519")
    write_inventory(
        config,
        load_outputs(write_outputs(config, tmp_path / "stack-outputs.json"), config),
        load_operators(write_operators(tmp_path / "operators.yml", ("opsadmin", "L0001", key))),
        tmp_path / "inv",
        connect="bastion",
        identity=tmp_path / "operator_ed25519",
        layer=inventory_layer(config, plan, tmp_path / "inv"),
    )
    return tmp_path / "inv"


def test_lab_inventory_groups_hosts_by_zone_and_role(tmp_path: Path) -> None:
    inv_dir = _lab_inventory(tmp_path)
    inv = yaml.safe_load((inv_dir / "inventory.yml").read_text())["all"]
    assert inv["hosts"]["db-1"]["ansible_host"] == "10.231.20.10"
    assert set(inv["children"]["zone_app"]["hosts"]) == {"app-1"}
    assert set(inv["children"]["role_bastion"]["hosts"]) == {"bastion-1"}
    assert set(inv["children"]["datacenter"]["hosts"]) == {"app-1", "db-1", "intake-1", "bastion-1"}
    assert set(inv["children"]["stand_ins"]["hosts"]) == {"terminal-1", "sender-1", "endpoints-1"}
    stack = yaml.safe_load((inv_dir / "group_vars" / "all" / "00-stack.yml").read_text())
    assert stack["ansible_user"] == "opsadmin"


def test_the_lab_layer_gives_every_variable_a_reason_and_no_role_reads_a_lab_name(
    tmp_path: Path,
) -> None:
    text = (_lab_inventory(tmp_path) / "group_vars" / "all" / "50-lab.yml").read_text()
    lines = [line for line in text.splitlines()[2:] if line.strip()]
    names = [line.split(":")[0] for line in lines if not line.startswith(("#", " ", "-"))]
    for name in names:
        before = lines[lines.index(next(x for x in lines if x.startswith(name + ":"))) - 1]
        assert before.startswith("# "), f"{name} has no reason"
        assert "lab" not in name
    assert "firewall_admin_sources" in names
    assert "''10.231.40.1''] if claims_dc_role == ''bastion'' else [] }}'" in text
    roles = REPO / "playbooks"
    for path in roles.rglob("*"):
        if path.is_file() and path.suffix in (".yml", ".j2"):
            for word in re.findall(r"\b[a-z_]*lab[a-z_]*\b", path.read_text()):
                assert not word.startswith(
                    (
                        "claims_dc_",
                        "backup_",
                        "access_review_",
                        "base_",
                        "hardening_",
                        "firewall_",
                        "claim_app_",
                        "postgresql_",
                        "intake_sftp_",
                        "key_rotation_",
                    )
                ), f"{path.relative_to(REPO)} reads a lab variable: {word}"


def test_lab_ssh_config_pins_host_keys(tmp_path: Path) -> None:
    inv_dir = _lab_inventory(tmp_path)
    text = (inv_dir / "ssh_config").read_text()
    plan = build_plan(load_stack("lab", REPO))
    assert text.count("StrictHostKeyChecking yes") == len(plan.hosts)
    assert "StrictHostKeyChecking no" not in text
    assert f"UserKnownHostsFile {inv_dir / 'known_hosts'}" in text
    # The data-center hosts through the bastion; the bastion and the outside parties directly.
    blocks = {b.split()[0]: b for b in text.split("\nHost ")[1:]}
    for name in ("app-1", "db-1", "intake-1"):
        assert "ProxyJump bastion-1" in blocks[name], name
    for name in ("bastion-1", "terminal-1", "sender-1"):
        assert "ProxyJump" not in blocks[name] and "ProxyCommand" not in blocks[name], name


def test_names_are_scoped_to_the_stack(lab_raw: dict[str, Any]) -> None:
    a = build_plan(parse(lab_raw, stack="lab", source="a"))
    b = build_plan(parse(lab_raw, stack="lab-2", source="b"))
    assert not {n.name for n in a.networks} & {n.name for n in b.networks}
    assert a.label != b.label
    assert a.host_table != b.host_table


def test_policy_mismatch_check_fires_on_every_kind_of_wrong_outcome() -> None:
    from lab.probes import mismatches

    config = load_stack("lab", REPO)
    right = {
        ("terminal-1", "app-1", 443): "open",  # allowed and open
        ("terminal-1", "sender-1", 22): "EHOSTUNREACH",  # denied, refused by the router
    }
    assert mismatches(config, right) == []
    wrong = {
        ("terminal-1", "app-1", 443): "EHOSTUNREACH",  # allowed flow blocked
        ("app-1", "terminal-1", 443): "open",  # the reverse direction let through
        ("terminal-1", "sender-1", 22): "timeout",  # denied, but not by the router
        ("bastion-1", "db-1", 5432): "ECONNREFUSED",  # reached a host it must not reach
    }
    assert len(mismatches(config, wrong)) == 4


def test_guard_keeps_lab_bound_traffic_on_the_lab_bridges() -> None:
    config = load_stack("lab", REPO)
    plan = build_plan(config)
    bridges = {n.name: f"podman{i}" for i, n in enumerate(plan.networks, 1)}
    output = host_guard_ruleset(plan, bridges).split("chain output")[1].split("chain forward")[0]
    rule = next(line.strip() for line in output.splitlines() if "ip daddr" in line)
    for zone in config.zones.values():
        assert str(zone.cidr) in rule
    for bridge in bridges.values():
        assert f'"{bridge}"' in rule
    assert "oifname != {" in rule and rule.endswith("reject with icmpx type admin-prohibited")
