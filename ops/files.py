"""Writing a private file on the control node: mode 0600 from the first byte, in a 0700
directory, and whole (a temporary file, synced, renamed over the old one), so a reader never
sees half a password, half a profile or half a ciphertext."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: str | bytes) -> None:
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FileRefused(Exception):
    """A file that is missing or larger than it can be; the message names it."""


def read_at_most(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path`, refused if it is missing or longer than `limit` (then not `what`)."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise FileRefused(f"{path}: missing") from None
    if len(data) > limit:
        raise FileRefused(f"{path}: larger than {limit} bytes; not {what}")
    return data
