"""The checks, in Prowler's manner: each one has metadata and a function from an account
(with the roster and the review date) to the evidence of a problem, or None.

References: CIS Amazon Web Services Foundations Benchmark v3.0.0 (section 1, IAM); NIST SP
800-53 Rev. 5; the MHLW guideline for the security of medical information systems, 6.0,
system operation volume (医療情報システムの安全管理に関するガイドライン第6.0版 システム運営編,
access control: identification, authentication and account management).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ops.reviewlib.inputs import staff_id_or_none
from ops.reviewlib.model import Account, Finding
from ops.reviewlib.roster import Roster

MHLW = (
    "MHLW guideline 6.0, system operation volume: access control "
    "(利用者の識別・認証, アクセス権限の管理)"
)
# The approved AWS role -> the policies (by name) it may hold.
AWS_ROLE_POLICIES = {
    "readonly": {"ReadOnlyAccess", "IAMUserChangePassword"},
    "backup-operator": {"ReadOnlyAccess", "IAMUserChangePassword", "claims-dc-backup-maintenance"},
    "admin": {"AdministratorAccess", "IAMUserChangePassword"},
}


@dataclass(frozen=True)
class Context:
    roster: Roster
    today: dt.date
    dormant_days: int = 90
    key_age_days: int = 90


Evidence = Callable[[Account, Context], str | None]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: str
    fix: str
    references: tuple[str, ...]
    systems: tuple[str, ...]  # prefixes of Account.system it applies to
    evaluate: Evidence

    def run(self, account: Account, ctx: Context) -> Finding | None:
        if not account.system.startswith(self.systems):
            return None
        evidence = self.evaluate(account, ctx)
        if evidence is None:
            return None
        return Finding(self.id, self.severity, account.system, account.name, evidence, self.fix,
                       self.references, account.staff_id)  # fmt: skip


def _days(ctx: Context, t: dt.datetime | None) -> int | None:
    return None if t is None else (ctx.today - t.date()).days


def _orphaned(a: Account, ctx: Context) -> str | None:
    if a.service:
        return None
    if a.staff_id is None:
        return f"{a.name} names no staff member (no StaffId tag, and its name is no staff ID)"
    if ctx.roster.person(a.staff_id) is None:
        return f"{a.name} belongs to staff ID {a.staff_id}, who is not in the roster"
    return None


def _leaver(a: Account, ctx: Context) -> str | None:
    p = ctx.roster.person(a.staff_id) if a.staff_id else None
    if p is None or p.current(ctx.today) or not a.enabled:
        return None
    active = [c.ident for c in a.credentials if c.active]
    return (f"{a.name} ({p.staff_id}, {p.name}) left on {p.end}; still enabled"
            + (f" with {', '.join(active)}" if active else ""))  # fmt: skip


def _dormant(a: Account, ctx: Context) -> str | None:
    if not a.enabled or a.attributes.get("kind") == "role":  # a break-glass role waits unused
        return None
    used = [c.last_used for c in a.credentials if c.active and c.last_used] + (
        [a.last_used] if a.last_used else [])  # fmt: skip
    if used:
        idle = _days(ctx, max(used))
        if idle is not None and idle > ctx.dormant_days:
            return f"{a.name}: last used {max(used).date()}, {idle} days ago"
        return None
    age = _days(ctx, a.created)
    if age is not None and age > ctx.dormant_days:
        return f"{a.name}: never used since it was created on {a.created.date()}, {age} days ago"  # type: ignore[union-attr]
    return None


def _excess(a: Account, ctx: Context) -> str | None:
    p = ctx.roster.person(a.staff_id) if a.staff_id else None
    if p is None or a.service:
        return None
    system = a.system.split(":")[0]
    approved = p.roles.get(system)
    if system == "aws":
        allowed = AWS_ROLE_POLICIES.get(approved or "", set())
    else:  # the application's role, or the host's groups, is the approved role's name
        allowed = {approved} if approved and approved != "none" else set()
    extra = sorted(set(a.privileges) - allowed)
    if extra:
        return (
            f"{a.name} ({p.staff_id}) holds {', '.join(extra)} beyond the approved "
            f"{system} role {approved or '(none)'}"
        )
    return None


GENERIC = {"admin", "administrator", "user", "test", "guest", "shared", "operator", "staff",
           "tmp", "temp", "demo", "kanri", "kanrisha", "common"}  # fmt: skip


def _generic(a: Account, ctx: Context) -> str | None:
    if a.service or not a.enabled:
        return None
    base = a.name.lower().rstrip("0123456789")
    if base in GENERIC:
        return f"{a.name}: a shared or generic name; nobody in particular is accountable for it"
    holders = a.attributes.get("key_holders") or []
    if len(holders) > 1:
        return f"{a.name}: {len(holders)} people log in to it with their keys: {', '.join(holders)}"
    return None


def _db_privileged(a: Account, ctx: Context) -> str | None:
    risky = sorted(set(a.privileges) & {"SUPERUSER", "BYPASSRLS"})
    if a.enabled and risky:
        return f"{a.name}: a login role with {', '.join(risky)}"
    return None


def _key_age(a: Account, ctx: Context) -> str | None:
    old = [
        f"{c.ident} ({_days(ctx, c.created)} days)"
        for c in a.credentials
        if c.kind == "access_key" and c.active and (_days(ctx, c.created) or 0) > ctx.key_age_days
    ]
    return (
        f"{a.name}: access keys older than {ctx.key_age_days} days: {', '.join(old)}"
        if old
        else None
    )


def _multiple_keys(a: Account, ctx: Context) -> str | None:
    active = [c.ident for c in a.credentials if c.kind == "access_key" and c.active]
    return (
        f"{a.name}: {len(active)} active access keys: {', '.join(active)}"
        if len(active) > 1
        else None
    )


def _setup_key(a: Account, ctx: Context) -> str | None:
    unused = [
        c.ident
        for c in a.credentials
        if c.kind == "access_key" and c.active and c.last_used is None
    ]
    if a.console and unused:
        return f"{a.name}: a console user with access keys never used: {', '.join(unused)}"
    return None


def _console_without_mfa(a: Account, ctx: Context) -> str | None:
    return f"{a.name}: console password without MFA" if a.console and not a.mfa else None


def _star_policy(a: Account, ctx: Context) -> str | None:
    for doc in a.policy_documents:
        statements = doc.get("Statement", [])
        for st in statements if isinstance(statements, list) else [statements]:
            actions = st.get("Action", [])
            resources = st.get("Resource", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = [resources] if isinstance(resources, str) else resources
            if st.get("Effect") == "Allow" and "*" in actions and "*" in resources:
                return f"{a.name}: a policy allows Action * on Resource * ({doc.get('_name', '?')})"
    return None


def _uid0(a: Account, ctx: Context) -> str | None:
    if a.attributes.get("uid") == 0 and a.name != "root":
        return f"{a.name} has UID 0: a second root"
    return None


def _shared_uid(a: Account, ctx: Context) -> str | None:
    others = a.attributes.get("shares_uid_with") or []
    if others:
        return f"{a.name} shares UID {a.attributes.get('uid')} with {', '.join(others)}"
    return None


# One absolute command with no arguments allowed (sudoers: `/path ""`), nothing else.
ONE_COMMAND = re.compile(r'NOPASSWD:\s*/[^\s,*?\[\]]+\s+""\s*$')


def _nopasswd(a: Account, ctx: Context) -> str | None:
    rules = a.attributes.get("nopasswd") or []
    if a.service:  # a machine account may run one fixed command unattended; people may not
        rules = [r for r in rules if not ONE_COMMAND.search(r)]
    return f"{a.name}: sudo without a password: {'; '.join(rules)}" if rules else None


def _unknown_key(a: Account, ctx: Context) -> str | None:
    problems = []
    for c in a.credentials:
        if c.kind != "ssh_key":
            continue
        owner = ctx.roster.keys.get(c.ident)
        if owner is None:
            problems.append(f"{c.ident} is in no one's name in the key registry")
        elif a.service and owner != f"service:{a.name}":
            problems.append(f"{c.ident} is registered to {owner}, not to service:{a.name}")
        elif not a.service and a.staff_id is not None and owner != a.staff_id:
            problems.append(f"{c.ident} is registered to {owner}, not to {a.staff_id}")
    return f"{a.name}: " + "; ".join(problems) if problems else None


def _unreadable_keys(a: Account, ctx: Context) -> str | None:
    lines = a.attributes.get("unreadable_key_lines") or []
    if lines:
        return f"{a.name}: key lines the review cannot read: {'; '.join(lines[:5])}"
    return None


def _foreign_principal(a: Account, ctx: Context) -> str | None:
    """A certificate principal opens this account: it must be the account's own person."""
    strangers = []
    for c in a.credentials:
        if c.kind != "ssh_principal":
            continue
        if c.ident == a.name:  # the principal the hardening role writes: the account's name
            continue
        owner = staff_id_or_none(c.ident)
        if a.service or a.staff_id is None or owner != a.staff_id:
            strangers.append(c.ident)
    if strangers:
        return f"{a.name}: a certificate naming {', '.join(strangers)} opens it, not its own person"
    return None


