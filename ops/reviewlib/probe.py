#!/usr/bin/python3
"""The access review's host probe: installed root-owned on every host as
/usr/local/libexec/claims-dc-access-probe and run as root through sudo by the review's
service account, whose key may run nothing else (a forced command). Reads only; standard
library only, so the host needs nothing but python3.

Prints one JSON document: accounts, UIDs, password status, groups, NOPASSWD sudo rules, the
fingerprint of every authorized key and last logins.

Keys are read as sshd reads them: the files are those `sshd -T` names (AuthorizedKeysFile, with
%h, %u, %U and %% expanded, relative to the home directory), each line parsed by sshd's grammar
(an optional options field, whose double-quoted strings may hold spaces and commas, then the key
type, the base64 blob and a comment, separated by any spaces or tabs) and fingerprinted from the
blob itself. A line that is not blank or a comment and that this reader cannot parse is reported,
never skipped. An AuthorizedKeysCommand other than none is reported too: keys it would hand sshd
cannot be listed here. Certificate logins: the CA keys of TrustedUserCAKeys, and for each account
the principals its AuthorizedPrincipalsFile lists. On the database host
(/etc/claims-dc/access-probe.json names the application's database) it adds the PostgreSQL
roles and the claim application's accounts, read as the postgres superuser over the local
socket, so the reviewer needs no database password and no network path to port 5432.
"""

from __future__ import annotations

import base64
import binascii
import glob
import grp
import hashlib
import json
import os
import pwd
import struct
import subprocess
import sys
from typing import Any

FORMAT = 3  # the collector refuses any other: probe and collector come from one release
KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ecdsa-sha2-nistp256@openssh.com", "sk-ssh-ed25519@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", "ssh-dss-cert-v01@openssh.com",
})  # fmt: skip
# sshd's authorized_keys options (sshd(8), AUTHORIZED_KEYS FILE FORMAT): a line with any other
# is refused by sshd, and reported here as a line that is not a key.
KEY_OPTIONS = frozenset({
    "agent-forwarding", "cert-authority", "command", "environment", "expiry-time", "from",
    "no-agent-forwarding", "no-port-forwarding", "no-pty", "no-user-rc", "no-x11-forwarding",
    "permitlisten", "permitopen", "port-forwarding", "principals", "pty", "no-touch-required",
    "verify-required", "restrict", "tunnel", "user-rc", "x11-forwarding",
})  # fmt: skip
MAX_KEY_FILE_BYTES = 1024 * 1024  # sshd reads any size; more than this is reported, not read


class KeyLineError(ValueError):
    """A line of an authorized_keys file that is not a key this reader understands."""


def _split_options(line: str) -> tuple[str, str]:
    """The options field and the rest: the field ends at the first space or tab outside double
    quotes (a backslash escapes a quote inside them), as sshd's own reader decides."""
    quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and quoted and i + 1 < len(line):
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in " \t" and not quoted:
            return line[:i], line[i:].lstrip(" \t")
        i += 1
    if quoted:
        raise KeyLineError("an unterminated quoted string in the options")
    return line, ""


