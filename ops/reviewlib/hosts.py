"""The host collector: over SSH (paramiko, host keys pinned from a known_hosts file, never
learnt), in parallel, each host bounded in time. On each host the installed probe
(ops/reviewlib/probe.py, run as root through sudo; the review account's key may run nothing
else) returns accounts, UIDs, password status, groups, NOPASSWD sudo rules, the fingerprints of
every authorized key and last logins, and on the database host its roles and the application's
accounts. An unreachable host, a refused login, a probe that fails or one from another release
makes that host's scope INCOMPLETE, with the reason."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.reviewlib import probe
from ops.reviewlib.database import from_probe, staff_of
from ops.reviewlib.model import Account, Credential, Scope

PRIVILEGED_GROUPS = {"root", "sudo", "wheel", "adm", "operators", "docker", "disk", "shadow"}
NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false")

PROBE_COMMAND = "sudo -n /usr/local/libexec/claims-dc-access-probe"
NOBODY = "nobody"  # UID 65534: no login, owns nothing


@dataclass(frozen=True)
class HostTarget:
    name: str
    address: str
    port: int = 22


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
        principals = (data.get("principals", {}).get(name) or {}).get("principals", [])
        login_shell = u["shell"] not in NOLOGIN
        password = shadow.get("password") == "set"
        groups = groups_of.get(name, set()) | {gid_name.get(u["gid"], str(u["gid"]))}
        system_account = (
            (u["uid"] < 1000 or name == NOBODY)
            and name != "root"
            and not keys
            and not password
            and not principals
        )
        last = data["lastlog"].get(name)
        creds = [Credential("ssh_key", k["fingerprint"], True) for k in keys]
        creds += [Credential("ssh_principal", str(p), True) for p in principals]
        if password:
            creds.append(Credential("password", "shadow", True))
        out.append(
            Account(
                system=f"host:{host}",
                name=name,
                staff_id=staff_of(name),
                enabled=bool(keys or principals) or (password and login_shell) or u["uid"] == 0,
                last_used=dt.datetime.fromtimestamp(last, dt.UTC) if last else None,
                privileges=sorted(groups & PRIVILEGED_GROUPS),
                credentials=creds,
                service=name in service or system_account or name == "root",
                attributes={
                    "uid": u["uid"],
                    "shares_uid_with": sorted(set(by_uid[u["uid"]]) - {name}),
                    "nopasswd": nopasswd.get(name, []),
                    "key_files": sorted({k["file"] for k in keys}),
                    "unreadable_key_lines": [
                        f"{b['file']}:{b['line']}: {b['reason']}"
                        for b in data.get("bad_key_lines", {}).get(name, [])
                    ],
                    "cert_authority_keys": [
                        k["fingerprint"] for k in keys if k.get("cert_authority")
                    ],
                    "principals": principals,
                },
            )
        )
    return out


MAX_PROBE_BYTES = 64 * 1024 * 1024  # a probe's JSON; more is not a probe


class DeadlinePassed(Exception):
    """The host's probe did not finish within its deadline; says in which stage it was."""


class _Stage:
    """Which stage a probe is in, so that the deadline can name it."""

    def __init__(self) -> None:
        self.name = "connect"
        self.expired = threading.Event()


def probe_host(
    target: HostTarget, user: str, key_file: Path, known_hosts: Path, timeout: float
) -> dict[str, Any]:
    """The host's probe output, within `timeout` seconds for everything: connect, key exchange,
    login, run, read and exit status. At the deadline a watchdog closes the connection, so no
    stage can outlast it, whatever the host does (silence, a trickle, output closed and no
    exit); DeadlinePassed then names the stage."""
    import paramiko

    stage = _Stage()
    deadline = time.monotonic() + timeout
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())

    def expire() -> None:
        stage.expired.set()
        client.close()  # every blocking read on the connection ends now

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        return _probe(client, target, user, key_file, stage, deadline)
    except Exception as e:
        if stage.expired.is_set() or time.monotonic() >= deadline:
            raise DeadlinePassed(
                f"no answer within the {timeout:g} s deadline, in stage {stage.name}"
            ) from e
        raise
    finally:
        watchdog.cancel()
        client.close()


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


def _probe(
    client: Any, target: HostTarget, user: str, key_file: Path, stage: _Stage, deadline: float
) -> dict[str, Any]:
    stage.name = "connect, key exchange and login"
    client.connect(
        target.address,
        port=target.port,
        username=user,
        key_filename=str(key_file),
        timeout=_left(deadline),
        banner_timeout=_left(deadline),
        auth_timeout=_left(deadline),
        channel_timeout=_left(deadline),
        allow_agent=False,
        look_for_keys=False,
    )
    stage.name = "run"
    _, stdout, stderr = client.exec_command(PROBE_COMMAND, timeout=_left(deadline))
    channel = stdout.channel
    stage.name = "read"
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() >= deadline:
            raise TimeoutError("reading the probe's output")
        channel.settimeout(min(1.0, _left(deadline)))
        try:
            chunk = channel.recv(65536)
        except TimeoutError:
            continue  # a trickle or a silence: the deadline above ends it
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_PROBE_BYTES:
            raise RuntimeError(f"the probe wrote over {MAX_PROBE_BYTES:,} bytes")
        chunks.append(chunk)
    stage.name = "exit status"
    if not channel.status_event.wait(_left(deadline)):
        raise TimeoutError("waiting for the probe's exit status")
    status = channel.recv_exit_status()
    if status != 0:
        channel.settimeout(_left(deadline))
        error = stderr.read(4096).decode(errors="replace")[-300:]
        raise RuntimeError(f"the probe failed (exit {status}): {error}")
    stage.name = "parse"
    data = dict(json.loads(b"".join(chunks)))
    if data.get("format") != probe.FORMAT:
        raise RuntimeError(
            f"the probe is format {data.get('format')}, this collector reads format "
            f"{probe.FORMAT}: install the probe of this release (access_review.yml)"
        )
    return data


def collect(
    targets: list[HostTarget],
    *,
    user: str,
    key_file: Path,
    known_hosts: Path,
    service: dict[str, dict[str, str]],
    database_host: str | None = None,
    timeout: float = 20.0,
    workers: int = 16,
) -> tuple[list[Account], list[Scope]]:
    """`service`: system (host, db, app) -> account -> documented purpose. With
    `database_host`, that host's probe also gives the db and app scopes (INCOMPLETE if it
    cannot be read)."""

    def one(t: HostTarget) -> tuple[list[Account], Scope, dict[str, Any] | None]:
        try:
            data = probe_host(t, user, key_file, known_hosts, timeout)
        except Exception as e:
            what = str(e) or {"TimeoutError": "timed out"}.get(type(e).__name__, "no detail")
            reason = f"{t.name} ({t.address}:{t.port}): {type(e).__name__}: {what}"
            return [], Scope(f"host:{t.name}", False, 0, reason), None
        accounts = parse(t.name, data, service.get("host", {}))
        gaps = [str(g) for g in data.get("incomplete", [])]
        scope = Scope(f"host:{t.name}", not gaps, len(accounts), "; ".join(gaps))
        return accounts, scope, data

    accounts: list[Account] = []
    scopes: list[Scope] = []
    probed: dict[str, dict[str, Any] | None] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets)))) as pool:
        for t, (accs, scope, data) in zip(targets, pool.map(one, targets), strict=True):
            accounts += accs
            scopes.append(scope)
            probed[t.name] = data
    if database_host is not None:
        accs, db_scopes = from_probe(database_host, probed.get(database_host), service)
        accounts += accs
        scopes += db_scopes
    return accounts, scopes
