"""The operators file: who administers the hosts, by staff ID, and with which public keys.

    operators:
      - name: tanaka            # the login, one person's own
        staff_id: S0101         # as in the staff roster (a letter and 3-6 digits)
        comment: 田中 (運用課)   # optional
        public_keys:
          - ssh-ed25519 AAAAC3Nz... tanaka@ops-pc

Checked as strictly as the roster: size and encoding, unknown keys, one account per person and
one person per account, logins that would collide with the system's accounts, and every key
(a single public key of an accepted type and size, never a private key, never two people's).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ops.inventory import InventoryError
from ops.reviewlib.inputs import STAFF_ID, normalise_staff_id

MAX_BYTES = 256 * 1024
LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Accounts that the hosts or the roles own; an operator named like one would take it over.
RESERVED = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "nobody", "systemd-network", "messagebus",
    "sshd", "postgres", "claimapp", "fund", "claims-dc-review", "_chrony", "ntp",
})  # fmt: skip
FIELDS = {"name", "staff_id", "comment", "public_keys"}
KEY_TYPES = {
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
}
MIN_RSA_BITS = 3072


@dataclass(frozen=True)
class Operator:
    name: str
    staff_id: str
    comment: str
    public_keys: tuple[str, ...]


def _ssh_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise ValueError("truncated")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise ValueError("truncated")
    return blob[offset + 4 : end], end


def key_problem(line: str) -> str | None:
    """Why `line` is not one acceptable OpenSSH public key, or None. Never echoes key material."""
    if "PRIVATE KEY" in line:
        return "is a private key; send only the .pub file"
    fields = line.split()
    if len(fields) < 2:
        return "is not an OpenSSH public key line (type and base64 key)"
    kind, data = fields[0], fields[1]
    if kind not in KEY_TYPES:
        if "=" in kind or "," in kind or '"' in kind:
            return "carries authorized_keys options; the roles set those"
        return f"has key type {kind!r}; accepted: {', '.join(sorted(KEY_TYPES))}"
    try:
        blob = base64.b64decode(data, validate=True)
        inner, offset = _ssh_string(blob, 0)
        if inner.decode("ascii", "replace") != kind:
            return f"says {kind} but its key data is of another type"
        if kind == "ssh-rsa":
            _, offset = _ssh_string(blob, offset)  # e
            modulus, _ = _ssh_string(blob, offset)
            bits = int.from_bytes(modulus, "big").bit_length()
            if bits < MIN_RSA_BITS:
                return f"is RSA of {bits} bits; at least {MIN_RSA_BITS} are required"
    except (binascii.Error, ValueError):
        return "has key data that is not valid base64 of an OpenSSH key"
    return None


def parse_operators(data: bytes, source: str) -> list[Operator]:
    if len(data) > MAX_BYTES:
        raise InventoryError([f"{source}: larger than {MAX_BYTES} bytes; not an operators file"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InventoryError([f"{source}: not UTF-8 (byte {e.start})"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InventoryError([f"{source}: not YAML{at}"]) from None
    if not isinstance(document, dict) or set(document) != {"operators"}:
        raise InventoryError([f"{source}: expected one key, 'operators', holding a list"])
    entries = document["operators"]
    if not isinstance(entries, list) or not entries:
        raise InventoryError([f"{source}: 'operators' must be a non-empty list"])
    problems: list[str] = []
    operators: list[Operator] = []
    seen_names: dict[str, int] = {}
    seen_staff: dict[str, int] = {}
    seen_keys: dict[str, int] = {}
    for n, entry in enumerate(entries, start=1):
        where = f"{source}: operator {n}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with name, staff_id and public_keys")
            continue
        unknown = sorted(str(k) for k in set(entry) - FIELDS)
        if unknown:
            problems.append(f"{where}: unknown keys {unknown}; allowed: {sorted(FIELDS)}")
        operator = _operator(entry, where, problems)
        if operator is None:
            continue
        where = f"{source}: operator {n} ({operator.name})"
        if operator.name in seen_names:
            problems.append(f"{where}: name also used by operator {seen_names[operator.name]}")
        seen_names.setdefault(operator.name, n)
        if operator.staff_id in seen_staff:
            first = seen_staff[operator.staff_id]
            problems.append(f"{where}: staff_id {operator.staff_id} already has an account "
                            f"(operator {first}): one account a person")  # fmt: skip
        seen_staff.setdefault(operator.staff_id, n)
        for key in operator.public_keys:
            blob = key.split()[1]
            if blob in seen_keys and seen_keys[blob] != n:
                problems.append(f"{where}: a public key also given to operator {seen_keys[blob]}")
            seen_keys.setdefault(blob, n)
        operators.append(operator)
    if problems:
        raise InventoryError(problems)
    return operators


def _operator(entry: dict[str, Any], where: str, problems: list[str]) -> Operator | None:
    name = entry.get("name")
    if not isinstance(name, str) or not LOGIN.match(name):
        problems.append(f"{where}: name {name!r} is not a login (lower case, 1-32 characters)")
        return None
    if name in RESERVED:
        problems.append(f"{where}: name {name!r} is a system or service account")
        return None
    raw_staff = entry.get("staff_id")
    staff = normalise_staff_id(raw_staff)
    if not STAFF_ID.match(staff):
        problems.append(f"{where}: staff_id {raw_staff!r} is not a letter and 3-6 digits")
    comment = entry.get("comment", staff)
    if (
        not isinstance(comment, str)
        or len(comment) > 200
        or any(unicodedata.category(c).startswith("C") for c in comment)
    ):
        problems.append(f"{where}: comment must be one line of text, at most 200 characters")
        comment = staff
    keys = entry.get("public_keys")
    if not isinstance(keys, list) or not keys:
        problems.append(f"{where}: public_keys must be a non-empty list")
        return None
    good: list[str] = []
    for k, key in enumerate(keys, start=1):
        if not isinstance(key, str) or "\n" in key.strip() or len(key) > 16384:
            problems.append(f"{where}: public key {k} is not one line of text")
            continue
        problem = key_problem(key.strip())
        if problem:
            problems.append(f"{where}: public key {k} {problem}")
            continue
        good.append(key.strip())
    return Operator(name, staff, f"{staff} {comment}".strip() if comment != staff else staff,
                    tuple(good))  # fmt: skip


def load_operators(path: Path) -> list[Operator]:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise InventoryError([f"{path}: cannot read the operators file: {e.strerror}"]) from None
    return parse_operators(data, str(path))
