"""The host collector: over SSH (paramiko, host keys pinned from a known_hosts file, never
learnt), in parallel, each host bounded in time. One read-only probe per host, run with sudo,
returns accounts, UIDs, password status, groups, NOPASSWD sudo rules, the fingerprints of every
authorized key and last logins. An unreachable host, a refused login or a probe that fails
makes that host's scope INCOMPLETE, with the reason."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.reviewlib.database import staff_of
from ops.reviewlib.model import Account, Credential, Scope

PRIVILEGED_GROUPS = {"root", "sudo", "wheel", "adm", "operators", "docker", "disk", "shadow"}
NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false")

# Runs on the host as root (sudo -n python3 -); reads only.
PROBE = r"""
import glob, grp, json, os, pwd, struct, subprocess
out = {"users": [], "groups": [], "nopasswd": [], "keys": {}, "lastlog": {}, "shadow": {}}
for p in pwd.getpwall():
    out["users"].append({"name": p.pw_name, "uid": p.pw_uid, "gid": p.pw_gid,
                         "shell": p.pw_shell, "home": p.pw_dir})
for g in grp.getgrall():
    out["groups"].append({"name": g.gr_name, "gid": g.gr_gid, "members": list(g.gr_mem)})
for line in open("/etc/shadow"):
    f = line.rstrip("\n").split(":")
    if len(f) >= 8:
        pw = f[1]
        state = "none" if pw == "" else ("locked" if pw[:1] in "!*" else "set")
        out["shadow"][f[0]] = {"password": state, "expire": f[7]}
for path in ["/etc/sudoers"] + sorted(glob.glob("/etc/sudoers.d/*")):
    try:
        for n, line in enumerate(open(path), 1):
            s = line.strip()
            if s and not s.startswith("#") and "NOPASSWD" in s:
                out["nopasswd"].append({"file": path, "line": n, "rule": s})
    except OSError:
        pass
for p in pwd.getpwall():
    files = [os.path.join(p.pw_dir, ".ssh", "authorized_keys"),
             os.path.join("/etc/ssh/authorized_keys", p.pw_name)]
    for f in files:
        if os.path.isfile(f):
            r = subprocess.run(["ssh-keygen", "-lf", f], capture_output=True, text=True)
            for l in r.stdout.splitlines():
                parts = l.split()
                if len(parts) >= 2:
                    out["keys"].setdefault(p.pw_name, []).append(
                        {"fingerprint": parts[1], "file": f, "comment": " ".join(parts[2:-1])})
try:
    data = open("/var/log/lastlog", "rb").read()
    for p in pwd.getpwall():
        off = p.pw_uid * 292
        if off + 4 <= len(data):
            t = struct.unpack("<I", data[off:off + 4])[0]
            if t:
                out["lastlog"][p.pw_name] = t
except OSError:
    pass
print(json.dumps(out))
"""


@dataclass(frozen=True)
class HostTarget:
    name: str
    address: str


def parse(host: str, data: dict[str, Any], service: dict[str, str]) -> list[Account]:
    groups_of: dict[str, set[str]] = {}
    gid_name = {g["gid"]: g["name"] for g in data["groups"]}
    for g in data["groups"]:
        for m in g["members"]:
            groups_of.setdefault(m, set()).add(g["name"])
    by_uid: dict[int, list[str]] = {}
    for u in data["users"]:
        by_uid.setdefault(u["uid"], []).append(u["name"])
    nopasswd: dict[str, list[str]] = {}
    for rule in data["nopasswd"]:
        who = rule["rule"].split()[0]
        names = (
            [who]
            if not who.startswith("%")
            else [u for u, gs in groups_of.items() if who[1:] in gs]
        )
        for n in names:
            nopasswd.setdefault(n, []).append(f"{rule['file']}:{rule['line']}: {rule['rule']}")
    out = []
    for u in data["users"]:
        name = u["name"]
        shadow = data["shadow"].get(name, {})
        keys = data["keys"].get(name, [])
        login_shell = u["shell"] not in NOLOGIN
        password = shadow.get("password") == "set"
        groups = groups_of.get(name, set()) | {gid_name.get(u["gid"], str(u["gid"]))}
        system_account = u["uid"] < 1000 and name != "root" and not keys and not password
        last = data["lastlog"].get(name)
        creds = [Credential("ssh_key", k["fingerprint"], True) for k in keys]
        if password:
            creds.append(Credential("password", "shadow", True))
        out.append(
            Account(
                system=f"host:{host}",
                name=name,
                staff_id=staff_of(name),
                enabled=bool(keys) or (password and login_shell) or u["uid"] == 0,
                last_used=dt.datetime.fromtimestamp(last, dt.UTC) if last else None,
                privileges=sorted(groups & PRIVILEGED_GROUPS),
                credentials=creds,
                service=name in service or system_account or name == "root",
                attributes={
                    "uid": u["uid"],
                    "shares_uid_with": sorted(set(by_uid[u["uid"]]) - {name}),
                    "nopasswd": nopasswd.get(name, []),
                    "key_files": sorted({k["file"] for k in keys}),
                },
            )
        )
    return out


def probe_host(
    target: HostTarget, user: str, key_file: Path, known_hosts: Path, timeout: float
) -> dict[str, Any]:
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            target.address,
            username=user,
            key_filename=str(key_file),
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=False,
            look_for_keys=False,
        )
        stdin, stdout, stderr = client.exec_command("sudo -n python3 -", timeout=timeout)
        stdin.write(PROBE)
        stdin.channel.shutdown_write()
        body = stdout.read()
        if stdout.channel.recv_exit_status() != 0:
            raise RuntimeError(f"the probe failed: {stderr.read().decode(errors='replace')[-300:]}")
        return dict(json.loads(body))
    finally:
        client.close()


def collect(
    targets: list[HostTarget],
    *,
    user: str,
    key_file: Path,
    known_hosts: Path,
    service: dict[str, str],
    timeout: float = 20.0,
    workers: int = 16,
) -> tuple[list[Account], list[Scope]]:
    def one(t: HostTarget) -> tuple[list[Account], Scope]:
        try:
            data = probe_host(t, user, key_file, known_hosts, timeout)
        except Exception as e:
            return [], Scope(f"host:{t.name}", False, 0, f"{t.address}: {type(e).__name__}: {e}")
        accounts = parse(t.name, data, service)
        return accounts, Scope(f"host:{t.name}", True, len(accounts))

    accounts: list[Account] = []
    scopes: list[Scope] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets)))) as pool:
        for accs, scope in pool.map(one, targets):
            accounts += accs
            scopes.append(scope)
    return accounts, scopes
