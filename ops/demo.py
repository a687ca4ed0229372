"""python -m ops.demo: a day in the life of one municipality, on the local lab.

Each capability adds its step. Results go to stdout, progress to stderr; exit 0 when every step
passed, 1 when one failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from infra.check import main as check_main
from infra.config import ConfigError, load_stack
from ops.lab import lab
from ops.lab.plan import build_plan
from ops.lab.probes import (
    mismatches,
    observe,
    policy_ports,
    start_policy_listeners,
    stop_policy_listeners,
)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _step(n: int, title: str) -> None:
    print(f"\n== {n}. {title}", flush=True)


def _claimapp_step() -> bool:
    """Ingest a synthetic month (one broken file among them), search it as a caseworker, and
    show what the audit log recorded."""
    import secrets
    import tempfile

    import psycopg

    from claimapp.accounts import Policy, create_user
    from claimapp.generate import claim_file
    from claimapp.intake import ingest
    from claimapp.localpg import local_cluster
    from claimapp.web import create_app

    with local_cluster() as dsns, tempfile.TemporaryDirectory() as tmp:
        drop = Path(tmp) / "incoming"
        drop.mkdir()
        for seed in range(1, 4):
            (drop / f"{seed:07d}.UKE").write_bytes(claim_file(seed, receipts=200))
        (drop / "broken.UKE").write_bytes(claim_file(9, receipts=200, bad="totals"))
        with psycopg.connect(dsns["app"], autocommit=True) as app_conn:
            for path in sorted(drop.iterdir()):
                r = ingest(path, app_conn, Path(tmp) / "quarantine", Path(tmp) / "processed")
                print(
                    f"  {r.file}: "
                    + (
                        f"loaded {r.receipts} receipts"
                        if r.loaded
                        else f"quarantined ({r.reason}): {r.message}"
                    )
                )
            row = app_conn.execute("SELECT recipient_number FROM receipts LIMIT 1").fetchone()
        with psycopg.connect(dsns["owner"], autocommit=True) as owner:
            password = secrets.token_urlsafe(18)  # a throwaway account: made up for this run
            create_user(owner, "demo.kato", "caseworker", password)
        client = create_app(dsns["app"], Policy(), secure_cookies=False).test_client()
        client.post("/api/login", json={"username": "demo.kato", "password": password})
        found = client.get(f"/api/receipts?recipient={row[0] if row else ''}").get_json()
        print(
            f"  caseworker demo.kato searched recipient {row[0] if row else '?'}: "
            f"{len(found['receipts'])} receipt(s)"
        )
        with psycopg.connect(dsns["owner"]) as owner:
            trail = owner.execute(
                "SELECT actor, action, success FROM audit_log ORDER BY id"
            ).fetchall()
        print(
            "  audit log: " + "; ".join(f"{a} {b} {'ok' if c else 'FAILED'}" for a, b, c in trail)
        )
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

    _step(3, "Ansible reaches every host and confirms the closed baseline")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    play = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", report.inventory,
         str(REPO / "playbooks" / "lab_baseline.yml")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    recap = play.stdout[play.stdout.find("PLAY RECAP") :].strip()
    print(recap or play.stdout[-2000:])
    if play.returncode != 0:
        print(f"FAILED: ansible-playbook exit {play.returncode}\n{play.stderr[-2000:]}")
        return 1

    _step(4, "the router enforces exactly the flow policy")
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
        f"{len(observed) - opened - len(bad)} refused by the router as denied"
    )
    for line in bad:
        print(f"MISMATCH {line}")
    if bad:
        return 1

    _step(5, "the claim application, on a private PostgreSQL on this machine")
    if not _claimapp_step():
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
