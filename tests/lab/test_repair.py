"""`up` repairs a half-made lab, and `status` tells a broken lab from a healthy one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra.config import StackConfig
from lab import lab
from lab import podman as pm
from lab.lab import UpReport
from lab.plan import NFT_ROUTER_TABLE, LabPlan
from lab.probes import probe

pytestmark = pytest.mark.lab


def _status_cli() -> int:
    return subprocess.run(
        [sys.executable, "-m", "lab", "status"], capture_output=True, timeout=120
    ).returncode


def test_up_repairs_a_broken_lab(
    lab_up: UpReport, lab_plan: LabPlan, lab_config: StackConfig
) -> None:
    assert _status_cli() == 0
    app, bastion = lab_plan.host("app-1"), lab_plan.host("bastion-1")
    # Break it three ways: a host down, a host's routes gone, the router's rules gone.
    pm.podman("stop", "-t", "0", lab_plan.host("sender-1").container)
    pid = pm.inspect_container(app.container)["State"]["Pid"]  # type: ignore[index]
    subprocess.run(
        [
            "nsenter",
            "-t",
            str(pid),
            "-n",
            "ip",
            "route",
            "flush",
            "via",
            str(lab_config.zones["app"].router_address),
        ],
        check=True,
    )
    pm.exec_in(lab_plan.router, ["nft", "delete", "table", "inet", NFT_ROUTER_TABLE])

    st = lab.status(lab_config)
    assert not st["healthy"]
    assert st["router_rules"] == "MISSING"
    assert _status_cli() == 1
    db, terminal = lab_plan.host("db-1"), lab_plan.host("terminal-1")
    endpoint = f"{lab_plan.host('endpoints-1').address}:443"
    # The break is real: with no rules the router forwards what the policy denies (to a
    # stand-in: a data-center host's own firewall would still refuse the terminal).
    assert probe(terminal.container, [endpoint]) == {endpoint: "open"}
    # and app-1, without its routes, cannot answer anyone in another zone.
    assert probe(bastion.container, [f"{app.address}:22"], timeout=2) == {
        f"{app.address}:22": "timeout"
    }

    lab.up(lab_config)
    assert lab.status(lab_config)["healthy"]
    assert _status_cli() == 0
    assert probe(terminal.container, [f"{db.address}:22"]) == {f"{db.address}:22": "EHOSTUNREACH"}
    assert probe(terminal.container, [endpoint]) == {endpoint: "EHOSTUNREACH"}
    assert probe(app.container, [f"{db.address}:22"]) == {f"{db.address}:22": "EHOSTUNREACH"}
    assert probe(bastion.container, [f"{app.address}:22"]) == {f"{app.address}:22": "open"}
