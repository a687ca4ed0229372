"""Hands inside the lab hosts: connection probes and bounded listeners.

The probes run inside a lab host (podman exec), so what they see is what that host sees: its
routes, the router, the far host. Every target is a lab host or an address with no route.
"""

from __future__ import annotations

import json
import time

from infra.config import StackConfig
from lab import podman as pm
from lab.plan import LabPlan

PROBE = r"""
import errno, json, socket, sys
out = {}
for target in json.loads(sys.argv[1]):
    host, port = target.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(float(sys.argv[2]))
    try:
        s.connect((host, int(port)))
        out[target] = "open"
    except socket.timeout:
        out[target] = "timeout"
    except OSError as exc:
        out[target] = errno.errorcode.get(exc.errno, str(exc))
    finally:
        s.close()
print(json.dumps(out))
"""

# Listens on the given ports for a bounded time, then exits by itself.
LISTENER = r"""
import selectors, socket, sys, time
sel = selectors.DefaultSelector()
for port in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(port)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
end = time.monotonic() + 600
while time.monotonic() < end:
    for key, _ in sel.select(timeout=1):
        conn, _ = key.fileobj.accept()
        conn.close()
"""


def probe(container: str, targets: list[str], timeout: float = 5.0) -> dict[str, str]:
    """Connect from inside `container` to each "address:port"; returns target -> outcome.

    Outcomes: "open", "timeout", or the errno name (EHOSTUNREACH: refused by the router;
    ENETUNREACH: no route; ECONNREFUSED: reached the host, nothing listening).
    """
    proc = pm.exec_in(
        container, ["python3", "-c", PROBE, json.dumps(targets), str(timeout)], timeout=300
    )
    result: dict[str, str] = json.loads(proc.stdout)
    return result


def listening_ports(container: str) -> set[int]:
    out = pm.exec_in(container, ["ss", "-Htln"]).stdout
    ports = set()
    for line in out.splitlines():
        local = line.split()[3]
        ports.add(int(local.rsplit(":", 1)[1]))
    return ports


def start_listener(container: str, address: str, ports: list[int]) -> None:
    if ports:
        pm.podman(
            "exec", "-d", container, "python3", "-c", LISTENER, address, *[str(p) for p in ports]
        )


def stop_listeners(container: str) -> None:
    pm.exec_in(container, ["pkill", "-f", "selectors.DefaultSelector"], check=False)


# A port no flow names, so every pair of zones has at least one port the router must refuse.
UNLISTED_PORT = 8080

Observed = dict[tuple[str, str, int], str]


def policy_ports(config: StackConfig) -> list[int]:
    return sorted({port for port, _ in config.ports()} | {UNLISTED_PORT})


def start_policy_listeners(plan: LabPlan, ports: list[int]) -> None:
    """A bounded listener on every port of every host that nothing else listens on, then wait
    until each host lists every port as listening: a refusal seen later is a firewall's.

    The check is made inside each host, not from the control node, because a converged host's
    own firewall admits the control node on SSH only."""
    for host in plan.hosts:
        busy = listening_ports(host.container)
        start_listener(host.container, str(host.address), [p for p in ports if p not in busy])
    for host in plan.hosts:
        deadline = time.monotonic() + 15
        while missing := set(ports) - listening_ports(host.container):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no listener on {host.name} ports {sorted(missing)}")
            time.sleep(0.2)


def stop_policy_listeners(plan: LabPlan) -> None:
    for host in plan.hosts:
        stop_listeners(host.container)


def observe(plan: LabPlan, ports: list[int]) -> Observed:
    """The outcome for every (source host, destination host, port) across zones."""
    observed: Observed = {}
    for src in plan.hosts:
        targets = {
            f"{dst.address}:{port}": (dst.name, port)
            for dst in plan.hosts
            if dst.zone != src.zone
            for port in ports
        }
        for target, outcome in probe(src.container, list(targets)).items():
            dst_name, port = targets[target]
            observed[(src.name, dst_name, port)] = outcome
    return observed


def mismatches(config: StackConfig, observed: Observed) -> list[str]:
    """Where the network disagrees with the flow policy: allowed must be open, denied must be
    refused by the router (EHOSTUNREACH), not merely time out or find nothing listening."""
    bad = []
    for (src, dst, port), outcome in sorted(observed.items()):
        allowed = config.is_allowed(config.hosts[src].zone, config.hosts[dst].zone, port)
        want = "open" if allowed else "EHOSTUNREACH"
        if outcome != want:
            bad.append(f"{src} -> {dst}:{port}: {outcome}, policy says {want}")
    return bad
