"""Every lab host answers SSH with the lab key, as the operator, and runs systemd."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import testinfra

from infra.config import StackConfig
from lab import lab
from lab.lab import UpReport
from ops.vault.sealed import is_sealed

pytestmark = pytest.mark.lab


def _ssh(cfg: Path, host: str, *opts: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(cfg), "-o", "BatchMode=yes", *opts, host, "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_host_answers_ssh_and_runs_systemd(lab_up: UpReport, lab_config: StackConfig) -> None:
    cfg = Path(lab_up.state_dir) / "ssh_config"
    for name in lab_config.hosts:
        host = testinfra.get_host(f"ssh://{name}", ssh_config=str(cfg))
        assert host.run("systemctl is-system-running").stdout.strip() == "running", name
        assert host.user().name == "opsadmin", name
        assert host.service("ssh").is_running, name
        assert host.check_output("cat /proc/1/comm") == "systemd", name
        assert host.check_output("hostname") == name


def test_root_and_passwords_are_refused(lab_up: UpReport) -> None:
    cfg = Path(lab_up.state_dir) / "ssh_config"
    root = _ssh(cfg, "app-1", "-o", "User=root")
    assert root.returncode == 255 and "Permission denied" in root.stderr
    password = _ssh(cfg, "db-1", "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert password.returncode == 255 and "Permission denied" in password.stderr


def test_a_wrong_host_key_is_refused(lab_up: UpReport, tmp_path: Path) -> None:
    state = Path(lab_up.state_dir)
    lines = (state / "known_hosts").read_text().splitlines()
    # Give app-1 the host key of db-1: ssh must refuse to talk to it.
    db_key = next(line for line in lines if line.startswith("db-1,")).split(" ", 1)[1]
    forged = [
        f"app-1,10.231.10.10 {db_key}" if line.startswith("app-1,") else line for line in lines
    ]
    (tmp_path / "known_hosts").write_text("\n".join(forged) + "\n")
    cfg = (
        (state / "ssh_config")
        .read_text()
        .replace(str(state / "known_hosts"), str(tmp_path / "known_hosts"))
    )
    (tmp_path / "ssh_config").write_text(cfg)
    result = _ssh(tmp_path / "ssh_config", "app-1")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_hosts_have_their_own_host_keys(lab_up: UpReport) -> None:
    keys = [
        line.split()[2]
        for line in (Path(lab_up.state_dir) / "known_hosts").read_text().splitlines()
    ]
    assert len(keys) == len(set(keys))


def test_lab_secrets_are_private_sealed_and_untracked(lab_up: UpReport) -> None:
    state = Path(lab_up.state_dir)
    operator = lab.operator_dir(state.name)
    assert operator.parent == state.parent  # the operator's own, not beside the inventory
    for secret in [operator / "id_ed25519", *state.glob("pki/*.key")]:
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    keys = list(state.glob("pki/*.key"))
    assert keys and all(is_sealed(k) for k in keys)
    assert state.stat().st_mode & 0o777 == 0o700
    repo = Path(__file__).resolve().parents[2]
    for path in (operator / "id_ed25519", state / "pki" / "ca.key"):
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=repo, check=False)
        assert ignored.returncode == 0, f"{path} would be tracked by git"
