"""The control node sends nothing for a lab address anywhere but into the lab's bridges."""

from __future__ import annotations

import errno
import socket
import subprocess
from collections.abc import Iterator

import pytest

from lab import lab
from lab.lab import UpReport
from lab.plan import LabPlan

pytestmark = pytest.mark.lab
DEAD_END = "cdc-deadend"
UNUSED = "10.231.10.200"  # inside the app zone, no host there


def test_every_lab_address_routes_into_its_own_bridge(lab_up: UpReport, lab_plan: LabPlan) -> None:
    bridges = lab._bridges(lab_plan)
    lab.check_control_node_routes(lab_plan, bridges)  # raises on any other route
    # ...and it fires when a route goes anywhere else.
    names = list(bridges)
    swapped = dict(zip(names, names[1:] + names[:1], strict=True))
    with pytest.raises(RuntimeError, match="not the lab bridge"):
        lab.check_control_node_routes(lab_plan, {n: bridges[swapped[n]] for n in names})


@pytest.fixture
def dead_end_route() -> Iterator[None]:
    # A veth whose peer stays down is a dead end: whatever is routed into it goes nowhere.
    subprocess.run(
        ["ip", "link", "add", DEAD_END, "type", "veth", "peer", "name", f"{DEAD_END}p"],
        check=True,
    )
    try:
        subprocess.run(["ip", "link", "set", DEAD_END, "up"], check=True)
        subprocess.run(["ip", "route", "add", f"{UNUSED}/32", "dev", DEAD_END], check=True)
        yield
    finally:
        subprocess.run(["ip", "link", "del", DEAD_END], check=False)


def test_guard_refuses_lab_traffic_routed_elsewhere(
    lab_up: UpReport, lab_plan: LabPlan, dead_end_route: None
) -> None:
    with pytest.raises(OSError) as excinfo, socket.socket() as s:
        s.settimeout(5)
        s.connect((UNUSED, 22))
    # Refused by the guard at once (not a timeout: nothing was sent).
    assert excinfo.value.errno in (errno.EHOSTUNREACH, errno.EPERM, errno.EACCES), excinfo.value
    listing = subprocess.run(
        ["nft", "list", "chain", "inet", lab_plan.host_table, "output"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "packets 0 " not in listing, listing


def _connect(address: str, port: int) -> str:
    with socket.socket() as s:
        s.settimeout(5)
        try:
            s.connect((address, port))
        except OSError as e:
            return errno.errorcode.get(e.errno or 0, str(e))
    return "open"


def test_the_control_node_reaches_the_bastion_and_no_other_data_center_host(
    lab_up: UpReport, lab_plan: LabPlan
) -> None:
    assert _connect(str(lab_plan.first("bastion").address), 22) == "open"
    for role in ("app", "db", "intake"):
        host = lab_plan.first(role)
        # Refused by the control node's own guard, at once: nothing is sent.
        assert _connect(str(host.address), 22) in ("EHOSTUNREACH", "EACCES", "EPERM"), role
    assert _connect(str(lab_plan.first("bastion").address), 80) != "open"
    assert _connect(str(lab_plan.first("app").address), 443) != "open"
