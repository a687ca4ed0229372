"""The host-side step of a phase: playbooks/rotate_keys.yml with `key_rotation_step` set, one
host at a time (serial 1, max_fail_percentage 0). Every run is a new ansible-playbook process
whose tasks share one SSH session per host, kept in a directory of that run's own that goes
with it: each step opens fresh connections and never leans on a session opened with the
credential being replaced (the verifications connect afresh too, without multiplexing).

An unreachable host raises `Interrupted` (resume later); a failed task raises `StepFailed`
with the task's own message (roll back). Ansible's output goes to a log beside the ledger;
every task that handles a secret is no_log, so the log holds none.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ops.playbook import run_playbook
from ops.rotation.machine import Interrupted

FATAL = re.compile(r"^(?:fatal|failed): \[(?P<host>[^\]]+)\].*?=> (?P<result>\{.*\})$", re.M)
UNREACHABLE = re.compile(r"^fatal: \[(?P<host>[^\]]+)\]: UNREACHABLE!", re.M)


# One session per host for the tasks of one step (a step's tasks would otherwise each pay a
# new SSH login through the bastion); it ends with the step. ServerAlive on that session too,
# so a host that stops answering mid-step is given up on within 15 seconds, never waited on.
SSH_ARGS = (
    "-o ControlMaster=auto -o ControlPersist=5s -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
)
STEP_SECONDS = 900


class StepFailed(Exception):
    pass


class Steps:
    def __init__(self, inventory: Path, log: Path, ansible_args: tuple[str, ...] = ()) -> None:
        self.inventory = inventory
        self.log = log
        self.ansible_args = ansible_args

    def run(self, step: str, hosts: str, **extra: Any) -> None:
        variables = {"key_rotation_step": step, "key_rotation_hosts": hosts, **extra}
        print(f"rotation: {step} on {hosts}", file=sys.stderr)
        try:
            with tempfile.TemporaryDirectory(prefix="claims-dc-step-") as sessions:
                run = run_playbook(
                    self.inventory,
                    "rotate_keys.yml",
                    "-e",
                    json.dumps(variables),
                    *self.ansible_args,
                    env={"ANSIBLE_SSH_ARGS": SSH_ARGS, "ANSIBLE_SSH_CONTROL_PATH_DIR": sessions},
                    timeout=STEP_SECONDS,
                )
        except subprocess.TimeoutExpired as e:
            raise Interrupted(f"{step} on {hosts}: no answer in {STEP_SECONDS} s") from e
        self.log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.log.open("a") as f:
            f.write(f"==== {step} on {hosts}: rc {run.returncode}\n{run.stdout}{run.stderr}\n")
        if run.ok:
            return
        down = UNREACHABLE.findall(run.stdout)
        if down or any(c.get("unreachable", 0) for c in run.recap.values()):
            raise Interrupted(f"{step}: {', '.join(down) or 'a host'} unreachable")
        raise StepFailed(f"{step} on {hosts}: {failure(run.stdout) or run.stderr[-300:]}")


def failure(stdout: str) -> str:
    """The failed task's host and message, from Ansible's output."""
    for m in FATAL.finditer(stdout):
        try:
            result = json.loads(m["result"])
        except ValueError:
            continue
        msg = result.get("stderr") or result.get("msg") or result.get("stdout") or ""
        return f"{m['host']}: {str(msg).strip()[:300] or '(output hidden: no_log)'}"
    return ""
