"""`down` removes exactly what the lab made. Runs last: it takes the shared lab away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import StackConfig
from lab import lab
from lab import podman as pm
from lab.lab import UpReport
from lab.plan import LabPlan

pytestmark = [pytest.mark.lab, pytest.mark.destroys_lab]
REPO = Path(__file__).resolve().parents[2]
DECOY = "claims-dc-test-decoy"


def test_down_removes_exactly_the_lab(
    lab_up: UpReport, lab_plan: LabPlan, lab_config: StackConfig
) -> None:
    # Something that is not the lab's, with a look-alike name, must survive.
    pm.podman("network", "create", "--internal", "--subnet", "10.239.99.0/24", DECOY)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lab", "down"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert pm.container_names(lab_plan.label) == []
        assert pm.network_names(lab_plan.label) == []
        for host in lab_plan.hosts:
            assert pm.inspect_container(host.container) is None
        for net in lab_plan.networks:
            assert pm.inspect_network(net.name) is None
        assert lab._moto_pids(lab_plan) == []
        assert not lab._host_table_exists(lab_plan)
        assert not Path(lab_up.state_dir).exists()
        assert pm.inspect_network(DECOY) is not None
        # A second down finds nothing and is fine with that.
        again = subprocess.run(
            [sys.executable, "-m", "lab", "down", "--json"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0 and '"containers": []' in again.stdout
    finally:
        pm.podman("network", "rm", "-f", DECOY, check=False)
