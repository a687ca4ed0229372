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


def main(argv: list[str] | None = None) -> int:
    """python -m claimapp.db migrate --app-role ROLE: apply pending migrations as the owner
    ($CLAIMAPP_ADMIN_DSN), then grant the application role its least privilege.

    Prints {"applied": [...]} as JSON; exit 0 ok, 1 the database refused, 2 usage.
    """
    import argparse
    import json
    import os
    import sys

    p = argparse.ArgumentParser(prog="python -m claimapp.db", description=main.__doc__)
    p.add_argument("command", choices=("migrate",))
    p.add_argument("--app-role", required=True, help="the application's database role")
    p.add_argument(
        "--dsn",
        default=os.environ.get("CLAIMAPP_ADMIN_DSN", ""),
        help="owner connection (default: $CLAIMAPP_ADMIN_DSN)",
    )
    args = p.parse_args(argv)
    if not args.dsn:
        p.error("no owner connection: pass --dsn or set CLAIMAPP_ADMIN_DSN")
    try:
        with psycopg.connect(args.dsn, autocommit=True) as owner:
            applied = migrate(owner)
            grant_application(owner, args.app_role)
    except psycopg.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"applied": applied}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
