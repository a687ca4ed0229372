"""Shared test set-up: the lab stack's raw config, and ordering for the lab suite."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def lab_raw() -> dict[str, Any]:
    """A fresh, mutable copy of Pulumi.lab.yaml's `config:` mapping."""
    document = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text(encoding="utf-8"))
    return copy.deepcopy(document["config"])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that take the shared lab down run after every test that uses it.
    items.sort(key=lambda item: item.get_closest_marker("destroys_lab") is not None)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def postgres() -> Any:
    """A private PostgreSQL 15 for this test run: a temporary cluster, run as the postgres user,
    listening on a Unix socket in its own directory only (no TCP), with an owner role and an
    application role whose passwords are made up here and kept nowhere else."""
    import os
    import secrets
    import shutil
    import subprocess
    import tempfile

    import psycopg

    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed (ops/lab/setup-host.sh installs it)")
    base = Path(tempfile.mkdtemp(prefix="claims-dc-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    passwords = {name: secrets.token_urlsafe(24) for name in ("postgres", "owner", "app")}
    pwfile = base / "pwfile"
    pwfile.write_text(passwords["postgres"] + "\n")
    os.chmod(pwfile, 0o600)
    shutil.chown(base, "postgres")
    for path in (sock, pwfile):
        shutil.chown(path, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *as_postgres,
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
            *as_postgres,
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
    super_dsn = f"host={sock} dbname=postgres user=postgres password={passwords['postgres']}"
    with psycopg.connect(super_dsn, autocommit=True) as conn:
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
        from claimapp.db import grant_application, migrate

        owner.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        owner.execute("GRANT USAGE ON SCHEMA public TO claims_app")
        migrate(owner)
        grant_application(owner, "claims_app")
    try:
        yield dsns
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)
