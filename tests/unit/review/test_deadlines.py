"""The review always ends: every host's probe has one deadline for all of it, whatever the host
does, and the reason names the host and the stage. Hosts are loopback stand-ins
(tests/support/sshstub.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ops.reviewlib import hosts, probe
from tests.support.sshstub import misbehaving_host

TIMEOUT = 2.0
SLACK = 4.0  # the watchdog fires at the deadline; the slack is for a busy machine


@pytest.mark.parametrize(
    ("behaviour", "stage"),
    [
        ("silent", "connect, key exchange and login"),
        ("hang", "read"),
        ("trickle", "read"),
        ("close-and-hang", "exit status"),
    ],
)
def test_a_host_that_misbehaves_is_incomplete_within_its_deadline(
    tmp_path: Path, behaviour: str, stage: str
) -> None:
    with misbehaving_host(tmp_path, behaviour) as stub:
        started = time.monotonic()
        _, scopes = hosts.collect(
            [hosts.HostTarget("intake-1", "127.0.0.1", stub.port)],
            user="claims-dc-review", key_file=stub.key_file, known_hosts=stub.known_hosts,
            service={}, timeout=TIMEOUT,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    (scope,) = scopes
    assert scope.status == "INCOMPLETE"
    assert "intake-1" in scope.reason and f"127.0.0.1:{stub.port}" in scope.reason
    assert "DeadlinePassed" in scope.reason and f"in stage {stage}" in scope.reason, scope.reason
    assert elapsed < TIMEOUT + SLACK, elapsed


def test_a_host_that_answers_in_time_is_read(tmp_path: Path) -> None:
    body = {"format": probe.FORMAT, "users": [], "groups": [], "nopasswd": [], "keys": {},
            "lastlog": {}, "shadow": {}}  # fmt: skip
    with misbehaving_host(tmp_path, "answer", json.dumps(body).encode()) as stub:
        data = hosts.probe_host(
            hosts.HostTarget("app-1", "127.0.0.1", stub.port), "claims-dc-review",
            stub.key_file, stub.known_hosts, TIMEOUT,
        )  # fmt: skip
    assert data["format"] == probe.FORMAT
