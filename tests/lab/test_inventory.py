"""The inventory the lab writes drives Ansible against every host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import StackConfig
from lab.lab import UpReport

pytestmark = pytest.mark.lab
BIN = Path(sys.executable).parent


def test_ansible_reaches_every_host_through_the_inventory(
    lab_up: UpReport, lab_config: StackConfig
) -> None:
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [
            str(BIN / "ansible"),
            "-i",
            lab_up.inventory,
            "all",
            "-m",
            "ansible.builtin.ping",
            "--one-line",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ok = {line.split()[0] for line in proc.stdout.splitlines() if "SUCCESS" in line}
    assert ok == set(lab_config.hosts)


def test_inventory_groups(lab_up: UpReport) -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", lab_up.inventory, "--list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data = json.loads(proc.stdout)
    assert data["zone_db"]["hosts"] == ["db-1"]
    assert data["role_sender"]["hosts"] == ["sender-1"]
    assert sorted(data["datacenter"]["hosts"]) == ["app-1", "bastion-1", "db-1", "intake-1"]
