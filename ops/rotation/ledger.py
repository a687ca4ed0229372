"""The rotation ledger: append-only JSONL on the control node, one line per phase change of
one secret's rotation: who, when, which secret, the old and new credential's fingerprint or
serial, the phase, the outcome. Never a secret value: an entry that carries anything shaped
like a private key, a password field or an AWS secret key is refused before it is written.

Each line is written with O_APPEND under an exclusive flock and fsynced, so two operators'
runs interleave whole lines and a crash loses at most the line being written; a torn last
line is reported, not silently skipped.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import json
import os
import re
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PHASES = ("staged", "published", "switched", "verified", "retired")
OUTCOMES = ("ok", "rolled-back", "rollback-failed", "failed")
SECRET_ID = re.compile(r"^[a-z][a-z0-9-]*(:[A-Za-z0-9_.@-]+)?$")
# What a secret value looks like, wherever it hides in an entry.
SECRET_SHAPES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)\b(password|passwd|secret_access_key|private_key)\b\s*[=:]"),
)
# An AWS secret access key: 40 characters of base64, in mixed case (a hex digest is not).
BASE64_40 = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")
FORBIDDEN_KEYS = {"password", "passwd", "secret", "private_key", "secret_access_key", "token"}


class LedgerError(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    secret: str  # e.g. ssh-user-ca, host-key:app-1, sftp-key:fund, db-login:claims_app
    rotation: str  # one rotation's ID: every phase of it carries the same
    phase: str
    outcome: str = "ok"
    old: str = ""  # fingerprint, serial or key ID of the credential being replaced
    new: str = ""
    note: str = ""
    who: str = field(default_factory=lambda: f"{getpass.getuser()}@{socket.gethostname()}")
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not SECRET_ID.match(self.secret):
            raise LedgerError(f"secret {self.secret!r}: not a secret ID like host-key:app-1")
        if self.phase not in PHASES:
            raise LedgerError(f"phase {self.phase!r}: one of {', '.join(PHASES)}")
        if self.outcome not in OUTCOMES:
            raise LedgerError(f"outcome {self.outcome!r}: one of {', '.join(OUTCOMES)}")
        leaked = secret_shapes({k: v for k, v in asdict(self).items() if k != "details"})
        leaked = leaked or secret_shapes(self.details, "details", keys=True)
        if leaked:
            raise LedgerError(f"refusing a ledger entry for {self.secret}: {leaked}")


def secret_shapes(value: Any, where: str = "entry", keys: bool = False) -> str:
    """Where in `value` something shaped like a secret is; empty when nothing is. With
    `keys`, a field named like a secret (password, token) is refused whatever it holds."""
    if isinstance(value, dict):
        for k, v in value.items():
            if keys and str(k).lower() in FORBIDDEN_KEYS:
                return f"{where}.{k} is a secret's field"
            found = secret_shapes(v, f"{where}.{k}", keys)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = secret_shapes(v, f"{where}[{i}]", keys)
            if found:
                return found
    elif isinstance(value, str):
        aws = any(
            re.search(r"[a-z]", m) and re.search(r"[A-Z]", m) for m in BASE64_40.findall(value)
        )
        if aws or any(shape.search(value) for shape in SECRET_SHAPES):
            return f"{where} looks like a secret value"
    return ""


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: Entry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = json.dumps(asdict(entry), ensure_ascii=False, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), start=1):
            try:
                out.append(Entry(**json.loads(line)))
            except (ValueError, TypeError, LedgerError) as e:
                raise LedgerError(f"{self.path}:{n}: not a ledger entry ({e})") from e
        return out

    def last(self, secret: str) -> Entry | None:
        """The newest entry for `secret`: where its rotation stands."""
        found = [e for e in self.entries() if e.secret == secret]
        return found[-1] if found else None