def _option_list(options: str) -> list[str]:
    """The comma-separated options, commas inside double quotes kept."""
    out, current, quoted, i = [], [], False, 0
    while i < len(options):
        c = options[i]
        if c == "\\" and quoted and i + 1 < len(options):
            current.append(options[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    if options:
        out.append("".join(current))
    return out


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_key_line(line: str) -> dict[str, Any] | None:
    """One authorized_keys line: None for a blank or comment line, else the key's type,
    fingerprint, options and comment. Raises KeyLineError for anything else."""
    text = line.strip(" \t\r\n")
    if not text or text.startswith("#"):
        return None
    options = ""
    first = text.split(None, 1)[0]
    if first not in KEY_TYPES:
        options, text = _split_options(text)
        if not text:
            raise KeyLineError("options but no key")
    parts = text.split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise KeyLineError(f"no known key type (found {parts[0][:40]!r})" if parts else "no key")
    kind, encoded = parts[0], parts[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyLineError("the key is not valid base64") from None
    if len(blob) < 4:
        raise KeyLineError("the key blob is too short")
    (n,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + n].decode("ascii", "replace") != kind:
        raise KeyLineError(f"the key blob is not a {kind} key")
    flags = [o.split("=", 1)[0].strip().lower() for o in _option_list(options)]
    unknown = [f for f in flags if f not in KEY_OPTIONS]
    if unknown:
        raise KeyLineError(f"option {unknown[0][:40]!r} is not one sshd knows: sshd refuses it")
    return {
        "type": kind,
        "fingerprint": fingerprint(blob),
        "options": options,
        "cert_authority": "cert-authority" in flags,
        "comment": parts[2] if len(parts) > 2 else "",
    }


def read_key_file(path: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every key of an authorized_keys (or TrustedUserCAKeys) file, and every line that is not
    one, with its number and why."""
    keys, bad = [], []
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as e:
        return [], [{"file": path, "line": 0, "reason": f"cannot read: {e.strerror}"}]
    if len(data) > MAX_KEY_FILE_BYTES:
        return [], [{"file": path, "line": 0, "reason": "over 1 MiB: not read"}]
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            key = parse_key_line(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append({"file": path, "line": n, "reason": "not UTF-8"})
            continue
        except KeyLineError as e:
            bad.append({"file": path, "line": n, "reason": str(e)})
            continue
        if key is not None:
            keys.append({**key, "file": path, "line": n})
    return keys, bad


def sshd_settings(user: str | None = None) -> dict[str, str]:
    """`sshd -T`: the effective settings, keyword (lower case) -> value; for `user`, with its
    Match blocks applied (`-C user=...`)."""
    argv = ["sshd", "-T"]
    if user is not None:
        argv += ["-C", f"user={user},host=localhost,addr=127.0.0.1"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"sshd -T: {r.stderr.strip()[-300:]}")
    out: dict[str, str] = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key.lower(), value.strip())
    return out


def expand(pattern: str, user: pwd.struct_passwd) -> str:
    """sshd's tokens in a file name; a relative name is under the home directory."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "%" and i + 1 < len(pattern):
            token = pattern[i + 1]
            out.append({"h": user.pw_dir, "u": user.pw_name, "U": str(user.pw_uid),
                        "%": "%"}.get(token, "%" + token))  # fmt: skip
            i += 2
            continue
        out.append(pattern[i])
        i += 1
    path = "".join(out)
    return path if path.startswith("/") else os.path.join(user.pw_dir, path)


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
                           "keys": {}, "bad_key_lines": {}, "principals": {},
                           "trusted_ca_keys": [], "incomplete": [],
                           "lastlog": {}, "shadow": {}}  # fmt: skip
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
    _keys(users, out)
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


def _keys(users: list[pwd.struct_passwd], out: dict[str, Any]) -> None:
    try:
        sshd = sshd_settings()
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        out["incomplete"].append(f"sshd -T could not be read: {e}")
        return
    ca_file = sshd.get("trustedusercakeys", "none")
    if ca_file.lower() != "none" and os.path.exists(ca_file):
        cas, bad = read_key_file(ca_file)
        out["trusted_ca_keys"] = [{"fingerprint": k["fingerprint"], "type": k["type"]}
                                  for k in cas]  # fmt: skip
        if bad:
            out["bad_key_lines"].setdefault("root", []).extend(bad)
    commands = set()
    for p in users:
        try:
            mine = sshd_settings(p.pw_name)  # its Match blocks may name other files
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            out["incomplete"].append(f"sshd -T for {p.pw_name} could not be read: {e}")
            continue
        command = mine.get("authorizedkeyscommand", "none")
        if command.lower() != "none":
            commands.add(command[:80])
        # sshd -T prints every file of AuthorizedKeysFile on one line (the
        # .ssh/authorized_keys2 of sshd's default included, when it is the default).
        patterns = mine.get("authorizedkeysfile", ".ssh/authorized_keys .ssh/authorized_keys2")
        principals = mine.get("authorizedprincipalsfile", "none")
        seen = set()
        for pattern in patterns.split():
            key_file = expand(pattern, p)
            if key_file in seen or not os.path.isfile(key_file):
                continue
            seen.add(key_file)
            keys, bad = read_key_file(key_file)
            if keys:
                out["keys"].setdefault(p.pw_name, []).extend(keys)
            if bad:
                out["bad_key_lines"].setdefault(p.pw_name, []).extend(bad)
        if principals.lower() != "none":
            path = expand(principals, p)
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    names = [ln.split()[-1] for ln in f if ln.strip() and not ln.startswith("#")]
                out["principals"][p.pw_name] = {"file": path, "principals": names}
    for command in sorted(commands):
        out["incomplete"].append(
            f"AuthorizedKeysCommand {command!r}: the keys it hands sshd cannot be listed"
        )


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
