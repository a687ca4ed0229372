"""One lab for the whole slow suite: brought up (or repaired) once, shared by every test."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.config import StackConfig, load_stack
from lab import lab
from lab import podman as pm
from lab.lab import UpReport
from lab.plan import LabPlan, build_plan
from ops import bundle
from ops.playbook import PlaybookRun, run_playbook

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab_config() -> StackConfig:
    return load_stack("lab", REPO)


@pytest.fixture(scope="session")
def lab_plan(lab_config: StackConfig) -> LabPlan:
    return build_plan(lab_config)


@pytest.fixture(scope="session")
def lab_up(lab_config: StackConfig) -> UpReport:
    return lab.up(lab_config)


_tests_run = 0  # lab tests whose body has run in this session


def pytest_runtest_call(item: pytest.Item) -> None:
    global _tests_run
    _tests_run += 1


@dataclass
class SiteRuns:
    """site.yml on freshly made data-center hosts: check mode, converge, rerun, check mode."""

    inventory: Path
    check_fresh: PlaybookRun
    converge: PlaybookRun
    rerun: PlaybookRun
    check_converged: PlaybookRun


@pytest.fixture(scope="session")
def site_runs(lab_config: StackConfig, lab_plan: LabPlan, lab_up: UpReport) -> SiteRuns:
    """The first check run and the converge start from the golden image, whatever an earlier
    demo or test left on the hosts: the data-center hosts are made anew, unless this session's
    `lab up` has just made them and no test has touched them since."""
    for product in bundle.PRODUCTS.values():
        bundle.build(product=product)
    datacenter = {h.name for h in lab_plan.hosts if not lab_config.hosts[h.name].stand_in}
    report = lab_up
    if _tests_run > 0 or not datacenter <= set(lab_up.made_now):
        for host in lab_plan.hosts:
            if host.name in datacenter:
                pm.podman("rm", "-f", "-t", "0", host.container)
        report = lab.up(lab_config)
    print(f"site.yml on hosts made {'by this session' if report is lab_up else 'anew'}",
          file=sys.stderr)  # fmt: skip
    stand_ins = run_playbook(report.inventory, "lab_stand_ins.yml")
    assert stand_ins.ok, stand_ins.stdout[-3000:] + stand_ins.stderr[-2000:]
    runs = SiteRuns(
        inventory=Path(report.inventory),
        check_fresh=run_playbook(report.inventory, "site.yml", "--check"),
        converge=run_playbook(report.inventory, "site.yml"),
        rerun=run_playbook(report.inventory, "site.yml"),
        check_converged=run_playbook(report.inventory, "site.yml", "--check"),
    )
    for name in ("check_fresh", "converge", "rerun", "check_converged"):
        run = getattr(runs, name)
        print(f"site.yml {name}: {run.seconds}s", file=sys.stderr)
    return runs


@pytest.fixture(scope="session")
def converged(site_runs: SiteRuns) -> SiteRuns:
    assert site_runs.converge.ok, site_runs.converge.stdout[-4000:]
    return site_runs
