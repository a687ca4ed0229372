"""A real loss on the lab, and the recovery from it: claims loaded and searched, the daily
backup taken, more loaded and searched, then data-center hosts destroyed (their containers,
with everything in them: the lab keeps no volumes) and made anew by `lab up`, then
playbooks/restore.yml brings the data back, and a caseworker on the LGWAN terminal searches
again. The timings split the outage into its phases (bench/restore_time.py prints them)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from claimapp.generate import claim_file
from claimapp.uke import parse
from infra.config import StackConfig
from lab import lab
from lab import podman as pm
from lab.delivery import (
    create_caseworker,
    db_scalar,
    receipt_count,
    sftp_upload,
    terminal_get,
    wait_for,
)
from lab.plan import LabPlan, build_plan
from lab.review import CASEWORKER
from ops.playbook import PlaybookRun, run_playbook


@dataclass
class Loss:
    """What was there before the loss, and what the recovery brought back."""

    recovery_point: str = ""  # the moment restore.yml was asked for ("" = the archive's end)
    receipts_at_point: int = 0
    audit_ids_at_point: list[int] = field(default_factory=list)
    receipts_after_restore: int = 0
    audit_ids_after_restore: list[int] = field(default_factory=list)
    after_point_rows_back: int = 0
    searched_before: dict[str, int] = field(default_factory=dict)
    searched: dict[str, int] = field(default_factory=dict)
    recovered_to: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    restore_run: PlaybookRun | None = None


def load_and_search(plan: LabPlan, receipts: int = 200, files: int = 2) -> tuple[str, int]:
    """A delivery loaded by the intake and one recipient of it searched from the terminal;
    (that recipient, the receipts the search found)."""
    base = 10**6 + secrets.randbelow(8 * 10**6)
    month = {f"{base + i:07d}.UKE": claim_file(base + i, receipts=receipts) for i in range(files)}
    before = receipt_count(plan)
    sftp_upload(plan, month)
    wait_for(lambda: receipt_count(plan) == before + receipts * files, "the intake to load")
    recipient = parse(next(iter(month.values()))).receipts[0].recipient_number
    login = create_caseworker(plan, CASEWORKER)
    found = terminal_get(plan, f"/api/receipts?recipient={recipient}", login)
    return recipient, len(found["receipts"])


def _audit_ids(plan: LabPlan, where: str = "true", **params: str) -> list[int]:
    out = db_scalar(plan, f"SELECT string_agg(id::text, ',' ORDER BY id) FROM audit_log "  # noqa: S608
                    f"WHERE {where}", **params)  # fmt: skip
    return [int(x) for x in out.split(",")] if out else []


def archived_now(plan: LabPlan, *, force: bool = False, seconds: float = 150) -> float:
    """Waits until the WAL holding every commit so far has been archived; returns how long that
    took. Unforced, that is the exposure (archive_timeout at most); forced, the segment is
    switched at once, as an operator does before planned maintenance."""
    lsn = db_scalar(plan, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    if force:
        db_scalar(plan, "SELECT pg_walfile_name(pg_switch_wal())")
    return wait_for(
        lambda: (
            db_scalar(plan, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= lsn
        ),
        f"WAL {lsn} to be archived",
        seconds,
    )


def daily_backups(plan: LabPlan) -> None:
    """The daily backup on every host that holds data, at once: the unit their timer starts."""
    from concurrent.futures import ThreadPoolExecutor

    hosts = [h for role in ("db", "intake", "app") for h in plan.hosts if h.role == role]

    def one(container: str) -> str | None:
        proc = pm.exec_in(container, ["systemctl", "start", "claims-dc-backup.service"],
                          check=False, timeout=900)  # fmt: skip
        if proc.returncode == 0:
            return None
        status = pm.exec_in(container, ["cat", "/var/lib/claims-dc-backup/status.json"],
                            check=False).stdout  # fmt: skip
        return f"{container}: {status.strip() or proc.stderr.strip()}"

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        failed = [f for f in pool.map(one, [h.container for h in hosts]) if f]
    if failed:
        raise RuntimeError("the daily backup failed: " + "; ".join(failed))


def destroy(plan: LabPlan, hosts: list[str]) -> None:
    for name in hosts:
        pm.podman("rm", "-f", "-t", "0", "--volumes", plan.host(name).container)


def lose_and_restore(
    config: StackConfig,
    hosts: list[str],
    *,
    to_point: bool = True,
    daily_backup: bool = True,
    measure_rpo: bool = True,
) -> Loss:
    """The scenario. With `to_point`, restore.yml is asked for a moment between two rounds of
    searches (the second must not come back); otherwise for the archive's end. With
    `measure_rpo`, the loss waits for the last commit's WAL to be archived by archive_timeout
    alone and reports how long that took; without, the segment is switched at once."""
    plan = build_plan(config)
    loss = Loss()
    load_and_search(plan)
    if daily_backup:
        daily_backups(plan)
    recipient, found_before = load_and_search(plan)
    loss.searched_before = {recipient: found_before}
    if to_point:
        time.sleep(1.5)
        point = dt.datetime.now(dt.UTC)
        loss.recovery_point = point.isoformat(timespec="seconds").replace("+00:00", "Z")
        time.sleep(1.5)
        # After the point: a caseworker made and searching; none of it may come back.
        after = create_caseworker(plan, CASEWORKER)
        terminal_get(plan, f"/api/receipts?recipient={recipient}", after)
    loss.receipts_at_point = receipt_count(plan)
    point_or_now = loss.recovery_point or dt.datetime.now(dt.UTC).isoformat()
    loss.audit_ids_at_point = _audit_ids(plan, "at <= :'point'", point=point_or_now)
    waited = archived_now(plan, force=not measure_rpo)
    if measure_rpo:
        loss.seconds["archive_wait"] = round(waited, 1)
    inventory = lab.state_dir(config.stack) / "inventory.yml"

    started = time.monotonic()
    loss.seconds["lost_at"] = time.time()
    destroy(plan, hosts)
    lab.up(config)
    t_hosts = time.monotonic()
    args = ["-e", f"restore_to={loss.recovery_point}"] if loss.recovery_point else []
    timed = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    run = run_playbook(inventory, "restore.yml", *args, env=timed)
    loss.restore_run = run
    t_restore = time.monotonic()
    if not run.ok:
        raise RuntimeError("restore.yml failed: " + run.stdout[-4000:] + run.stderr[-1000:])
    login = create_caseworker(plan, CASEWORKER)
    found = terminal_get(plan, f"/api/receipts?recipient={recipient}", login)
    t_answer = time.monotonic()
    loss.searched = {recipient: len(found["receipts"])}
    loss.receipts_after_restore = receipt_count(plan)
    loss.audit_ids_after_restore = _audit_ids(plan, "id <= :'last'",
                                              last=str(max(loss.audit_ids_at_point)))  # fmt: skip
    lost_at = dt.datetime.fromtimestamp(loss.seconds["lost_at"], dt.UTC).isoformat()
    loss.after_point_rows_back = len(
        _audit_ids(plan, "at > :'point' AND at <= :'lost'", point=point_or_now, lost=lost_at)
    )
    loss.recovered_to = _recovered_to(run)
    loss.seconds.update(
        hosts=round(t_hosts - started, 1),
        restore=round(t_restore - t_hosts, 1),
        answer=round(t_answer - t_restore, 1),
        total=round(t_answer - started, 1),
        **phase_seconds(run),
    )
    return loss


def _recovered_to(run: PlaybookRun) -> str:
    for line in run.stdout.splitlines():
        if "recovered to " in line:
            return line.split("recovered to ", 1)[1].split()[0]
    return ""


ELAPSED = re.compile(r"\((\d+):(\d\d):(\d\d\.\d+)\)\s+(\d+):(\d\d):(\d\d\.\d+)")
# restore.yml's plays, by the phase of the outage they are.
PHASES = {
    "Converge the hosts": "converge",
    "The claims database": "fetch and load the database",
    "The claim files and settings": "fetch and place the files",
    "The application on the restored data": "converge",
    "Restart the application and prove it answers": "verify",
}

PHASE_NAMES = ("converge", "fetch and load the database", "fetch and place the files", "verify")


def phase_seconds(run: PlaybookRun) -> dict[str, float]:
    """Seconds per phase of restore.yml, from the profile_tasks callback's running total
    printed under each task banner (site.yml's own plays count as converge)."""
    play, start, out = "", 0.0, dict.fromkeys(PHASES.values(), 0.0)
    first: list[tuple[str, float]] = []
    lines = run.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("PLAY [") and "RECAP" not in line:
            play = line[6:].split("]")[0]
        m = ELAPSED.search(line)
        if m and i and lines[i - 1].startswith("TASK ["):
            total = int(m[4]) * 3600 + int(m[5]) * 60 + float(m[6])
            if not first or first[-1][0] != play:
                first.append((play, total))
            start = total
    for (name, t0), (_, t1) in zip(first, [*first[1:], ("", start)], strict=True):
        phase = PHASES.get(name, "converge")
        out[phase] = round(out[phase] + t1 - t0, 1)
    return out


def summary(loss: Loss) -> dict[str, Any]:
    return {
        "recovery_point": loss.recovery_point or "end of the WAL archive",
        "recovered_to": loss.recovered_to,
        "receipts": {"at_point": loss.receipts_at_point, "after": loss.receipts_after_restore},
        "audit_rows": {
            "at_point": len(loss.audit_ids_at_point),
            "after": len(loss.audit_ids_after_restore),
        },
        "rows_after_point_back": loss.after_point_rows_back,
        "search_before": loss.searched_before,
        "search_after": loss.searched,
        "seconds": loss.seconds,
        # The exposure: a commit is safe once its WAL segment is archived; this is how long
        # that took for the last one (bounded by archive_timeout plus the push).
        "rpo_seconds_measured": loss.seconds.get("archive_wait"),
    }
