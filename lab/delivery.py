"""The day's delivery on the lab, through the real paths: the fund's sender uploads over SFTP
to the intake host, and a caseworker on the LGWAN terminal searches over HTTPS.

Everything runs inside the stand-in hosts (podman exec), so it crosses the router and both
hosts' firewalls exactly as the parties' own traffic would.
"""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import podman as pm
from lab.plan import LabPlan

REPO = Path(__file__).resolve().parents[1]

SENDER_USER = "fund"  # the sender's own account; lab_stand_ins.yml makes its key


def app_url(plan: LabPlan) -> str:
    return f"https://{plan.first('app').address}"


def db_scalar(plan: LabPlan, sql: str, **params: str) -> str:
    """One value from the claims database, read as postgres on the database host. `params`
    become psql variables, quoted by psql (:'name' in `sql`), never pasted into the SQL."""
    argv = ["runuser", "-u", "postgres", "--", "psql", "-XtA", "-d", "claims"]
    for name, value in params.items():
        argv += ["-v", f"{name}={value}"]
    out = pm.exec_in(plan.first("db").container, argv, input_text=sql + "\n").stdout
    return out.strip()


def receipt_count(plan: LabPlan) -> int:
    return int(db_scalar(plan, "SELECT count(*) FROM receipts"))


def sftp_upload(plan: LabPlan, files: dict[str, bytes]) -> None:
    """Upload each file as the fund does: under a hidden name, then renamed into place, so
    the intake never takes half a file."""
    sender = plan.first("sender").container
    intake = plan.first("intake").address
    batch = [f"lcd /home/{SENDER_USER}"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
            pm.podman("cp", str(Path(tmp) / name), f"{sender}:/home/{SENDER_USER}/{name}")
            batch += [f"put {name} .{name}.part", f"rename .{name}.part {name}"]
    pm.exec_in(sender, ["chown", "-R", f"{SENDER_USER}:{SENDER_USER}", f"/home/{SENDER_USER}"])
    proc = pm.exec_in(
        sender,
        ["runuser", "-u", SENDER_USER, "--", "sftp", "-b", "-", f"{SENDER_USER}@{intake}"],
        input_text="\n".join(batch) + "\n",
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sftp upload from {sender} failed: {proc.stderr.strip()}")


def wait_for(predicate: Callable[[], bool], what: str, seconds: float = 120) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise TimeoutError(f"timed out after {seconds:.0f}s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - started


def quarantined(plan: LabPlan, name: str) -> dict[str, Any] | None:
    """The reason file of a quarantined upload, or None while it is not quarantined."""
    proc = pm.exec_in(
        plan.first("intake").container,
        ["cat", f"/srv/claims/quarantine/{name}.reason.json"],
        check=False,
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def create_caseworker(plan: LabPlan, name: str | None = None) -> tuple[str, str]:
    """A caseworker account with the owner tools on the owner host (a throwaway name made for
    this run, or `name`, whose password is reset if it exists); the password is made up here
    and never written anywhere."""
    name, password = name or f"cw.{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    owner = ["/usr/local/sbin/claimapp-owner", "admin"]
    listed = pm.exec_in(plan.first("app").container, [*owner, "list"], check=False).stdout
    exists = any(line.split()[:1] == [name] for line in listed.splitlines())
    command = ["password", name] if exists else ["create", name, "--role", "caseworker"]
    proc = pm.exec_in(plan.first("app").container, [*owner, *command, "--password-stdin"],
                      input_text=password + "\n", check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"could not {command[0]} {name}: {proc.stderr.strip()}")
    return name, password


def terminal_get(plan: LabPlan, path: str, login: tuple[str, str]) -> Any:
    """Log in from the LGWAN terminal over HTTPS (the lab CA verifies the server), then GET
    `path` from the JSON API; returns the decoded answer."""
    terminal = plan.first("terminal").container
    url = app_url(plan)
    curl = 'curl -sS --fail-with-body --max-time 15 -b "$jar" -c "$jar"'
    body = json.dumps({"username": login[0], "password": login[1]})
    script = (
        "set -e; jar=$(mktemp); trap 'rm -f \"$jar\"' EXIT; "
        f"{curl} -H 'Content-Type: application/json' --data-binary @- {url}/api/login "
        f">/dev/null; {curl} {shlex.quote(url + path)}"
    )
    proc = pm.exec_in(terminal, ["sh", "-c", script], input_text=body, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"HTTPS from {terminal} failed: {proc.stdout} {proc.stderr}".strip())
    return json.loads(proc.stdout)


def terminal_browser(
    plan: LabPlan, login: tuple[str, str], recipient: str, screenshots: Path, ca_cert: str
) -> dict[str, Any]:
    """The caseworker's visit in headless Chromium (lab/browser.py) from the LGWAN terminal:
    the browser runs on the control node inside terminal-1's network namespace (nsenter), so
    its packets leave from the terminal's address and cross the LGWAN link, the router and
    app-1's firewall to nginx over HTTPS, verified against the lab CA. Returns the visit."""
    terminal = plan.first("terminal").container
    pid = pm.podman("inspect", "--format", "{{.State.Pid}}", terminal).stdout.strip()
    if not pid.isdigit() or pid == "0":
        raise RuntimeError(f"{terminal} is not running")
    argv = ["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable, "-m", "lab.browser",
            "--base", app_url(plan), "--user", login[0], "--recipient", recipient,
            "--ca-file", ca_cert, "--screenshots", str(screenshots), "--json"]  # fmt: skip
    proc = subprocess.run(argv, input=login[1] + "\n", capture_output=True, text=True,
                          timeout=300, cwd=REPO, check=False)  # fmt: skip
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"the browser on {terminal} did not run: {proc.stderr[-1500:]}")
    visit: dict[str, Any] = json.loads(proc.stdout)
    return visit
