"""python -m claimapp.admin: create, disable, enable and list the application's users, and
set a user's password.

Connects as the database owner (CLAIMAPP_ADMIN_DSN): the web application's own role cannot
create or change accounts. Passwords are read from the terminal, or from standard input with
--password-stdin; never from the command line, where other users could see them.

Exit codes: 0 ok, 1 the user does not exist or the change was refused, 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

import psycopg

from claimapp.accounts import ROLES, create_user, list_users, set_disabled, set_password


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m claimapp.admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dsn",
        default=os.environ.get("CLAIMAPP_ADMIN_DSN", ""),
        help="owner connection (default: $CLAIMAPP_ADMIN_DSN)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="create a user")
    c.add_argument("username")
    c.add_argument("--role", choices=ROLES, required=True)
    c.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw = sub.add_parser("password", help="set a user's password (clears throttling, ends sessions)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    for name in ("disable", "enable"):
        sub.add_parser(name, help=f"{name} a user").add_argument("username")
    sub.add_parser("list", help="list users, their roles and state")
    args = p.parse_args(argv)
    with psycopg.connect(args.dsn, autocommit=True) as owner:
        if args.command in ("create", "password"):
            password = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                        else getpass.getpass(f"password for {args.username}: "))  # fmt: skip
            try:
                if args.command == "create":
                    create_user(owner, args.username, args.role, password)
                elif not set_password(owner, args.username, password):
                    print(f"error: no user {args.username!r}", file=sys.stderr)
                    return 1
            except (ValueError, psycopg.Error) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            done = "created" if args.command == "create" else "new password for"
            print(f"{done} {args.username}")
        elif args.command in ("disable", "enable"):
            if not set_disabled(owner, args.username, args.command == "disable"):
                print(f"error: no user {args.username!r}", file=sys.stderr)
                return 1
            print(f"{args.command}d {args.username}")
        else:
            for username, role, disabled, locked in list_users(owner):
                state = "disabled" if disabled else "throttled" if locked else "active"
                print(f"{username:24} {role:11} {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
