"""A throwaway PostgreSQL 15 cluster for tests and benches.

Run as the postgres user, in a temporary directory, listening on a Unix socket there only (no
TCP at all), with an owner role and an application role whose passwords are made up for the
run and kept nowhere else. The schema is migrated and the application role granted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from claimapp.db import grant_application, migrate

PG_BIN = Path("/usr/lib/postgresql/15/bin")
AS_POSTGRES = ["runuser", "-u", "postgres", "--"]


@contextmanager
def local_cluster() -> Iterator[dict[str, str]]:
    """Yields {"owner": dsn, "app": dsn}; stops and removes the cluster afterwards."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError("PostgreSQL 15 is not installed (lab/setup-host.sh installs it)")
    base = Path(tempfile.mkdtemp(prefix="claims-dc-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    passwords = {name: secrets.token_urlsafe(24) for name in ("postgres", "owner", "app")}
    pwfile = base / "pwfile"
    pwfile.write_text(passwords["postgres"] + "\n")
    os.chmod(pwfile, 0o600)
    for path in (base, sock, pwfile):
        shutil.chown(path, "postgres")
    try:
        subprocess.run(
            [
                *AS_POSTGRES,
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *AS_POSTGRES,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(base / "log"),
                "-o",
                f"-c listen_addresses='' -k {sock}",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        superuser = f"host={sock} dbname=postgres user=postgres password={passwords['postgres']}"
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE claims_owner LOGIN PASSWORD '{passwords['owner']}'")
            conn.execute(f"CREATE ROLE claims_app LOGIN PASSWORD '{passwords['app']}'")
            conn.execute("CREATE DATABASE claims OWNER claims_owner")
            conn.execute("REVOKE ALL ON DATABASE claims FROM PUBLIC")
            conn.execute("GRANT CONNECT ON DATABASE claims TO claims_app")
        dsns = {
            "owner": f"host={sock} dbname=claims user=claims_owner password={passwords['owner']}",
            "app": f"host={sock} dbname=claims user=claims_app password={passwords['app']}",
        }
        with psycopg.connect(dsns["owner"], autocommit=True) as owner:
            owner.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            owner.execute("GRANT USAGE ON SCHEMA public TO claims_app")
            migrate(owner)
            grant_application(owner, "claims_app")
        yield dsns
    finally:
        subprocess.run(
            [*AS_POSTGRES, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)