def _statements(doc: object) -> list[dict[str, Any]]:
    items = doc.get("Statement", []) if isinstance(doc, dict) else []
    return [s for s in (items if isinstance(items, list) else [items]) if isinstance(s, dict)]


def _aws_principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if not isinstance(principal, dict):
        return []
    value = principal.get("AWS", [])
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _condition_keys(statement: dict[str, Any]) -> set[str]:
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return set()
    return {k.lower() for block in condition.values() if isinstance(block, dict) for k in block}


def _open_trust(a: Account, ctx: Context) -> str | None:
    """Who may assume the role: nobody by wildcard, another account only with an ExternalId,
    a person (a user, or the account root: any of its users) only with MFA."""
    if a.attributes.get("kind") != "role":
        return None
    own = str(a.attributes.get("account_id") or "")
    problems = []
    for st in _statements(a.attributes.get("trust")):
        if st.get("Effect") != "Allow":
            continue
        keys = _condition_keys(st)
        for principal in _aws_principals(st):
            account = principal.split(":")[4] if principal.count(":") >= 5 else principal
            if principal == "*" or "*" in account:
                problems.append(f"anyone ({principal}) may assume it")
            elif account != own and "sts:externalid" not in keys:
                problems.append(f"account {account} may assume it without an ExternalId")
            elif (account == own and (principal.endswith(":root") or ":user/" in principal)
                  and "aws:multifactorauthpresent" not in keys
                  and "aws:multifactorauthage" not in keys):  # fmt: skip
                problems.append(f"{principal} may assume it without MFA")
    return f"{a.name}: " + "; ".join(problems) if problems else None


