"""How the control node reaches a host: read from the inventory's SSH configuration, so that a
tool opening its own fresh connection (a certificate tried alone, a host key read over a new
session) goes the same way as Ansible does: through the bastion, whatever the way in to it."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from pathlib import Path

from ops.rotation.steps import StepFailed


def proxy_options(ssh_config: Path | None, host: str) -> list[str]:
    """`-o ProxyCommand=...` for `host` as `ssh_config` reaches it, or [] if directly."""
    if ssh_config is None:
        return []
    proc = subprocess.run(
        ["ssh", "-G", "-F", str(ssh_config), host],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise StepFailed(f"{ssh_config}: ssh -G {host} failed: {proc.stderr.strip()[-200:]}")
    seen = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    jump = seen.get("proxyjump", "none")
    if jump != "none":
        inner = ["ssh", "-F", str(ssh_config), "-o", "BatchMode=yes", "-W", "%h:%p", jump]
        return ["-o", f"ProxyCommand={shlex.join(inner)}"]
    command = seen.get("proxycommand", "none")
    if command != "none":
        return ["-o", f"ProxyCommand={command}"]
    return []


def served_host_key(ssh_config: Path | None, address: str, timeout: float = 30) -> str:
    """The ed25519 host key `address` presents now, over a fresh connection by the inventory's
    way in (the jump host checked against the operators' known_hosts as always)."""
    with tempfile.TemporaryDirectory(prefix="claims-dc-hostkey-") as tmp:
        seen = Path(tmp) / "known_hosts"
        argv = ["ssh"]
        if ssh_config is not None:
            argv += ["-F", str(ssh_config)]
        argv += [
            *proxy_options(ssh_config, address),
            "-o", f"UserKnownHostsFile={seen}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=accept-new", "-o", "HostKeyAlgorithms=ssh-ed25519",
            "-o", "HostKeyAlias=served-key-probe", "-o", "UpdateHostKeys=no",
            "-o", "ControlPath=none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            address, "true",
        ]  # fmt: skip
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{address}: no answer within {timeout:.0f}s") from None
        keys = [
            " ".join(line.split()[1:3])
            for line in (seen.read_text().splitlines() if seen.exists() else [])
            if line.strip()
        ]
    if not keys:
        raise StepFailed(f"{address}: presents no ed25519 host key ({proc.stderr.strip()[-200:]})")
    return keys[0]
