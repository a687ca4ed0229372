"""Stack outputs and an operators file for a stack, made without a deployment, so that the
inventory generator can be exercised on any stack in the fast suite."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from infra.config import StackConfig

ACCOUNT = "210987654321"


def _hex(text: str, n: int = 17) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def fake_outputs(config: StackConfig) -> dict[str, Any]:
    """What `pulumi stack output --json` would print for `config`, with made-up IDs."""
    deployed = {n: h for n, h in config.hosts.items() if not h.stand_in}
    return {
        "region": config.region,
        "privateIps": {n: str(h.address) for n, h in deployed.items()},
        "instanceIds": {n: f"i-{_hex(config.stack + n)}" for n in deployed},
        "backupBucket": f"claims-dc-{config.municipality.code}-{config.stack}-backup-{ACCOUNT}",
        "storageKeyArn": f"arn:aws:kms:{config.region}:{ACCOUNT}:key/{_hex(config.stack, 32)}",
        "endpointDnsNames": {"kms": [f"vpce-{_hex('kms')}.kms.{config.region}.vpce.amazonaws.com"]},
    }


def write_outputs(config: StackConfig, path: Path, **changes: Any) -> Path:
    document = fake_outputs(config)
    document.update(changes)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def make_key(path: Path, comment: str = "operator@test") -> str:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
        )
    return path.with_suffix(".pub").read_text().strip()


def write_operators(path: Path, *operators: tuple[str, str, str]) -> Path:
    """(name, staff_id, public key line) each."""
    lines = ["operators:"]
    for name, staff, key in operators:
        lines += [
            f"  - name: {name}",
            f"    staff_id: {staff}",
            "    public_keys:",
            f"      - {key}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
