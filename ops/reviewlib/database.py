"""The database layer: PostgreSQL roles (LOGIN, SUPERUSER, CREATEROLE, CREATEDB, REPLICATION,
BYPASSRLS, VALID UNTIL) and the claim application's accounts (role, disabled, created, last
successful login from the append-only audit log). The same read-only queries (probe.ROLES_SQL,
probe.APP_SQL) serve both ways in: the database host's probe over SSH (how access_review.yml
reads them: the bastion has no path to port 5432), or a DSN. A failure makes the scope
INCOMPLETE with the reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from ops.reviewlib.inputs import staff_id_or_none
from ops.reviewlib.model import Account, Credential, Scope
from ops.reviewlib.probe import APP_SQL, ROLES_SQL

ROLE_ATTRIBUTES = ("superuser", "createrole", "createdb", "replication", "bypassrls")


def staff_of(name: str) -> str | None:
    """The staff ID an account's name spells, if it spells one (s001, S001, in any width)."""
    return staff_id_or_none(name)


def _time(value: Any) -> dt.datetime | None:
    """JSON timestamps from PostgreSQL; 'infinity' and null mean no time."""
    if isinstance(value, dt.datetime) or value is None:
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def role_accounts(rows: list[dict[str, Any]], service: dict[str, str]) -> list[Account]:
    """`service`: role name -> its documented purpose (owner, application, administration)."""
    out = []
    for r in rows:
        login = bool(r["login"])
        out.append(
            Account(
                "db",
                r["name"],
                staff_id=staff_of(r["name"]),
                enabled=login,
                privileges=[a.upper() for a in ROLE_ATTRIBUTES if r[a]],
                service=r["name"] in service,
                credentials=[Credential("db_password", "login", True)] if login else [],
                valid_until=_time(r["valid_until"]),
            )
        )
    return out


def app_accounts(rows: list[dict[str, Any]], service: dict[str, str]) -> list[Account]:
    out = []
    for r in rows:
        created, last = _time(r["created_at"]), _time(r["last_login"])
        enabled = not r["disabled"]
        out.append(
            Account(
                "app",
                r["username"],
                staff_id=staff_of(r["username"]),
                enabled=enabled,
                created=created,
                last_used=last,
                privileges=[r["role"]],
                service=r["username"] in service,
                credentials=[Credential("password", "app-login", enabled, created, last)],
            )
        )
    return out


def _query(dsn: str, sql: str) -> list[dict[str, Any]]:
    # Bounded both ways: the connection, and the query on the server.
    with psycopg.connect(dsn, connect_timeout=10, options="-c statement_timeout=60s") as conn:
        row = conn.execute(sql).fetchone()
    return list(row[0]) if row else []


def collect_db_roles(dsn: str, service: dict[str, str]) -> tuple[list[Account], Scope]:
    try:
        rows = _query(dsn, ROLES_SQL)
    except psycopg.Error as e:
        return [], Scope("db", False, 0, f"PostgreSQL roles could not be read: {e}".strip())
    accounts = role_accounts(rows, service)
    return accounts, Scope("db", True, len(accounts))


def collect_app_accounts(dsn: str, service: dict[str, str]) -> tuple[list[Account], Scope]:
    try:
        rows = _query(dsn, APP_SQL)
    except psycopg.Error as e:
        return [], Scope("app", False, 0, f"the application's accounts could not be read: {e}")
    accounts = app_accounts(rows, service)
    return accounts, Scope("app", True, len(accounts))


def from_probe(
    host: str, data: dict[str, Any] | None, service: dict[str, dict[str, str]]
) -> tuple[list[Account], list[Scope]]:
    """The db and app scopes from the database host's probe (None: the host was not read)."""
    pg = (data or {}).get("postgres")
    if data is None or pg is None or "error" in pg:
        why = (
            f"read through host {host}, which could not be probed"
            if data is None
            else f"host {host}'s probe has no database settings (/etc/claims-dc/access-probe.json)"
            if pg is None
            else f"host {host}: {pg['error']}"
        )
        return [], [Scope("db", False, 0, why), Scope("app", False, 0, why)]
    roles = role_accounts(pg["roles"], service.get("db", {}))
    scopes = [Scope("db", True, len(roles), f"read through host {host}")]
    apps: list[Account] = []
    if "app_accounts" in pg:
        apps = app_accounts(pg["app_accounts"], service.get("app", {}))
        scopes.append(Scope("app", True, len(apps), f"read through host {host}"))
    else:
        scopes.append(Scope("app", False, 0, f"host {host}'s probe names no app_database"))
    return roles + apps, scopes
