"""claims-dc demo: a day in the life of one municipality, on the local lab.

Each capability adds its step. Results go to stdout, progress to stderr; exit 0 when every step
passed, 1 when one failed, 2 usage. It prints a narrative, so it has no --json. Its steps run
the tools through `claims-dc`, as an operator would.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from claimapp.generate import claim_file
from claimapp.uke import parse
from infra.check import main as check_main
from infra.config import ConfigError, StackConfig, load_file, load_stack
from infra.offline import DeclaredResource, evaluate
from infra.proof import prove_evaluation
from infra.proof.verdicts import HOLDS
from lab import backups, disaster, lab, review, rotation
from lab.delivery import (
    create_caseworker,
    db_scalar,
    quarantined,
    receipt_count,
    sftp_upload,
    terminal_browser,
    terminal_get,
    wait_for,
)
from lab.lab import UpReport
from lab.plan import build_plan
from lab.probes import (
    mismatches,
    observe,
    policy_ports,
    start_policy_listeners,
    stop_policy_listeners,
)
from ops.cli import run_tool
from ops.playbook import run_playbook
from ops.vault.scan import plaintext_secrets

REPO = Path(__file__).resolve().parent.parent
# The console script beside this Python: the steps run the tools as an operator does.
CLAIMS_DC = str(Path(sys.executable).parent / "claims-dc")


def _step(n: int, title: str) -> None:
    print(f"\n== {n}. {title}", flush=True)


# What a careless engineer or an attacker could add to the stack: each must leave no HOLDS.
CARELESS_ADDITIONS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("a third party's PrivateLink endpoint", "aws:ec2/vpcEndpoint:VpcEndpoint", "demo-relay", {
        "vpcId": "segment-vpc-id", "vpcEndpointType": "Interface",
        "serviceName": "com.amazonaws.vpce.ap-northeast-1.vpce-svc-0123456789abcdef0",
        "subnetIds": ["segment-endpoints-ap-northeast-1a-id"]}),
    ("a route to a prefix list nothing declares", "aws:ec2/route:Route", "demo-pl-route", {
        "routeTableId": "segment-app-rt-id", "destinationPrefixListId": "pl-0abc1234",
        "transitGatewayId": "lgwan-tgw-id"}),
    ("half of the internet through the LGWAN line", "aws:ec2/route:Route", "demo-half", {
        "routeTableId": "segment-app-rt-id", "destinationCidrBlock": "128.0.0.0/1",
        "transitGatewayId": "lgwan-tgw-id"}),
)  # fmt: skip


def _fails_closed_step(stack_file: Path) -> bool:
    """Step 1, continued: the same evaluation with one careless addition at a time."""
    ev = evaluate(stack_file)
    ok = True
    for what, type_token, name, inputs in CARELESS_ADDITIONS:
        extra = DeclaredResource(type_token, name, inputs)
        proof = prove_evaluation(dataclasses.replace(ev, resources=[*ev.resources, extra]))
        verdicts = " ".join(f"{v.id}={v.status}" for v in proof.verdicts)
        print(f"  + {what:44} {verdicts}")
        ok = ok and not any(v.status == HOLDS for v in proof.verdicts if v.id == "closed")
    return ok


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


def _recovery_step(config: StackConfig) -> bool:
    """Step 9: a delivery loaded and searched, db-1's container destroyed with everything in
    it, made anew, and restore.yml run: the cluster from its base backup with the WAL archive
    replayed to the end; the same search from the LGWAN terminal finds the same receipts."""
    try:
        loss = disaster.lose_and_restore(config, ["db-1"], to_point=False)
    except (RuntimeError, TimeoutError) as exc:
        print(f"  {exc}")
        return False
    s = loss.seconds
    print(f"  loaded and searched, daily backup taken, more loaded and searched; the WAL "
          f"holding it archived {s['archive_wait']:.0f}s later (archive_timeout)")  # fmt: skip
    phases = ", ".join(f"{name} {s.get(name, 0):.0f}s" for name in disaster.PHASE_NAMES)
    print(f"  db-1 destroyed; hosts back in {s['hosts']:.0f}s; restore.yml in "
          f"{s['restore']:.0f}s ({phases})")  # fmt: skip
    rows = f"{len(loss.audit_ids_after_restore)} of {len(loss.audit_ids_at_point)} audit rows"
    print(f"  recovered to {loss.recovered_to}: {loss.receipts_after_restore} receipts "
          f"(before the loss {loss.receipts_at_point}); {rows}")  # fmt: skip
    print(f"  RTO (hosts gone to the terminal's search answering): {s['total']:.0f}s; "
          f"searched {loss.searched_before} before, {loss.searched} after")  # fmt: skip
    return (loss.searched == loss.searched_before
            and loss.receipts_after_restore == loss.receipts_at_point
            and loss.audit_ids_after_restore == loss.audit_ids_at_point)  # fmt: skip


def _delivery_step(config: StackConfig, ca_cert: str, shots: Path) -> bool:
    """Step 4: the fund delivers a month over SFTP, the intake loads it, a caseworker on the
    LGWAN terminal searches it over HTTPS: through the JSON API, then through the pages in
    headless Chromium (a screenshot of each page in `shots`)."""
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
    login = create_caseworker(plan, review.CASEWORKER)
    recipient = parse(next(iter(month.values()))).receipts[0].recipient_number
    found = terminal_get(plan, f"/api/receipts?recipient={recipient}", login)
    print(f"  terminal-1 (LGWAN) searched recipient {recipient} over HTTPS as {login[0]}: "
          f"{len(found['receipts'])} receipt(s)")  # fmt: skip
    visit = terminal_browser(plan, login, recipient, shots, ca_cert)
    for page in visit["pages"]:
        print(f"  Chromium on terminal-1: {page['name']:10} {page['title']}  {page['url']}")
    if not visit["ok"]:
        print(f"FAILED: the caseworker's pages in Chromium: {visit['error']}")
        return False
    print(f"  screenshots of every page in {shots}/")
    trail = db_scalar(
        plan,
        "SELECT string_agg(action || CASE WHEN success THEN '' ELSE ' FAILED' END || ' from ' "
        "|| host(address), '; ' ORDER BY id) FROM (SELECT * FROM audit_log "
        "WHERE actor = :'actor' ORDER BY id DESC LIMIT 2) recent",
        actor=login[0],
    )
    print(f"  audit log for {login[0]}: {trail}")
    return bool(found["receipts"])


def _backup_step(config: StackConfig, inventory: str, ca_cert: str, endpoint_url: str,
                 bucket: str) -> bool:  # fmt: skip
    """Step 5: the daily backup now (the timer's unit), verified, drilled and locked."""
    run = run_playbook(inventory, "daily_backup.yml")
    print(f"  daily_backup.yml   {run.seconds:6.1f}s  backups on {', '.join(sorted(run.recap))}")
    if not run.ok:
        print(f"FAILED: daily_backup.yml\n{run.stdout[-3000:]}\n{run.stderr[-1500:]}")
        return False
    plan = build_plan(config)
    s3 = backups.s3_client(endpoint_url, ca_cert)
    reports: dict[str, dict[str, Any]] = {}
    for role in backups.BACKUP_ROLES:
        host = plan.first(role)
        r = reports[role] = backups.last_report(host)
        z = r["sizes"]
        sources = ", ".join(f"{s['name']} ({s['entries']})" for s in r["sources"])
        print(f"  {host.name:9} snapshot {r['snapshot'][:12]}  {sources}")
        print(f"            logical {z['logical']:,} B, new {z['new']:,} B, "
              f"stored {z['stored']:,} B, {len(r['objects'])} objects, COMPLIANCE until "
              f"{r['retain_until'][:10]}, key {r['key']['kms_key_id'].rsplit('/', 1)[1][:8]}"
              "... (KMS)")  # fmt: skip
    db = plan.first("db")
    code, verify = backups.backup_cli(db, "verify", "--read-data")
    packs = f"{verify['packs']} pack{'' if verify['packs'] == 1 else 's'}"
    print(f"  verify --read-data on db-1: {packs} read back, "
          f"{len(verify['problems'])} problems")  # fmt: skip
    code2, drill = backups.backup_cli(db, "drill")
    if code2 == 0:
        print(f"  drill: snapshot {drill['snapshot'][:12]} restored into a scratch PostgreSQL: "
              f"{drill['restored']['tables']} tables, {drill['restored']['rows']:,} rows; row "
              "counts and pg_dump identical to the live database")  # fmt: skip
    else:
        print(f"  drill FAILED: {drill.get('problems') or drill.get('error')}")
    snap = next(o for o in reports["db"]["objects"] if o["key"].startswith("snapshots/"))
    answer = backups.try_delete(s3, bucket, "db", snap)
    print(
        f"  deleting db's snapshot object by hand (version {snap['version_id'][:8]}...): {answer}"
    )
    return code == 0 and code2 == 0 and answer == "AccessDenied"


def _review_step(config: StackConfig, inventory: str, ca_cert: str, endpoint_url: str) -> bool:
    """Step 6: the access review from the bastion, with three problems seeded."""
    plan = build_plan(config)
    inventory_dir = Path(inventory).parent
    for what, where in review.seed(plan, inventory_dir, endpoint_url, ca_cert).items():
        print(f"  seeded {what:16} {where}")
    run = run_playbook(inventory, "access_review.yml")
    print(f"  access_review.yml  {run.seconds:6.1f}s  from bastion-1 over {len(run.recap)} hosts")
    if not run.ok:
        print(f"FAILED: access_review.yml\n{run.stdout[-3000:]}\n{run.stderr[-1500:]}")
        return False
    out = review.latest_report(inventory_dir)
    if out is None:
        print("FAILED: no review was fetched")
        return False
    r = review.read_report(out)
    for s in r["scopes"]:
        print(f"  {s['system']:16} {s['status']:10} {s['population']:4} accounts  {s['reason']}")
    for f in r["findings"]:
        print(f"  {f['severity']:8} {f['id']}  {f['evidence']}")
    print(f"  {len(r['suppressed'])} findings suppressed by the exceptions register (reasons, "
          "approvers and expiry in the report)")  # fmt: skip
    problems = review.verify(out)
    print(f"  verdict {r['verdict']}; signed manifest: {'; '.join(problems) or 'verifies'}")
    print(f"  report         {out / 'review.html'} (and review.csv, review.json)")
    got = {(f["check"], f["system"], f["account"]) for f in r["findings"]}
    want = review.seeded_findings(plan)
    for missing in sorted(want - got):
        print(f"  MISSED seeded problem {missing}")
    for extra in sorted(got - want):
        print(f"  UNEXPECTED finding {extra}")
    return got == want and r["verdict"] == "FINDINGS" and not problems


def _rotation_step(config: StackConfig, inventory: str, ca_cert: str, endpoint_url: str) -> bool:
    """Step 8: every key rotated: all to `published` (the intake host's new key announced to
    the fund), the fund confirms and switches, all to `retired`; then the same command again
    starts nothing, and the calendar says when each secret is due next."""
    plan = build_plan(config)
    state = Path(inventory).parent
    started = time.monotonic()
    first, second = rotation.rotate_everything(plan, Path(inventory), endpoint_url, ca_cert)
    seconds = time.monotonic() - started
    for o in first:
        if o.outcome not in ("ok", "checked"):
            print(f"  {o.secret:22} {o.outcome} {o.error}")
    sent = sorted((state / "rotation" / "notices" / "sent").glob("host-key-*.txt"))
    print(f"  pass 1: {len(first)} secrets to published (both credentials work, ahead of the "
          "calendar: --early); intake-1's new host key announced to the fund")  # fmt: skip
    if sent:
        ja = sent[-1].read_text(encoding="utf-8").splitlines()
        print(f"  notice to the fund ({sent[-1].name}, JA/EN): {ja[2]} / {ja[5].strip()}")
    print("  the fund's client learnt the new key on a delivery (UpdateHostKeys), the fund "
          "confirmed it and switched to its new SFTP key")  # fmt: skip
    for o in second:
        what = o.error if o.outcome == "checked" else f"{o.old[:28]} -> {o.new[:28]}"
        print(f"  {o.secret:22} {o.outcome:8} {o.reached or '-':9} {what}")
    print(f"  rotated everything in {seconds:.0f}s; ledger {state / 'rotation' / 'ledger.jsonl'}")
    print(f"  the fund's old key refused: {not rotation.fund_logs_in(plan, 'id_ed25519.old')}; "
          f"its new key works: {rotation.fund_logs_in(plan)}; its client holds only intake-1's "
          f"new host key: {len(rotation.fund_known_fingerprints(plan)) == 1}")  # fmt: skip
    again = rotation.Round(plan, Path(inventory), endpoint_url, ca_cert).run_again()
    started_again = [o.secret for o in again if o.rotation]
    not_due = sum(o.outcome == "not-due" for o in again)
    print(f"  the same command again (claims-dc rotate all): {not_due} secrets "
          f"not due, {len(started_again)} started{': ' if started_again else ''}"
          f"{', '.join(started_again)}")  # fmt: skip
    calendar = rotation.due_now(Path(inventory))
    nearest = min(calendar, key=lambda d: d.due_on or "")
    print(f"  rotate --due: {sum(d.status == 'not-due' for d in calendar)} of {len(calendar)} "
          f"not due; next: {nearest.secret} on {nearest.due_on}")  # fmt: skip
    # The new secrets went into the vault: nothing beside the inventory is a plaintext secret.
    leaks = plaintext_secrets(state)
    for leak in leaks:
        print(f"  PLAINTEXT {leak}")
    print(f"  plaintext secrets beside the inventory (claims-dc vault check): {len(leaks)}")
    ok = all(o.outcome in ("ok", "checked") for o in second) and rotation.fund_logs_in(plan)
    return ok and not leaks and not started_again


def _fleet_step(config: StackConfig, inventory: str, ca_cert: str, endpoint_url: str,
                reports: Path) -> bool:  # fmt: skip
    """Step 10: a second municipality onboarded beside the lab, the fleet checked, and the
    board: the lab (green, from what its hosts published in the steps above), 大牟田市
    simulated with a drill 40 days old (amber), and 福岡市 onboarded but never deployed, so
    its status cannot be read (red)."""
    import shutil
    import subprocess

    from lab.fleet import OPERATIONS_ACCOUNT, Ages, fill, simulate
    from lab.plan import AWS_PLACEHOLDER_CONFIG
    from ops.awsapi import Endpoint
    from ops.fleet.__main__ import main as fleet_main

    directory = Path(inventory).parent / "fleet"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    shutil.copy(REPO / f"Pulumi.{config.stack}.yaml", directory)
    made = []
    for n, (code, name) in enumerate((("402028", "大牟田市"), ("401307", "福岡市")), start=1):
        argv = ["new", "--code", code, "--name", name, "--fleet", str(directory),
                "--operations-account", OPERATIONS_ACCOUNT]  # fmt: skip
        print(f"  claims-dc fleet {' '.join(argv[:5])}")
        if fleet_main(argv) != 0:
            return False
        path = directory / f"Pulumi.{code}.yaml"
        fill(path, n)  # what the municipality and the fund tell us
        made.append(path)
    print("  (their blanks filled with documentation values)")
    checked = fleet_main(["check", "--fleet", str(directory)])
    print(f"  claims-dc fleet check: exit {checked}")
    if checked != 0:
        return False
    aws_config = str(Path(inventory).parent / AWS_PLACEHOLDER_CONFIG)
    endpoint = Endpoint(endpoint_url, config.region, ca_cert, aws_config)
    simulate(endpoint, load_file(made[0]), Ages(drill_days=40))
    print(f"  {made[0].name}: simulated, its last drill 40 days ago; {made[1].name}: never "
          "deployed")  # fmt: skip
    out = reports / "fleet"
    board = subprocess.run(
        [CLAIMS_DC, "--json", "fleet", "status", "--fleet", str(directory), "--out",
         str(out), "--aws-endpoint", endpoint_url, "--aws-ca", ca_cert],
        capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
        env={**os.environ, "AWS_CONFIG_FILE": aws_config},
    )  # fmt: skip
    try:
        tenants = {t["stack"]: t for t in json.loads(board.stdout)["tenants"]}
    except (json.JSONDecodeError, KeyError):
        print(f"FAILED: the board printed no JSON: {board.stderr[-1500:]}")
        return False
    for stack, t in tenants.items():
        print(f"  {t['colour']:6} {t['code']:6} {stack:10} {t['name']}")
        for f in t["findings"]:
            print(f"           {f['rule']:18} {f['ja']}: {f['detail'][:90]}")
    print(f"  claims-dc fleet status: exit {board.returncode} (a tenant is red); board "
          f"{out / 'board.html'} (and board.csv, board.json)")  # fmt: skip
    want = {config.stack: "green", "402028": "amber", "401307": "red"}
    colours = {s: t["colour"] for s, t in tenants.items()}
    if colours != want:
        print(f"FAILED: the board says {colours}, expected {want}")
        return False
    # One playbook over the fleet: the lab's own inventory runs; the other two have none.
    runs_dir = Path(inventory).parent / "fleet-runs"
    argv = ["run", "daily_backup.yml", "--fleet", str(directory), "--inventories",
            str(Path(inventory).parent.parent), "--out", str(runs_dir), "--json"]  # fmt: skip
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        ran = fleet_main(argv)
    summary = json.loads(captured.getvalue())
    print(f"  claims-dc fleet run daily_backup.yml (4 tenants at most at once): exit {ran}, "
          f"{time.monotonic() - started:.0f}s")  # fmt: skip
    for t in summary["tenants"]:
        print(f"    {t['stack']:10} {t['status']:12} {t['log'] or t['error']}")
    statuses = {t["stack"]: t["status"] for t in summary["tenants"]}
    expected = {config.stack: "successful", "402028": "no-inventory", "401307": "no-inventory"}
    return board.returncode == 1 and ran == 1 and statuses == expected


def _evidence_step(config: StackConfig, inventory: str, reports: Path) -> bool:
    """Step 11: the evidence pack for the privacy council: every artifact of the steps above
    judged in the control matrix, signed and verified; then a copy with one file edited,
    which verify names."""
    import shutil
    import subprocess

    from ops.evidence import pack

    out = reports / "evidence"
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    made = subprocess.run(
        [CLAIMS_DC, "evidence", "--stack", config.stack, "-i", inventory,
         "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=900, check=False, cwd=REPO,
    )  # fmt: skip
    try:
        result = json.loads(made.stdout)
    except json.JSONDecodeError:
        print(f"FAILED: claims-dc evidence printed no JSON: {made.stderr[-1500:]}")
        return False
    n = result["counts"]
    print(f"  claims-dc evidence --stack {config.stack} -i {inventory} --out {out}: exit "
          f"{made.returncode}, {time.monotonic() - started:.0f}s")  # fmt: skip
    print(f"  control matrix: {n['PASS']} PASS, {n['FAIL']} FAIL, {n['NOT COVERED']} NOT COVERED"
          f" ({n['stale']} on stale evidence)")  # fmt: skip
    for row in result["matrix"]:
        if row["status"] == "FAIL":
            print(f"    FAIL {row['id']:12} {row['detail'][:110]}")
    for problem in result["problems"]:
        print(f"    NOT COLLECTED {problem}")
    cost = json.loads((out / "cost" / "cost.json").read_text(encoding="utf-8"))
    print(f"  cost: {cost['months'] // 12} years {cost['total_yen']:,} yen against "
          f"{cost['on_premises_total_yen']:,} yen on premises: {cost['difference_yen']:,} yen "
          f"saved (claims-dc check --stack {config.stack} --cost)")  # fmt: skip
    signers = pack.trusted_signers()
    problems = pack.verify(out, signers)
    verdict = "; ".join(problems) or "signature and every file verify"
    print(f"  claims-dc evidence verify {out}: {verdict}")
    tampered = out.parent / "evidence-tampered"
    shutil.rmtree(tampered, ignore_errors=True)
    shutil.copytree(out, tampered)
    edited = sorted(tampered.glob("backups/*/drill.json")) or [tampered / "evidence.json"]
    edited[0].write_text(edited[0].read_text().replace('"ok": true', '"ok": false'))
    caught = pack.verify(tampered, signers)
    name = edited[0].relative_to(tampered)
    print(f"  a copy with {name} edited: {'; '.join(caught) or 'NOT CAUGHT'}")
    shutil.rmtree(tampered)
    print(f"  pack {out / 'evidence.html'} (and evidence.json, SHA256SUMS, SHA256SUMS.sig)")
    # The lab's access review still holds the three problems step 6 seeded: that one control
    # fails, and it must be the only one.
    failing = {row["id"] for row in result["matrix"] if row["status"] == "FAIL"}
    return (made.returncode == 1 and failing == {"AUTH-NEED"} and not result["problems"]
            and not problems and bool(caught))  # fmt: skip


def _offline_step(stack: str, reports: Path) -> bool:
    if check_main(["--stack", stack, "--report", str(reports)]) != 0:
        print("FAILED: the offline check found violations")
        return False
    print("  the proof fails closed: what it cannot follow is never HOLDS")
    if not _fails_closed_step(REPO / f"Pulumi.{stack}.yaml"):
        print("FAILED: a careless addition left the network proved closed")
        return False
    return True


def _flows_step(config: StackConfig) -> bool:
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
    return not bad


def _where_everything_is(
    config: StackConfig, report: UpReport, reports: Path, started: float
) -> int:
    st = lab.status(config)
    for h in st["hosts"]:
        print(f"  {h['name']:12} {h['zone']:10} {h['address']:15} {h['state']}/{h['systemd']}")
    print(f"  inventory      {report.inventory}")
    print(f"  ssh            claims-dc lab ssh <host>   (config {report.state_dir}/ssh_config)")
    print(f"  AWS endpoints  {report.endpoint_url}  (CA {report.ca_cert})")
    print(f"  linkage report {reports / 'linkage-report.html'}")
    print(
        f"  backups        s3://{report.aws['backup_bucket']}/<db|intake|app>; on each host "
        "`sudo claims-dc-backup list`, reports in /var/lib/claims-dc-backup/reports/"
    )
    print(
        f"  access review  {Path(report.inventory).parent / review.REPORTS}/<time>/review.html; "
        "on bastion-1 `sudo -u claims-dc-review claims-dc-access-review --help`"
    )
    print(
        f"  key rotation   claims-dc rotate --due -i {report.inventory}; "
        "the calendar; ledger in rotation/ledger.jsonl beside the inventory"
    )
    print(f"  fleet board    {reports / 'fleet' / 'board.html'}; claims-dc fleet status "
          "--fleet DIR (the demo's fleet is .lab/lab/fleet)")  # fmt: skip
    print(f"  evidence pack  {reports / 'evidence' / 'evidence.html'}; claims-dc evidence "
          f"verify {reports / 'evidence'}")  # fmt: skip
    print("  tear down      make lab-down")
    print(
        f"\ndemo finished in {time.monotonic() - started:.0f}s: "
        + ("all steps passed" if st["healthy"] else "lab UNHEALTHY")
    )
    return 0 if st["healthy"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claims-dc demo",
        description=__doc__,
        epilog="examples:\n  claims-dc demo --stack lab     the lab of Pulumi.lab.yaml\n"
        "  make demo                      the same, after setting up what it needs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="lab", help="stack name: reads Pulumi.<stack>.yaml")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_tool("claims-dc demo", build_parser(), _day, argv)


def _day(args: argparse.Namespace) -> int:
    """The steps in order; each prints what it shows, and the first that fails ends the day."""
    started = time.monotonic()

    _step(1, f"check {args.stack} offline: program under Pulumi mocks, policy pack, proof")
    reports = lab.state_dir(args.stack).parent / "reports" / args.stack
    if not _offline_step(args.stack, reports):
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

    _step(
        4,
        "the fund delivers over SFTP; the intake loads; a caseworker on the LGWAN terminal "
        "searches over HTTPS, through the API and in Chromium through the pages",
    )
    if not _delivery_step(config, report.ca_cert, reports / "pages"):
        print("FAILED: the caseworker found nothing")
        return 1

    _step(5, "the daily backup: run, verify, drill a restore into a scratch database, locked")
    if not _backup_step(config, report.inventory, report.ca_cert, report.endpoint_url,
                        str(report.aws["backup_bucket"])):  # fmt: skip
        print("FAILED: the backup step")
        return 1

    _step(6, "the access review from the bastion: every account against the staff roster")
    if not _review_step(config, report.inventory, report.ca_cert, report.endpoint_url):
        print("FAILED: the access review step")
        return 1

    _step(7, "the router and every host's firewall enforce exactly the flow policy")
    if not _flows_step(config):
        return 1

    _step(8, "rotate every key: SSH user CA, host keys, DB login, TLS, AWS key, the fund's key")
    if not _rotation_step(config, report.inventory, report.ca_cert, report.endpoint_url):
        print("FAILED: the rotation step")
        return 1

    _step(9, "disaster recovery: db-1 destroyed, brought back by restore.yml (base + WAL)")
    if not _recovery_step(config):
        print("FAILED: the disaster recovery step")
        return 1

    _step(10, "the fleet: a second municipality onboarded, the fleet checked, the status board")
    if not _fleet_step(config, report.inventory, report.ca_cert, report.endpoint_url, reports):
        print("FAILED: the fleet step")
        return 1

    _step(11, "the evidence pack for the privacy council: control matrix, cost, signed")
    if not _evidence_step(config, report.inventory, reports):
        print("FAILED: the evidence step")
        return 1

    _step(12, "where everything is")
    return _where_everything_is(config, report, reports, started)


if __name__ == "__main__":
    sys.exit(main())
