"""The router forwards exactly the flow policy, for every (source zone, destination zone, port).

A listener runs on every probed port of every host, and the control node first checks each one
answers, so a refused connection is the router's doing and nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from infra.config import StackConfig, load_file
from lab import lab
from lab import podman as pm
from lab.lab import UpReport
from lab.plan import LabPlan
from lab.probes import (
    UNLISTED_PORT,
    mismatches,
    observe,
    policy_ports,
    probe,
    start_policy_listeners,
    stop_policy_listeners,
)

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
EXTRA_PORT = 8443  # the changed policy's new flow


@pytest.fixture(scope="module")
def listeners(lab_up: UpReport, lab_plan: LabPlan, lab_config: StackConfig) -> Iterator[None]:
    start_policy_listeners(lab_plan, [*policy_ports(lab_config), EXTRA_PORT])
    yield
    stop_policy_listeners(lab_plan)


def test_every_zone_pair_and_port_follows_the_policy(
    listeners: None, lab_plan: LabPlan, lab_config: StackConfig
) -> None:
    observed = observe(lab_plan, policy_ports(lab_config))
    zones_with_hosts = {h.zone for h in lab_plan.hosts}
    pairs = [(a, b) for a, b in itertools.permutations(zones_with_hosts, 2)]
    assert len(observed) == len(pairs) * len(policy_ports(lab_config))
    assert mismatches(lab_config, observed) == []
    # Both verdicts occur: the matrix is not trivially all-open or all-closed.
    assert {"open", "EHOSTUNREACH"} == set(observed.values())


def test_lgwan_and_the_fund_never_meet(listeners: None, lab_plan: LabPlan) -> None:
    terminal, sender = lab_plan.host("terminal-1"), lab_plan.host("sender-1")
    ports = [22, 443, 5432, UNLISTED_PORT]
    there = probe(terminal.container, [f"{sender.address}:{p}" for p in ports])
    back = probe(sender.container, [f"{terminal.address}:{p}" for p in ports])
    assert set(there.values()) == set(back.values()) == {"EHOSTUNREACH"}


def test_the_router_follows_a_changed_policy(
    listeners: None, lab_plan: LabPlan, lab_config: StackConfig, tmp_path: Path
) -> None:
    document = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text(encoding="utf-8"))
    flows = document["config"]["claims-dc:flows"]
    mgmt_ssh = next(f for f in flows if f["from"] == "mgmt" and f["port"] == 22)
    mgmt_ssh["to"] = [z for z in mgmt_ssh["to"] if z != "db"]  # operators lose db-1
    flows.append({"from": "lgwan", "to": "app", "port": EXTRA_PORT, "why": "a second web port"})
    copy = tmp_path / "Pulumi.lab.yaml"
    copy.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    changed = load_file(copy)

    bastion, terminal = lab_plan.host("bastion-1"), lab_plan.host("terminal-1")
    db, app = lab_plan.host("db-1"), lab_plan.host("app-1")
    targets_b = [f"{db.address}:22", f"{app.address}:22"]
    targets_t = [f"{app.address}:{EXTRA_PORT}", f"{app.address}:443"]
    before = probe(bastion.container, targets_b) | probe(terminal.container, targets_t)
    assert before == {
        targets_b[0]: "open",
        targets_b[1]: "open",
        targets_t[0]: "EHOSTUNREACH",
        targets_t[1]: "open",
    }
    # A policy change reaches the host firewalls too (site.yml); here app-1's is opened by
    # hand for the new port, so that what is measured is the router following the change.
    host_firewall = "nft list table inet claims_dc_host >/dev/null 2>&1"
    opened = pm.exec_in(app.container, ["sh", "-c", host_firewall], check=False).returncode == 0
    try:
        if opened:
            pm.exec_in(app.container, ["nft", "insert", "rule", "inet", "claims_dc_host", "input",
                                       "tcp", "dport", str(EXTRA_PORT), "accept"])  # fmt: skip
        lab.apply_router_rules(changed, lab_plan)
        after = probe(bastion.container, targets_b) | probe(terminal.container, targets_t)
        assert after == {
            targets_b[0]: "EHOSTUNREACH",
            targets_b[1]: "open",
            targets_t[0]: "open",
            targets_t[1]: "open",
        }
        assert mismatches(changed, observe(lab_plan, [22, 443, EXTRA_PORT])) == []
    finally:
        lab.apply_router_rules(lab_config, lab_plan)
        if opened:
            pm.exec_in(app.container, ["nft", "-f", "/etc/nftables.conf"])
    restored = probe(bastion.container, targets_b) | probe(terminal.container, targets_t)
    assert restored == before
