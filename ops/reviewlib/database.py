"""Collectors for the database layer: PostgreSQL roles (LOGIN, SUPERUSER, CREATEROLE, CREATEDB,
REPLICATION, BYPASSRLS, VALID UNTIL) and the claim application's accounts (role, disabled,
created, last successful login from the append-only audit log). Read-only queries; a failure
makes the scope INCOMPLETE with the reason."""

from __future__ import annotations

import re

import psycopg

from ops.reviewlib.model import Account, Credential, Scope

STAFF_NAME = re.compile(r"^[a-z][0-9]{3,6}$")  # an app or host account named by a staff ID

ROLES_SQL = """
SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication,
       rolbypassrls, rolvaliduntil
FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname
"""
APP_SQL = """
SELECT u.username, u.role, u.disabled, u.created_at,
       (SELECT max(at) FROM audit_log a
         WHERE a.actor = u.username AND a.action = 'login' AND a.success) AS last_login
FROM users u ORDER BY u.username
"""


def staff_of(name: str) -> str | None:
    return name.upper() if STAFF_NAME.match(name) else None


def collect_db_roles(dsn: str, service: dict[str, str]) -> tuple[list[Account], Scope]:
    """`service`: role name -> its documented purpose (owner, application, administration)."""
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            rows = conn.execute(ROLES_SQL).fetchall()
    except psycopg.Error as e:
        return [], Scope("db", False, 0, f"PostgreSQL roles could not be read: {e}".strip())
    out = []
    for name, login, sup, createrole, createdb, repl, bypass, until in rows:
        attrs = [
            a
            for a, on in (
                ("SUPERUSER", sup),
                ("CREATEROLE", createrole),
                ("CREATEDB", createdb),
                ("REPLICATION", repl),
                ("BYPASSRLS", bypass),
            )
            if on
        ]
        out.append(
            Account(
                "db",
                name,
                staff_id=staff_of(name),
                enabled=bool(login),
                privileges=attrs,
                service=name in service,
                credentials=[Credential("db_password", "login", bool(login), None, None)]
                if login
                else [],
                valid_until=until,
            )
        )
    return out, Scope("db", True, len(out))


def collect_app_accounts(dsn: str, service: dict[str, str]) -> tuple[list[Account], Scope]:
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            rows = conn.execute(APP_SQL).fetchall()
    except psycopg.Error as e:
        return [], Scope("app", False, 0, f"the application's accounts could not be read: {e}")
    out = []
    for name, role, disabled, created, last in rows:
        out.append(
            Account(
                "app",
                name,
                staff_id=staff_of(name),
                enabled=not disabled,
                created=created,
                last_used=last,
                privileges=[role],
                service=name in service,
                credentials=[Credential("password", "app-login", not disabled, created, last)],
            )
        )
    return out, Scope("app", True, len(out))
