#!/usr/bin/python3
"""The access review's host probe: installed root-owned on every host as
/usr/local/libexec/claims-dc-access-probe and run as root through sudo by the review's
service account, whose key may run nothing else (a forced command). Reads only; standard
library only, so the host needs nothing but python3.

Prints one JSON document: accounts, UIDs, password status, groups, NOPASSWD sudo rules, the
fingerprint of every authorized key and last logins. On the database host
(/etc/claims-dc/access-probe.json names the application's database) it adds the PostgreSQL
roles and the claim application's accounts, read as the postgres superuser over the local
socket, so the reviewer needs no database password and no network path to port 5432.
"""

from __future__ import annotations

import glob
import grp
import json
import os
import pwd
import struct
import subprocess
import sys
from typing import Any

FORMAT = 2  # the collector refuses any other: probe and collector come from one release
SETTINGS = "/etc/claims-dc/access-probe.json"

ROLES_SQL = """
SELECT coalesce(json_agg(r ORDER BY r.name), '[]') FROM (
  SELECT rolname AS name, rolcanlogin AS login, rolsuper AS superuser,
         rolcreaterole AS createrole, rolcreatedb AS createdb,
         rolreplication AS replication, rolbypassrls AS bypassrls,
         rolvaliduntil AS valid_until
  FROM pg_roles WHERE rolname !~ '^pg_') r
"""
APP_SQL = """
SELECT coalesce(json_agg(u ORDER BY u.username), '[]') FROM (
  SELECT u.username, u.role, u.disabled, u.created_at,
         (SELECT max(at) FROM audit_log a
           WHERE a.actor = u.username AND a.action = 'login' AND a.success) AS last_login
  FROM users u) u
"""


def _psql(database: str, sql: str) -> Any:
    r = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-q",
         "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        capture_output=True, text=True, timeout=60, cwd="/",
    )  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"psql -d {database}: {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout)


def postgres(settings: dict[str, Any]) -> dict[str, Any]:
    app_db = settings.get("app_database")
    try:
        out: dict[str, Any] = {"roles": _psql("postgres", ROLES_SQL)}
        if app_db:
            out["app_accounts"] = _psql(app_db, APP_SQL)
        return out
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
        return {"error": str(e)}


def accounts() -> dict[str, Any]:
    out: dict[str, Any] = {"format": FORMAT, "users": [], "groups": [], "nopasswd": [],
                           "keys": {}, "lastlog": {}, "shadow": {}}  # fmt: skip
    users = pwd.getpwall()
    for p in users:
        out["users"].append(
            {
                "name": p.pw_name,
                "uid": p.pw_uid,
                "gid": p.pw_gid,
                "shell": p.pw_shell,
                "home": p.pw_dir,
            }
        )
    for g in grp.getgrall():
        out["groups"].append({"name": g.gr_name, "gid": g.gr_gid, "members": list(g.gr_mem)})
    with open("/etc/shadow") as shadow:
        for line in shadow:
            f = line.rstrip("\n").split(":")
            if len(f) >= 8:
                pw = f[1]
                state = "none" if pw == "" else ("locked" if pw[:1] in "!*" else "set")
                out["shadow"][f[0]] = {"password": state, "expire": f[7]}
    for path in ["/etc/sudoers", *sorted(glob.glob("/etc/sudoers.d/*"))]:
        try:
            with open(path) as rules:
                for n, line in enumerate(rules, 1):
                    s = line.strip()
                    if s and not s.startswith("#") and "NOPASSWD" in s:
                        out["nopasswd"].append({"file": path, "line": n, "rule": s})
        except OSError:
            pass
    for p in users:
        for key_file in (
            os.path.join(p.pw_dir, ".ssh", "authorized_keys"),
            os.path.join("/etc/ssh/authorized_keys", p.pw_name),
        ):
            if os.path.isfile(key_file):
                r = subprocess.run(["ssh-keygen", "-lf", key_file], capture_output=True, text=True)
                for listed in r.stdout.splitlines():
                    parts = listed.split()
                    if len(parts) >= 2:
                        out["keys"].setdefault(p.pw_name, []).append(
                            {
                                "fingerprint": parts[1],
                                "file": key_file,
                                "comment": " ".join(parts[2:-1]),
                            }
                        )
    try:
        with open("/var/log/lastlog", "rb") as lastlog:
            data = lastlog.read()
        for p in users:
            off = p.pw_uid * 292  # struct lastlog: int32 time, char line[32], char host[256]
            if off + 4 <= len(data):
                t = struct.unpack("<I", data[off : off + 4])[0]
                if t:
                    out["lastlog"][p.pw_name] = t
    except OSError:
        pass
    return out


def main() -> int:
    out = accounts()
    if os.path.exists(SETTINGS):
        with open(SETTINGS) as f:
            settings = json.load(f)
        if "postgres" in settings:
            out["postgres"] = postgres(settings["postgres"])
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
