"""Run a playbook of this repository against an inventory, and read its recap."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ops.vault.client import vault_args

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "playbooks"
BIN = Path(sys.executable).parent
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass
class PlaybookRun:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and all(
            c.get("failed", 0) == 0 and c.get("unreachable", 0) == 0 for c in self.recap.values()
        )

    def changed(self) -> dict[str, int]:
        return {host: counts.get("changed", 0) for host, counts in self.recap.items()}

    def summary(self) -> str:
        start = self.stdout.rfind("PLAY RECAP")
        return self.stdout[start:].strip() if start >= 0 else self.stdout[-2000:]


def parse_recap(stdout: str) -> dict[str, dict[str, int]]:
    start = stdout.rfind("PLAY RECAP")
    recap: dict[str, dict[str, int]] = {}
    if start < 0:
        return recap
    for line in stdout[start:].splitlines()[1:]:
        m = RECAP_LINE.match(line.strip())
        if m:
            recap[m["host"]] = {
                k: int(v) for k, v in (pair.split("=") for pair in m["counts"].split())
            }
    return recap


def run_playbook(
    inventory: str | Path,
    playbook: str,
    *args: str,
    pipelining: bool = True,
    timeout: float = 1800,
    env: dict[str, str] | None = None,
    secrets: bool = True,
) -> PlaybookRun:
    """ansible-playbook with the repository's ansible.cfg and the inventory's vault (its
    vault-id client, when it has one); `playbook` is a file in playbooks/ (or an absolute
    path). secrets=False leaves the vault closed, for a run that reads no secret: opening
    it is a KMS call, and a revocation should not wait for one."""
    run_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_PIPELINING": "True" if pipelining else "False",
        **(env or {}),
    }
    inventory_dir = Path(inventory) if Path(inventory).is_dir() else Path(inventory).parent
    vault = vault_args(inventory_dir) if secrets else []
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), *vault,
            str(PLAYBOOKS / playbook), *args]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=run_env, timeout=timeout, check=False
    )
    return PlaybookRun(
        argv=argv,
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        seconds=round(time.monotonic() - started, 1),
        recap=parse_recap(proc.stdout),
    )
