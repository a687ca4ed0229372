"""What the collectors gather and what the checks say about it."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Credential:
    kind: str  # password | access_key | ssh_key | db_password
    ident: str  # key ID, fingerprint, "console"
    active: bool
    created: dt.datetime | None = None
    last_used: dt.datetime | None = None


@dataclass
class Account:
    system: str  # aws | host:<name> | app | db
    name: str
    staff_id: str | None = None  # what the system says the owner is (a tag, a name)
    enabled: bool = True
    created: dt.datetime | None = None
    last_used: dt.datetime | None = None
    mfa: bool | None = None
    console: bool = False
    privileges: list[str] = field(default_factory=list)  # policies, groups, roles
    policy_documents: list[dict[str, Any]] = field(default_factory=list)
    credentials: list[Credential] = field(default_factory=list)
    service: bool = False  # a machine account, owned by a documented purpose, not a person
    valid_until: dt.datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # system-specific evidence


@dataclass
class Scope:
    system: str
    complete: bool
    population: int
    reason: str = ""

    @property
    def status(self) -> str:
        return "COMPLETE" if self.complete else "INCOMPLETE"


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    system: str
    account: str
    evidence: str
    fix: str
    references: tuple[str, ...]
    staff: str | None = None  # the roster's staff ID the account belongs to, when known

    @property
    def id(self) -> str:
        """Stable across runs: the same check on the same account is the same finding."""
        key = f"{self.check}|{self.system}|{self.account}".encode()
        return f"{self.check}-{hashlib.sha256(key).hexdigest()[:10]}"
