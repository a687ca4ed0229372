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
APP_TABLES_READ_INSERT = ("claim_files", "receipts")


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
        # Accounts: read them; creating and disabling users is the admin CLI's job, which
        # connects as the owner. The login throttle is the application's own bookkeeping.
        owner.execute(sql.SQL("REVOKE ALL ON users FROM {}").format(role))
        owner.execute(sql.SQL("GRANT SELECT ON users TO {}").format(role))
        owner.execute(sql.SQL("REVOKE ALL ON login_throttle FROM {}").format(role))
        owner.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON login_throttle TO {}").format(role)
        )
        owner.execute(sql.SQL("REVOKE ALL ON sessions FROM {}").format(role))
        owner.execute(sql.SQL("GRANT SELECT, INSERT, DELETE ON sessions TO {}").format(role))
        owner.execute(sql.SQL("REVOKE ALL ON audit_log FROM {}").format(role))
        owner.execute(sql.SQL("GRANT SELECT, INSERT ON audit_log TO {}").format(role))
        owner.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))


def check(login: str | None = None, password: str | None = None) -> dict[str, str]:
    """One fresh connection with the application's own settings (its dsn and password file):
    who the server says the session is, and the role it acts as. With `login`, the same
    settings as another login with `password`: would the database admit the application
    switched to it?"""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from claimapp.settings import load

    dsn = load().dsn
    if login is not None:
        params = conninfo_to_dict(dsn)
        params.update(user=login, password=password or "")
        dsn = make_conninfo(**{k: str(v) for k, v in params.items()})
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute("SELECT session_user, current_user").fetchone()
    assert row is not None
    return {"session_user": row[0], "current_user": row[1]}


def main(argv: list[str] | None = None) -> int:
    """python -m claimapp.db migrate --app-role ROLE: apply pending migrations as the owner
    ($CLAIMAPP_ADMIN_DSN), then grant the application role its least privilege.
    python -m claimapp.db check [--as-login LOGIN]: connect as the application does (its
    settings file and password file) and print the session's login and the role it acts as;
    with --as-login, as that login instead, its password read from stdin.

    Prints JSON; exit 0 ok, 1 the database refused, 2 usage.
    """
    import argparse
    import json
    import os
    import sys

    p = argparse.ArgumentParser(prog="python -m claimapp.db", description=main.__doc__)
    p.add_argument("command", choices=("migrate", "check"))
    p.add_argument("--app-role", help="migrate: the application's database role")
    p.add_argument("--as-login", help="check: another login, its password on stdin")
    p.add_argument(
        "--dsn",
        default=os.environ.get("CLAIMAPP_ADMIN_DSN", ""),
        help="owner connection (default: $CLAIMAPP_ADMIN_DSN)",
    )
    args = p.parse_args(argv)
    if args.command == "check":
        try:
            password = sys.stdin.readline().strip() if args.as_login else None
            print(json.dumps(check(args.as_login, password)))
        except (psycopg.Error, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if not args.app_role:
        p.error("migrate needs --app-role")
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
