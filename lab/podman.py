"""A thin wrapper over the podman CLI with the settings this machine needs.

The default OCI runtime (crun) fails on these hosts and the default open-files limit is above
the machine's hard limit, so every call pins runc, cgroupfs and sane ulimits (LAB-NOTES.md).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

GLOBAL_FLAGS = ("--runtime", "runc", "--cgroup-manager", "cgroupfs")
RUN_ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096")


class PodmanError(RuntimeError):
    """A podman command failed; the message carries the command and its stderr."""


def podman(
    *args: str, check: bool = True, input_bytes: bytes | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", *GLOBAL_FLAGS, *args]
    proc = subprocess.run(
        cmd,
        input=input_bytes.decode() if input_bytes is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise PodmanError(f"{' '.join(cmd)} -> exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def podman_json(*args: str) -> Any:
    out = podman(*args).stdout.strip()
    return json.loads(out) if out else []


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def container_names(label: str) -> list[str]:
    rows = podman_json("ps", "-a", "--filter", f"label={label}", "--format", "json")
    return sorted(name for row in rows for name in row.get("Names", []))


def network_names(label: str) -> list[str]:
    rows = podman_json("network", "ls", "--filter", f"label={label}", "--format", "json")
    return sorted(row["name"] for row in rows)


def _inspect(kind: str, name: str) -> dict[str, Any] | None:
    proc = podman(kind, "inspect", name, check=False)
    if proc.returncode != 0:
        return None
    rows = json.loads(proc.stdout)
    return rows[0] if rows else None


def inspect_container(name: str) -> dict[str, Any] | None:
    return _inspect("container", name)


def inspect_network(name: str) -> dict[str, Any] | None:
    return _inspect("network", name)


def exec_in(
    container: str,
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 120,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside `container`; `input_text` goes to its standard input."""
    if input_text is None:
        return podman("exec", container, *argv, check=check, timeout=timeout)
    return podman(
        "exec", "-i", container, *argv, check=check, timeout=timeout,
        input_bytes=input_text.encode(),
    )  # fmt: skip
