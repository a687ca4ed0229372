"""Filters for the claims-dc playbooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


def scram_sha256(password: str, salt_hex: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """A PostgreSQL SCRAM-SHA-256 verifier for `password`, salted with `salt_hex`.

    The database gets the verifier, never the password, and the same password and salt always
    give the same verifier, so a play can tell whether a role's password is already set.
    """
    if len(salt_hex) < 32:
        raise ValueError("scram_sha256: the salt must be at least 16 bytes (32 hex digits)")
    salt = bytes.fromhex(salt_hex)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"scram_sha256": scram_sha256}
