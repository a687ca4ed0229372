"""No secret reaches Ansible's output: canary secrets go through a verbose, diffing run
(site.yml --check --diff -vvv on converged hosts, tests/lab/conftest.py canary_check) and not
one of them, nor any TLS private key, appears in what it prints."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from ops.playbook import run_playbook
from ops.rotation.db_login import in_use
from ops.vault.sealed import is_sealed, read_secret_text
from tests.lab.conftest import SiteRuns

pytestmark = pytest.mark.lab


def _private_key_bodies(pki: Path) -> list[str]:
    bodies = []
    for key in pki.glob("*.key"):
        text = read_secret_text(key)
        lines = [line for line in text.splitlines() if "-----" not in line]
        bodies += [line for line in lines if len(line) >= 40]
    return bodies


def test_the_canaries_went_through_the_secret_handling_tasks(converged: SiteRuns) -> None:
    run = converged.check_converged
    assert run.ok, run.stdout[-3000:]
    # The password files would change: the canaries reached the tasks that write them.
    out = run.stdout
    task = out.index("TASK [claim_app : Write the login's password file]")
    assert "changed: [app-1]" in out[task : out.index("TASK [", task + 10)]


def test_no_canary_and_no_private_key_in_the_output(converged: SiteRuns) -> None:
    run, canaries = converged.check_converged, converged.canaries
    assert len(canaries) == 2
    text = run.stdout + run.stderr
    assert len(text) > 100_000  # -vvv really was verbose
    leaks = [c for c in canaries if c in text]
    leaks += [b[:12] + "..." for b in _private_key_bodies(converged.inventory.parent / "pki")
              if b in text]  # fmt: skip
    assert leaks == []


def test_the_canary_check_fires_on_a_leak(converged: SiteRuns, tmp_path: Path) -> None:
    """The same grep finds a secret that a task without no_log prints."""
    canary = f"CANARY{secrets.token_hex(12)}"
    playbook = tmp_path / "leak_probe.yml"
    playbook.write_text(
        "- name: Print a secret without no_log\n  hosts: localhost\n  gather_facts: false\n"
        "  tasks:\n    - name: Echo it\n      ansible.builtin.debug:\n"
        "        msg: \"{{ lookup('ansible.builtin.env', 'LEAK_CANARY') }}\"\n"
    )
    try:
        os.environ["LEAK_CANARY"] = canary
        run = run_playbook(converged.inventory, str(playbook), "-vvv")
    finally:
        os.environ.pop("LEAK_CANARY", None)
    assert canary in run.stdout + run.stderr


def test_the_secrets_stay_private_on_the_control_node(converged: SiteRuns) -> None:
    secrets_dir = converged.inventory.parent / "secrets"
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    files = list(secrets_dir.iterdir())
    login = in_use(secrets_dir)  # the application's login in use (a key rotation moves it)
    made = {"db-claims_owner", "db-claims_owner.salt", f"db-{login}", f"db-{login}.salt"}
    assert made <= {f.name for f in files}
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files), [
        (f.name, oct(f.stat().st_mode)) for f in files
    ]
    # Every one sealed but the marker naming the login in use, which is not a secret.
    assert [f.name for f in files if not is_sealed(f)] in ([], ["db-app-login"])
    repo = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(
        ["git", "ls-files", "--", ".lab", ".keys"], cwd=repo, capture_output=True, text=True
    )
    assert tracked.stdout == ""
