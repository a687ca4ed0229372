"""The claim database: roles, migrations and connections.

Two roles: the owner, which owns the schema and is the only one that runs migrations, and the
application role, which may read and insert claims but never update or delete them. The
application never connects as the owner or as a superuser.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
APP_TABLES_READ_INSERT = ("claim_files", "receipts", "receipt_details")


def migrate(owner: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; returns their names."""
    with owner.transaction():
        owner.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
    applied = {row[0] for row in owner.execute("SELECT name FROM schema_migrations")}
    done = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name in applied:
            continue
        with owner.transaction():
            owner.execute(path.read_text(encoding="utf-8"))
            owner.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
        done.append(path.name)
    return done


def grant_application(owner: psycopg.Connection, app_role: str) -> None:
    """Least privilege for the application role: read and insert claims, nothing more."""
    role = sql.Identifier(app_role)
    with owner.transaction():
        for table in APP_TABLES_READ_INSERT:
            owner.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), role))
            owner.execute(
                sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(table), role)
            )
        # Accounts: read them, count failures and lock; creating and disabling users is the
        # admin CLI's job, which connects as the owner.
        owner.execute(sql.SQL("REVOKE ALL ON users FROM {}").format(role))
        owner.execute(
            sql.SQL("GRANT SELECT, UPDATE (failed_logins, locked_until) ON users TO {}").format(
                role
            )
        )
        owner.execute(sql.SQL("REVOKE ALL ON sessions FROM {}").format(role))
        owner.execute(sql.SQL("GRANT SELECT, INSERT, DELETE ON sessions TO {}").format(role))
        owner.execute(sql.SQL("REVOKE ALL ON audit_log FROM {}").format(role))
        owner.execute(sql.SQL("GRANT SELECT, INSERT ON audit_log TO {}").format(role))
        owner.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))