def _dormant_role(a: Account, ctx: Context) -> str | None:
    """A role nobody has used in the review period is a door nobody watches, unless it is a
    documented break-glass role, which waits unused on purpose."""
    if a.attributes.get("kind") != "role" or a.attributes.get("break_glass"):
        return None
    if a.last_used is not None:
        idle = _days(ctx, a.last_used)
        if idle is not None and idle > ctx.dormant_days:
            return f"{a.name}: last assumed {a.last_used.date()}, {idle} days ago"
        return None
    age = _days(ctx, a.created)
    if age is not None and age > ctx.dormant_days:
        return f"{a.name}: never assumed since it was created, {age} days ago"
    return None


CIS = "CIS AWS Foundations Benchmark v3.0.0"
CHECKS: tuple[Check, ...] = (
    Check("ACR-001", "Account with no roster match (orphaned)", "high",
          "Disable the account, then delete it or record its owner in the roster.",
          (MHLW, "NIST SP 800-53 Rev. 5 AC-2"), ("aws", "host", "app", "db"), _orphaned),
    Check("ACR-002", "A leaver's account is still enabled", "critical",
          "Disable the account and its credentials today; record the date.",
          (MHLW, "NIST SP 800-53 Rev. 5 AC-2(3)", f"{CIS} 1.12"), ("aws", "host", "app", "db"),
          _leaver),
    Check("ACR-003", "Dormant account or never-used credential", "medium",
          "Disable what has not been used in the review period; re-enable on request.",
          (MHLW, "NIST SP 800-53 Rev. 5 AC-2(3)", f"{CIS} 1.12"), ("aws", "host", "app", "db"),
          _dormant),
    Check("ACR-004", "Privileges beyond the approved role", "high",
          "Remove what the roster does not approve, or record the approval in the roster.",
          (MHLW, "NIST SP 800-53 Rev. 5 AC-6"), ("aws", "host", "app"), _excess),
    Check("IAM-001", "Access key older than 90 days", "medium",
          "Rotate: create a new key, switch, verify, deactivate and delete the old one.",
          (f"{CIS} 1.14", "NIST SP 800-53 Rev. 5 IA-5(1)"), ("aws",), _key_age),
    Check("IAM-002", "More than one active access key", "medium",
          "Keep one active key per user; deactivate and delete the other.",
          (f"{CIS} 1.13", "NIST SP 800-53 Rev. 5 IA-5"), ("aws",), _multiple_keys),
    Check("IAM-003", "Console user without MFA", "high",
          "Enable MFA for the user, or remove the console password.",
          (f"{CIS} 1.10", "NIST SP 800-53 Rev. 5 IA-2(1)", MHLW), ("aws",), _console_without_mfa),
    Check("IAM-005", "Access key of a console user, never used", "medium",
          "Delete the key; a console user who needs one asks for it when the need comes.",
          (f"{CIS} 1.11", "NIST SP 800-53 Rev. 5 AC-2(3)"), ("aws",), _setup_key),
    Check("IAM-004", "A policy allows *:*", "critical",
          "Replace full administrative policies with the permissions the role needs.",
          (f"{CIS} 1.16", "NIST SP 800-53 Rev. 5 AC-6"), ("aws",), _star_policy),
    Check("ACR-005", "Shared or generic account", "high",
          "Replace it with named accounts, one per person; disable it.",
          (MHLW, "NIST SP 800-53 Rev. 5 AC-2(9)", "NIST SP 800-53 Rev. 5 IA-2"),
          ("aws", "host", "app", "db"), _generic),
    Check("DB-001", "Database login role with SUPERUSER or BYPASSRLS", "critical",
          "Make it NOLOGIN or remove the attribute; use a break-glass procedure instead.",
          (MHLW, "NIST SP 800-53 Rev. 5 AC-6(5)"), ("db",), _db_privileged),
    Check("HOST-001", "A second account with UID 0", "critical",
          "Remove the account or give it its own UID; root is root alone.",
          ("NIST SP 800-53 Rev. 5 AC-6(5)", "CIS Debian Linux 12 Benchmark 7.2"), ("host",),
          _uid0),
    Check("HOST-002", "Accounts sharing a UID", "high",
          "Give each account its own UID; files and logs cannot tell them apart.",
          ("NIST SP 800-53 Rev. 5 IA-2", "CIS Debian Linux 12 Benchmark 7.2"), ("host",),
          _shared_uid),
    Check("HOST-003", "sudo without a password (NOPASSWD)", "high",
          "Remove NOPASSWD; operators authenticate to sudo (or use a logged break-glass).",
          ("NIST SP 800-53 Rev. 5 AC-6(2)", "CIS Debian Linux 12 Benchmark 5.2"), ("host",),
          _nopasswd),
    Check("ACR-006", "SSH key not in the key registry, or in someone else's name", "high",
          "Remove the key, or register it to the person who holds it.",
          (MHLW, "NIST SP 800-53 Rev. 5 IA-5", "NIST SP 800-53 Rev. 5 AC-2"), ("host",),
          _unknown_key),
    Check("IAM-006", "Role trust open to anyone, another account without ExternalId, or a "
          "person without MFA", "critical",
          "Name the principals exactly; require sts:ExternalId for other accounts and "
          "aws:MultiFactorAuthPresent for people.",
          (f"{CIS} 1.16", "NIST SP 800-53 Rev. 5 AC-6", "NIST SP 800-53 Rev. 5 IA-2(1)",
           "AWS IAM User Guide: the confused deputy problem"), ("aws",), _open_trust),
    Check("IAM-007", "Role not used in the review period (not a documented break-glass role)",
          "medium", "Delete the role, or document it as break-glass in the service-accounts "
          "file's [break-glass] table.",
          (MHLW, "NIST SP 800-53 Rev. 5 AC-2(3)"), ("aws",), _dormant_role),
    Check("HOST-004", "An authorized_keys line the review cannot read", "high",
          "Fix or remove the line; a key nobody can list is a key nobody reviews.",
          (MHLW, "NIST SP 800-53 Rev. 5 AC-2", "NIST SP 800-53 Rev. 5 IA-5"), ("host",),
          _unreadable_keys),
    Check("HOST-005", "A certificate principal opens another person's or a shared account",
          "high", "Name only the account's own person in its principals file.",
          (MHLW, "NIST SP 800-53 Rev. 5 IA-2", "NIST SP 800-53 Rev. 5 AC-6"), ("host",),
          _foreign_principal),
)  # fmt: skip


def attribute_owners(accounts: list[Account], ctx: Context) -> list[Account]:
    """A host account not named by a staff ID belongs to whoever holds its keys, by the key
    registry; the keys of more than one person make it a shared account (ACR-005)."""
    out = []
    for a in accounts:
        if a.staff_id is None and not a.service:
            holders = sorted(
                {
                    owner
                    for c in a.credentials
                    if c.kind == "ssh_key"
                    and (owner := ctx.roster.keys.get(c.ident)) is not None
                    and not owner.startswith("service:")
                }
            )
            if len(holders) == 1:
                attributes = {**a.attributes, "staff_id_from": "key registry"}
                a = replace(a, staff_id=holders[0], attributes=attributes)
            elif holders:
                a = replace(a, attributes={**a.attributes, "key_holders": holders})
        out.append(a)
    return out


def review(accounts: list[Account], ctx: Context) -> list[Finding]:
    out = []
    for a in attribute_owners(accounts, ctx):
        for check in CHECKS:
            f = check.run(a, ctx)
            if f is not None:
                out.append(f)
    return sorted(out, key=lambda f: (f.check, f.system, f.account))
