"""Find plaintext secrets in an inventory directory: what `claims-dc vault check` reports.

A finding is a file outside the vault that holds
- a private key (a PEM or OpenSSH "PRIVATE KEY" block), or
- an AWS secret access key (40 characters after aws_secret_access_key or SecretAccessKey), or
- the value of any sealed secret (a password, a salt, a line of a sealed key), found by
  unsealing every sealed file and looking for each of its values in every other file.
Findings name the file and the kind, never the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ops.vault.sealed import is_sealed, read_secret

PATTERNS = {
    "a private key": re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    "an AWS secret access key": re.compile(
        rb"(?i)(?:aws_secret_access_key|SecretAccessKey)[\"' ]*[=:][\"' ]*[A-Za-z0-9/+]{40}"
        rb"(?![A-Za-z0-9/+])"
    ),
}
MIN_VALUE = 16  # shorter values (a login's name, a key's ID) are not secrets on their own
MAX_SCANNED = 64 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    path: Path
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what} in plaintext"


def files(inventory_dir: Path) -> list[Path]:
    # Regular files only: the shared SSH sessions' sockets (cm-*) are not files.
    return sorted(p for p in inventory_dir.rglob("*") if p.is_file() and not p.is_symlink())


def _values(plaintext: bytes) -> set[bytes]:
    """What of a sealed secret must not appear elsewhere: each line's value, long enough to
    be a secret, and not an access key's ID (which the rotation's ledger names by design)."""
    values = set()
    for line in plaintext.splitlines():
        if line.strip().lower().startswith((b"aws_access_key_id", b"[", b"-----")):
            continue
        value = line.split(b"=", 1)[-1].strip()
        if len(value) >= MIN_VALUE:
            values.add(value)
    return values


def plaintext_secrets(inventory_dir: Path) -> list[Finding]:
    everything = files(inventory_dir)
    sealed = [p for p in everything if is_sealed(p)]
    known: dict[bytes, Path] = {}
    for path in sealed:
        for value in _values(read_secret(path)):
            known.setdefault(value, path)
    found = []
    for path in everything:
        if path in sealed:
            continue
        with path.open("rb") as f:
            data = f.read(MAX_SCANNED)
        for what, pattern in PATTERNS.items():
            if pattern.search(data):
                found.append(Finding(path, what))
        for value, origin in known.items():
            if value in data:
                found.append(Finding(path, f"a value of the sealed {origin.name}"))
                break
    return found
