"""python -m ops.demo: a day in the life of one municipality, on the local lab.

Each capability adds its step. Results go to stdout, progress to stderr; exit 0 when every step
passed, 1 when one failed.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

from claimapp.generate import claim_file
from claimapp.uke import parse
from infra.check import main as check_main
from infra.config import ConfigError, StackConfig, load_stack
from ops.lab import lab
from ops.lab.delivery import (
    create_caseworker,
    db_scalar,
    quarantined,
    receipt_count,
    sftp_upload,
    terminal_get,
    wait_for,
)
from ops.lab.plan import build_plan
from ops.lab.playbook import run_playbook
from ops.lab.probes import (
    mismatches,
    observe,
    policy_ports,
    start_policy_listeners,
    stop_policy_listeners,
)

REPO = Path(__file__).resolve().parent.parent


def _step(n: int, title: str) -> None:
    print(f"\n== {n}. {title}", flush=True)


def _install_step(inventory: str) -> bool:
    """Step 3: the stand-ins get ready, then site.yml installs everything from the bundle."""
    for playbook in ("lab_baseline.yml", "lab_stand_ins.yml", "site.yml"):
        run = run_playbook(inventory, playbook)
        changed = sum(run.changed().values())
        print(f"  {playbook:18} {run.seconds:6.1f}s  {changed} changes on {len(run.recap)} hosts")
        if not run.ok:
            print(f"FAILED: {playbook}\n{run.stdout[-3000:]}\n{run.stderr[-1500:]}")
            return False
    print("  " + run.summary().replace("\n", "\n  "))
    return True


def _delivery_step(config: StackConfig) -> bool:
    """Step 4: the fund delivers a month over SFTP, the intake loads it, a caseworker on the
    LGWAN terminal searches it over HTTPS."""
    plan = build_plan(config)
    base = 10**6 + secrets.randbelow(8 * 10**6)  # new files each run: the intake refuses repeats
    month = {f"{base + i:07d}.UKE": claim_file(base + i, receipts=200) for i in range(5)}
    broken = f"{base + 9:07d}-broken.UKE"
    month[broken] = claim_file(base + 9, receipts=200, bad="totals")
    before = receipt_count(plan)
    sftp_upload(plan, month)
    print(f"  sender-1 uploaded {len(month)} files over SFTP to intake-1 (one with wrong totals)")
    waited = wait_for(lambda: receipt_count(plan) == before + 1000, "the intake to load 1000")
    wait_for(lambda: quarantined(plan, broken) is not None, f"{broken} in quarantine")
    reason = quarantined(plan, broken) or {}
    print(f"  intake-1 loaded 1000 receipts in {waited:.1f}s; {broken} quarantined "
          f"({reason.get('reason')}): {reason.get('message')}")  # fmt: skip
    login = create_caseworker(plan)
    recipient = parse(next(iter(month.values()))).receipts[0].recipient_number
    found = terminal_get(plan, f"/api/receipts?recipient={recipient}", login)
    print(f"  terminal-1 (LGWAN) searched recipient {recipient} over HTTPS as {login[0]}: "
          f"{len(found['receipts'])} receipt(s)")  # fmt: skip
    trail = db_scalar(
        plan,
        "SELECT string_agg(action || CASE WHEN success THEN '' ELSE ' FAILED' END || ' from ' "
        "|| host(address), '; ' ORDER BY id) FROM audit_log WHERE actor = :'actor'",
        actor=login[0],
    )
    print(f"  audit log for {login[0]}: {trail}")
    return bool(found["receipts"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="lab", help="stack name: reads Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    started = time.monotonic()

    _step(1, f"check {args.stack} offline: program under Pulumi mocks, policy pack, proof")
    reports = lab.state_dir(args.stack).parent / "reports" / args.stack
    if check_main(["--stack", args.stack, "--report", str(reports)]) != 0:
        print("FAILED: the offline check found violations")
        return 1
    try:
        config = load_stack(args.stack, REPO)
    except ConfigError as exc:
        print(f"FAILED: {exc}")
        return 1

    _step(2, "bring up the lab (hosts, router, AWS endpoints)")
    report = lab.up(config)
    print(
        f"lab up in {report.seconds}s; image {report.image}"
        + (
            f" (built in {report.image_build_seconds:.0f}s)"
            if report.image_build_seconds
            else " (reused)"
        )
    )

    _step(3, "install with Ansible from the signed offline bundle (site.yml)")
    if not _install_step(report.inventory):
        return 1

    _step(4, "the fund delivers over SFTP; the intake loads; the terminal searches over HTTPS")
    if not _delivery_step(config):
        print("FAILED: the caseworker found nothing")
        return 1

    _step(5, "the router and every host's firewall enforce exactly the flow policy")
    plan = build_plan(config)
    ports = policy_ports(config)
    start_policy_listeners(plan, ports)
    try:
        observed = observe(plan, ports)
    finally:
        stop_policy_listeners(plan)
    bad = mismatches(config, observed)
    opened = sum(1 for v in observed.values() if v == "open")
    print(
        f"probed {len(observed)} (host, host, port) combinations across zones on ports "
        f"{', '.join(map(str, ports))}: {opened} open as allowed, "
        f"{len(observed) - opened - len(bad)} refused as denied"
    )
    for line in bad:
        print(f"MISMATCH {line}")
    if bad:
        return 1

    _step(6, "where everything is")
    st = lab.status(config)
    for h in st["hosts"]:
        print(f"  {h['name']:12} {h['zone']:10} {h['address']:15} {h['state']}/{h['systemd']}")
    print(f"  inventory      {report.inventory}")
    print(f"  ssh            python -m ops.lab ssh <host>   (config {report.state_dir}/ssh_config)")
    print(f"  AWS endpoints  {report.endpoint_url}  (CA {report.ca_cert})")
    print(f"  linkage report {reports / 'linkage-report.html'}")
    print("  tear down      make lab-down")
    print(
        f"\ndemo finished in {time.monotonic() - started:.0f}s: "
        + ("all steps passed" if st["healthy"] else "lab UNHEALTHY")
    )
    return 0 if st["healthy"] else 1


if __name__ == "__main__":
    sys.exit(main())
