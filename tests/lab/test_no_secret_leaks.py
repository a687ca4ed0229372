"""No secret reaches Ansible's output: canary secrets go through a verbose, diffing run and
not one of them, nor any TLS private key, appears in what it prints."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.playbook import PlaybookRun, run_playbook
from ops.rotation.db_login import in_use
from ops.vault.sealed import is_sealed, read_secret_text, write_secret
from tests.lab.conftest import SiteRuns

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def canary_run(converged: SiteRuns) -> Iterator[tuple[PlaybookRun, list[str]]]:
    """A copy of the lab's inventory directory whose secrets are canaries, then site.yml with
    --check --diff -vvv against it: every task that handles a secret runs, nothing changes."""
    real = converged.inventory.parent
    copy = real.parent / f"{real.name}-leaktest"
    shutil.rmtree(copy, ignore_errors=True)
    # Not the shared SSH sessions to the bastion (cm-*): sockets, which belong to the real one.
    shutil.copytree(real, copy, ignore=shutil.ignore_patterns("secrets", "cm-*"))
    (copy / "secrets").mkdir(mode=0o700)
    canaries = []
    if (real / "secrets" / "db-app-login").exists():
        shutil.copy(real / "secrets" / "db-app-login", copy / "secrets" / "db-app-login")
    for name in ("db-claims_owner", f"db-{in_use(real / 'secrets')}"):
        canary = f"CANARY{secrets.token_hex(12)}"
        canaries.append(canary)
        write_secret(copy / "secrets" / name, canary + "\n")  # sealed by the copy's vault
        shutil.copy(real / "secrets" / f"{name}.salt", copy / "secrets" / f"{name}.salt")
    try:
        # The hosts that are handed secrets (the bastion is handed none).
        hosts = "role_db:role_app:role_intake"
        yield (
            run_playbook(copy / "inventory.yml", "site.yml", "--check", "--diff", "-vvv",
                         "--limit", hosts),
            canaries,
        )  # fmt: skip
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _private_key_bodies(pki: Path) -> list[str]:
    bodies = []
    for key in pki.glob("*.key"):
        text = read_secret_text(key)
        lines = [line for line in text.splitlines() if "-----" not in line]
        bodies += [line for line in lines if len(line) >= 40]
    return bodies


def test_the_canaries_went_through_the_secret_handling_tasks(
    canary_run: tuple[PlaybookRun, list[str]],
) -> None:
    run, _ = canary_run
    assert run.ok, run.stdout[-3000:]
    # The password files would change: the canaries reached the tasks that write them.
    out = run.stdout
    task = out.index("TASK [claim_app : Write the login's password file]")
    assert "changed: [app-1]" in out[task : out.index("TASK [", task + 10)]


def test_no_canary_and_no_private_key_in_the_output(
    canary_run: tuple[PlaybookRun, list[str]], converged: SiteRuns
) -> None:
    run, canaries = canary_run
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
