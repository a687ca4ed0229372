"""One lab for the whole slow suite: brought up (or repaired) once, shared by every test."""

from __future__ import annotations

import re
import secrets
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.config import StackConfig, load_stack
from lab import lab
from lab import podman as pm
from lab.lab import UpReport
from lab.plan import LabPlan, build_plan
from ops import bundle
from ops.awsapi import Endpoint
from ops.playbook import PlaybookRun, run_playbook
from ops.rotation.db_login import in_use
from ops.vault.sealed import write_secret

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


_tests_run = 0  # lab tests whose body has run in this pytest run


def pytest_runtest_call(item: pytest.Item) -> None:
    global _tests_run
    _tests_run += 1


@dataclass
class SiteRuns:
    """site.yml on freshly made data-center hosts: check mode, converge, rerun, and check
    mode again with --diff -vvv on a copy of the inventory whose database passwords are
    canaries (what changes is only what handles them, and none of them is printed)."""

    inventory: Path
    check_fresh: PlaybookRun
    converge: PlaybookRun
    rerun: PlaybookRun
    check_converged: PlaybookRun
    canaries: list[str]


TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<task>[^\]]+)\]", re.M)
CHANGED = re.compile(r"^changed: \[(?P<host>[^\]]+)\]", re.M)


def changed_tasks(stdout: str) -> set[tuple[str, str]]:
    """(task, host) for every task or handler a run reported changed."""
    heads = list(TASK.finditer(stdout))
    found = set()
    for head, following in zip(heads, [*heads[1:], None], strict=True):
        block = stdout[head.end() : following.start() if following else len(stdout)]
        found |= {(head["task"], m["host"]) for m in CHANGED.finditer(block)}
    return found


def canary_check(inventory: Path) -> tuple[PlaybookRun, list[str]]:
    """site.yml --check --diff -vvv against a copy of the inventory directory whose owner and
    application passwords are canaries, sealed by the copy's vault like the real ones."""
    real = inventory.parent
    copy = real.parent / f"{real.name}-canary"
    shutil.rmtree(copy, ignore_errors=True)
    # Not the shared SSH sessions to the bastion (cm-*): sockets, which belong to the real one.
    shutil.copytree(real, copy, ignore=shutil.ignore_patterns("cm-*"))
    canaries = []
    try:
        for name in ("db-claims_owner", f"db-{in_use(real / 'secrets')}"):
            canary = f"CANARY{secrets.token_hex(12)}"
            canaries.append(canary)
            write_secret(copy / "secrets" / name, canary + "\n")
        run = run_playbook(copy / "inventory.yml", "site.yml", "--check", "--diff", "-vvv")
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return run, canaries


@pytest.fixture(scope="session")
def site_runs(lab_config: StackConfig, lab_plan: LabPlan, lab_up: UpReport) -> SiteRuns:
    """The first check run and the converge start from the golden image, whatever an earlier
    demo or test left on the hosts: the data-center hosts are made anew, unless the `lab up`
    of this pytest run has just made them and no test has touched them since."""
    for product in bundle.PRODUCTS.values():
        bundle.build(product=product)
    datacenter = {h.name for h in lab_plan.hosts if not lab_config.hosts[h.name].stand_in}
    report = lab_up
    if _tests_run > 0 or not datacenter <= set(lab_up.made_now):
        for host in lab_plan.hosts:
            if host.name in datacenter:
                pm.podman("rm", "-f", "-t", "0", host.container)
        report = lab.up(lab_config)
    print(f"site.yml on hosts made {'by this run' if report is lab_up else 'anew'}",
          file=sys.stderr)  # fmt: skip
    stand_ins = run_playbook(report.inventory, "lab_stand_ins.yml")
    assert stand_ins.ok, stand_ins.stdout[-3000:] + stand_ins.stderr[-2000:]
    check_fresh = run_playbook(report.inventory, "site.yml", "--check")
    converge = run_playbook(report.inventory, "site.yml")
    # The rerun and the canaries' check mode side by side: neither changes a converged host
    # (the rerun's changing nothing is what test_site asserts), and on two cores each
    # ansible-playbook keeps one busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        rerun_started = pool.submit(run_playbook, report.inventory, "site.yml")
        check_converged, canaries = canary_check(Path(report.inventory))
        rerun = rerun_started.result()
    runs = SiteRuns(Path(report.inventory), check_fresh, converge, rerun, check_converged,
                    canaries)  # fmt: skip
    for name in ("check_fresh", "converge", "rerun", "check_converged"):
        run = getattr(runs, name)
        print(f"site.yml {name}: {run.seconds}s", file=sys.stderr)
    return runs


@pytest.fixture(scope="session")
def converged(site_runs: SiteRuns) -> SiteRuns:
    assert site_runs.converge.ok, site_runs.converge.stdout[-4000:]
    return site_runs


@pytest.fixture(scope="session")
def lab_endpoint(lab_up: UpReport, lab_config: StackConfig) -> Endpoint:
    """The lab's AWS API as the control node reaches it (placeholder keys: moto takes any)."""
    from lab.plan import AWS_PLACEHOLDER_CONFIG

    config_file = Path(lab_up.inventory).parent / AWS_PLACEHOLDER_CONFIG
    return Endpoint(lab_up.endpoint_url, lab_config.region, lab_up.ca_cert, str(config_file))
