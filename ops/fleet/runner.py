"""One playbook over the fleet: tenant by tenant, a bounded number at once, each with its own
inventory, directory and log, one tenant's failure not stopping the others.

Each tenant's run goes through ansible-runner (the library AWX itself runs playbooks with): a
private directory per tenant and run, `<out>/<stack>/`, holding the command, the whole log
(`artifacts/<id>/stdout`), every event as JSON (`artifacts/<id>/job_events/`), the status and
the return code. The tenant's inventory is the one `claims-dc inventory` generated for it,
found as `<inventories>/<stack>/inventory.yml`; its vault client (if any) is used as a single
run would use it. A tenant with no inventory is reported as such and the others still run.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.playbook import PLAYBOOKS, REPO
from ops.vault.client import vault_args

# The playbooks that make sense fleet-wide (each tenant's own hosts, nothing shared).
FLEET_PLAYBOOKS = ("site.yml", "daily_backup.yml", "access_review.yml", "rotate_keys.yml")
INVENTORY_NAME = "inventory.yml"


@dataclass
class TenantRun:
    stack: str
    status: str  # successful, failed, timeout, canceled, no-inventory, error
    rc: int | None = None
    seconds: float = 0.0
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)  # host -> recap counts
    log: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


def inventory_of(inventories: Path, stack: str) -> Path:
    return inventories / stack / INVENTORY_NAME


def run_tenant(stack: str, inventories: Path, playbook: str, out: Path, timeout: float,
               extravars: dict[str, Any], playbooks: Path = PLAYBOOKS) -> TenantRun:  # fmt: skip
    import ansible_runner

    inventory = inventory_of(inventories, stack)
    if not inventory.is_file():
        why = f"no inventory at {inventory} (ops.inventory writes it from the stack's outputs)"
        return TenantRun(stack, "no-inventory", error=why)
    private = out / stack
    private.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        result = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(playbooks),
            playbook=str(playbooks / playbook),
            inventory=str(inventory),
            cmdline=" ".join(vault_args(inventory.parent)) or None,
            # This environment's ansible-playbook (ansible-runner finds it on PATH).
            envvars={
                "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1",
                # ansible-runner turns host key checking off unless told: every host's key is
                # pinned in the inventory's known_hosts, and stays checked.
                "ANSIBLE_HOST_KEY_CHECKING": "True",
                # This environment's ansible-playbook (ansible-runner finds it on PATH).
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            },
            extravars=extravars or None,
            quiet=True,
            timeout=int(timeout),
            ident=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        )
    except Exception as e:  # ansible-runner refused to start: this tenant's error, named
        return TenantRun(stack, "error", seconds=round(time.monotonic() - started, 1),
                         error=f"{type(e).__name__}: {str(e)[:300]}")  # fmt: skip
    stats = result.stats or {}
    hosts: dict[str, dict[str, int]] = {}
    for counter in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
        for host, n in (stats.get(counter) or {}).items():
            hosts.setdefault(host, {})[counter] = int(n)
    return TenantRun(
        stack,
        str(result.status),
        result.rc,
        round(time.monotonic() - started, 1),
        hosts,
        str(Path(result.config.artifact_dir) / "stdout"),
    )


def run_fleet(stacks: list[str], inventories: Path, playbook: str, out: Path, *,
              parallel: int = 4, timeout: float = 3600, extravars: dict[str, Any] | None = None,
              playbooks: Path = PLAYBOOKS) -> list[TenantRun]:  # fmt: skip
    """Every tenant's run, at most `parallel` at once; the results in the stacks' order.
    `playbooks`: the repository's, but for a test's own."""
    if playbook not in FLEET_PLAYBOOKS:
        raise ValueError(f"{playbook}: fleet-wide runs are of {', '.join(FLEET_PLAYBOOKS)}")
    with cf.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {
            s: pool.submit(
                run_tenant, s, inventories, playbook, out, timeout, extravars or {}, playbooks
            )
            for s in stacks
        }
        runs = []
        for stack, future in futures.items():
            try:
                runs.append(future.result())
            except Exception as e:  # a thread that failed is its tenant's, not the fleet's
                runs.append(TenantRun(stack, "error", error=f"{type(e).__name__}: {e}"[:300]))
        return runs
