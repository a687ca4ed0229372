"""Collect one environment's evidence into a pack directory.

Each artifact is the newest of its kind, copied as it was made (the signed review with its own
signature, the hosts' backup reports, the proof's linkage report) and summarised in
`Collected`, which the control matrix (controls.py) judges. Nothing here changes a host: the
hosts' settings are read by playbooks/evidence.yml (read-only probes). What cannot be collected
is recorded as a problem with its reason, and every control that depended on it fails: missing
evidence never passes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.config import StackConfig
from infra.cost import CostError, estimate, render_text
from infra.offline import DeclaredResource, Evaluation, evaluate
from infra.policy.rules import RULES, stack_violations
from infra.proof import prove_evaluation
from infra.proof.report import write_report
from ops import manifest
from ops.playbook import run_playbook
from ops.reviewlib.report import FILES, verify_manifest
from ops.status import BACKUP_MAX_AGE, DRILL_MAX_AGE, REVIEW_MAX_AGE, StatusError
from ops.status import parse_time as status_time

# Evidence older than its rule is stale: the fleet board's rules (ops/status.py), and a full
# read-back, a drill of the storage, as often as the drill.
VERIFY_MAX_AGE = DRILL_MAX_AGE
REVIEWS = Path("reports") / "access-review"  # beside the inventory (access_review_fetch_dir)
LEDGER = Path("rotation") / "ledger.jsonl"
REVIEW_FILES = (*FILES, manifest.SUMS, manifest.SIG, "allowed_signers")
MAX_HOST_FILE = 8 << 20  # a host's probe output is some tens of KiB; more is not a probe
BACKUP_COMMANDS = ("run", "verify", "drill")


@dataclass
class Artifact:
    """One piece of evidence: where it is in the pack, when it was made, and whether it is
    older than its rule allows."""

    kind: str
    path: str  # relative to the pack
    at: str | None  # ISO 8601, UTC
    stale: bool = False
    rule: str = ""  # e.g. "26 h"


@dataclass
class Collected:
    stack: str
    generated_at: str
    config: StackConfig
    network: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] | None = None
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> probe output
    backups: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> command -> report
    review: dict[str, Any] | None = None
    rotation: list[dict[str, Any]] | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be collected, and why

    @property
    def now(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.generated_at)

    def artifact(
        self, kind: str, path: str, at: str | None, max_age: dt.timedelta | None = None
    ) -> Artifact:
        stale = False
        if max_age is not None:
            when = parse_time(at)
            stale = when is None or self.now - when > max_age
        a = Artifact(kind, path, at, stale, _rule(max_age))
        self.artifacts.append(a)
        return a

    def summary(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "generated_at": self.generated_at,
            "network": self.network,
            "cost": None
            if self.cost is None
            else {
                k: self.cost[k]
                for k in (
                    "total_usd",
                    "total_yen",
                    "on_premises_total_yen",
                    "difference_yen",
                    "months",
                    "prices_as_of",
                )
            },
            "hosts": sorted(self.hosts),
            "backups": {
                h: {c: _backup_summary(r) for c, r in cmds.items()}
                for h, cmds in self.backups.items()
            },
            "review": self.review,
            "rotation": self.rotation,
            "audit": self.audit,
            "artifacts": [asdict(a) for a in self.artifacts],
            "problems": self.problems,
        }


def _rule(age: dt.timedelta | None) -> str:
    if age is None:
        return ""
    return f"{age.days} days" if age.days else f"{age.seconds // 3600} h"


def parse_time(value: object) -> dt.datetime | None:
    """An ISO time with its zone, or None: evidence with no readable time counts as stale."""
    try:
        return status_time(value, "evidence")
    except StatusError:
        return None


def _backup_summary(report: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "command",
        "ok",
        "snapshot",
        "time",
        "started",
        "retain_until",
        "immutability",
        "read_data",
        "problems",
        "restored",
        "packs",
        "repository",
    )
    out = {k: report[k] for k in keep if k in report}
    if isinstance(report.get("key"), dict):
        out["key"] = {k: v for k, v in report["key"].items() if k in ("kind", "kms_key_id")}
    return out


def network(c: Collected, ev: Evaluation, stack_file: Path, out: Path) -> None:
    """The proof's verdicts, the policy pack's result and the linkage report."""
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
    violations = stack_violations(ev.policy_view(), document, stack_file.name, ev.config)
    proof = prove_evaluation(ev)
    report = write_report(ev.config, proof, stack_file, out / "network")
    c.network = {
        "verdicts": {v.id: v.status for v in proof.verdicts},
        "counterexamples": {
            v.id: [x.summary for x in v.counterexamples[:5]]
            for v in proof.verdicts
            if v.counterexamples
        },
        "rules": len(RULES),
        "violations": [asdict(v) for v in violations],
        "config_sha256": report.config_sha256,
        "report": "network/" + report.html.name,
    }
    (out / "network" / "check.json").write_text(json.dumps(c.network, indent=2, ensure_ascii=False))
    c.artifact("network-proof", "network/check.json", c.generated_at)
    c.artifact("linkage-report", c.network["report"], c.generated_at)
    trail = ev.of_type("aws:cloudtrail/trail:Trail")
    c.audit = _audit(ev, trail)


def _audit(ev: Evaluation, trail: list[DeclaredResource]) -> dict[str, Any]:
    """What the program declares for the audit trail and encryption at rest."""
    # The trail's bucket by its name; its lock configuration refers to the bucket resource
    # (under the mocks its ID is the resource's name with -id).
    named = {str(b.inputs.get("bucket")): b.name for b in ev.of_type("aws:s3/bucket:Bucket")}
    trail_bucket = named.get(str(trail[0].inputs.get("s3BucketName"))) if trail else None
    locks = ev.bucket_settings("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    return {
        "trails": [
            {
                "name": t.name,
                "log_file_validation": bool(t.inputs.get("enableLogFileValidation")),
                "multi_region": bool(t.inputs.get("isMultiRegionTrail")),
                "kms": bool(t.inputs.get("kmsKeyId")),
                "bucket": t.inputs.get("s3BucketName"),
            }
            for t in trail
        ],
        "audit_lock": locks[trail_bucket].inputs.get("rule") if trail_bucket in locks else None,
        "volumes_encrypted": all(
            (r.inputs.get("rootBlockDevice") or {}).get("encrypted") is True
            and (r.inputs.get("rootBlockDevice") or {}).get("kmsKeyId")
            for r in ev.of_type("aws:ec2/instance:Instance")
        ),
        "log_group_kms": all(
            bool(g.inputs.get("kmsKeyId")) for g in ev.of_type("aws:cloudwatch/logGroup:LogGroup")
        ),
        "regions": sorted(
            {
                ev.config.region,
                *([ev.config.backup.replica_region] if ev.config.backup.replica_region else []),
            }
        ),
    }


def cost(c: Collected, ev: Evaluation, out: Path) -> None:
    try:
        result = estimate(ev)
    except CostError as e:
        c.problems.append(f"cost: {e}")
        return
    (out / "cost").mkdir()
    c.cost = result.as_dict()
    (out / "cost" / "cost.json").write_text(json.dumps(c.cost, indent=2, ensure_ascii=False))
    (out / "cost" / "cost.txt").write_text("\n".join(render_text(result)) + "\n")
    c.artifact("cost-estimate", "cost/cost.json", c.generated_at)


def hosts(c: Collected, inventory: Path, out: Path) -> None:
    """Every data-center host's settings and newest backup reports, through the read-only play."""
    directory = (out / "hosts").resolve()  # the play writes it from elsewhere: absolute
    directory.mkdir()
    run = run_playbook(inventory.resolve(), "evidence.yml", "-e", f"evidence_probe_dir={directory}")
    for host, counts in sorted(run.recap.items()):
        if counts.get("unreachable") or counts.get("failed"):
            why = "unreachable" if counts.get("unreachable") else "failed"
            said = re.search(rf"^fatal: \[{re.escape(host)}\]: \w+! => (.*)$", run.stdout, re.M)
            detail = f": {said.group(1)[:300]}" if said else ""
            c.problems.append(f"{host}: the evidence play could not read it ({why}){detail}")
    if not run.recap:
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        c.problems.append(f"evidence.yml did not run: {' / '.join(tail)[:400]}")
    for path in sorted(directory.glob("*.json")):
        data = _host_file(c, path)
        if data is None:
            continue
        host = path.stem
        c.hosts[host] = data
        c.artifact("host-settings", f"hosts/{path.name}", c.generated_at)
        reports = _reports(c, host, data.get("backup_reports"))
        if reports:
            c.backups[host] = reports
            _write_backups(c, out, host, reports)


def _host_file(c: Collected, path: Path) -> dict[str, Any] | None:
    if path.stat().st_size > MAX_HOST_FILE:
        c.problems.append(f"{path.name}: {path.stat().st_size} bytes, over {MAX_HOST_FILE}")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        c.problems.append(f"{path.name}: not the probe's JSON ({e})")
        return None
    wanted = {"host": str, "sshd": str, "nftables": str, "sockets": str, "units": str}
    wrong = [k for k, t in wanted.items() if not isinstance(data.get(k), t)]
    if not isinstance(data, dict) or wrong or data.get("host") != path.stem:
        c.problems.append(f"{path.name}: not the probe's output for {path.stem} ({wrong})")
        return None
    return dict(data)


def _reports(c: Collected, host: str, raw: object) -> dict[str, Any]:
    """The newest report of each backup command; for verify, the newest that read the data."""
    found: dict[str, Any] = {}
    for text in raw if isinstance(raw, list) else []:
        try:
            report = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            c.problems.append(f"{host}: a backup report that is not JSON")
            continue
        command = report.get("command") if isinstance(report, dict) else None
        if command not in BACKUP_COMMANDS:
            continue
        if command == "verify" and report.get("read_data") is not True:
            continue
        if command not in found or str(report.get("started")) > str(found[command].get("started")):
            found[command] = report
    return found


def _write_backups(c: Collected, out: Path, host: str, reports: dict[str, Any]) -> None:
    directory = out / "backups" / host
    directory.mkdir(parents=True)
    ages = {"run": BACKUP_MAX_AGE, "verify": VERIFY_MAX_AGE, "drill": DRILL_MAX_AGE}
    for command, report in reports.items():
        (directory / f"{command}.json").write_text(json.dumps(report, indent=2))
        at = report.get("time") if command == "run" else report.get("started")
        c.artifact(f"backup-{command}", f"backups/{host}/{command}.json", at, ages[command])


def review(c: Collected, inventory: Path, out: Path) -> None:
    """The newest signed access review, verified, and what changed since the one before."""
    root = inventory.parent / REVIEWS
    runs = (
        sorted(p for p in root.glob("*") if (p / "review.json").is_file()) if root.is_dir() else []
    )
    if not runs:
        c.problems.append(f"access review: none fetched to {root}")
        return
    newest = runs[-1]
    problems = verify_manifest(newest, newest / "allowed_signers", "claims-dc-access-review")
    problems += _copy_review(newest, out / "review" / newest.name)
    if problems:
        c.problems.append(f"access review {newest.name}: {'; '.join(problems)}")
    data = _review_json(c, newest / "review.json")
    if data is None:
        return
    previous = _review_json(c, runs[-2] / "review.json") if len(runs) > 1 else None
    diff = review_diff(data, previous)
    (out / "review" / "diff.json").write_text(json.dumps(diff, indent=2, ensure_ascii=False))
    at = _run_time(newest.name) or (
        f"{data['review_date']}T00:00:00+00:00"
        if isinstance(data.get("review_date"), str)
        else None
    )
    c.review = {
        "run": newest.name,
        "verdict": data.get("verdict"),
        "signature": "verifies" if not problems else "; ".join(problems),
        "signed": not problems,
        "scopes": [
            {k: s.get(k) for k in ("system", "status", "population", "reason")}
            for s in data.get("scopes", [])
        ],
        "findings": [
            {k: f.get(k) for k in ("id", "check", "severity", "system", "account")}
            for f in data.get("findings", [])
        ],
        "suppressed": len(data.get("suppressed", [])),
        "at": at,
        "diff": diff,
    }
    c.artifact("access-review", f"review/{newest.name}/review.html", at, REVIEW_MAX_AGE)
    c.artifact("access-review-diff", "review/diff.json", at)


def _copy_review(run: Path, target: Path) -> list[str]:
    """The review's own files into the pack, as they are: a symlink is not followed (it could
    bring any file of the control node into the pack) and counts against the review."""
    target.mkdir(parents=True)
    problems = []
    for name in REVIEW_FILES:
        source = run / name
        if source.is_symlink():
            problems.append(f"access review {run.name}: {name} is a symlink; not copied")
        elif source.is_file():
            shutil.copyfile(source, target / name)
    return problems


def _review_json(c: Collected, path: Path) -> dict[str, Any] | None:
    try:
        if path.is_symlink() or path.stat().st_size > MAX_HOST_FILE:
            raise ValueError("a symlink, or over 8 MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        c.problems.append(f"access review {path.parent.name}: review.json unreadable ({e})")
        return None
    return data


def _run_time(name: str) -> str | None:
    """The time a review ran, from its directory's name (20261203T235539Z)."""
    try:
        when = dt.datetime.strptime(name, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return when.isoformat()


def _key(finding: dict[str, Any]) -> tuple[str, str, str]:
    return str(finding.get("check")), str(finding.get("system")), str(finding.get("account"))


def review_diff(newest: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Findings new since the previous review, resolved since it, and still open."""
    now = {_key(f): f for f in newest.get("findings", [])}
    before = {_key(f): f for f in (previous or {}).get("findings", [])}

    def rows(keys: set[tuple[str, str, str]]) -> list[dict[str, str]]:
        return [dict(zip(("check", "system", "account"), k, strict=True)) for k in sorted(keys)]

    return {
        "previous": None if previous is None else str(previous.get("review_date", "")),
        "new": rows(set(now) - set(before)),
        "resolved": rows(set(before) - set(now)),
        "still_open": rows(set(now) & set(before)),
    }


def rotation(c: Collected, inventory: Path, out: Path) -> None:
    """Each secret's last rotation, its age and outcome, and whether it is due, from the ledger."""
    from ops.rotation.driver import KINDS, Site, due_calendar
    from ops.rotation.ledger import Ledger, LedgerError

    ledger = Ledger(inventory.parent / LEDGER)
    try:
        site = Site.read(inventory)
        entries = ledger.entries()
        calendar = due_calendar(site, list(KINDS), ledger)
    except (LedgerError, OSError, ValueError) as e:
        c.problems.append(f"rotation ledger: {e}")
        return
    last = {e.secret: e for e in entries}
    c.rotation = [
        {
            "secret": d.secret,
            "status": d.status,
            "every_days": d.every_days,
            "last_rotated": d.last_rotated,
            "age_days": d.age_days,
            "due_on": d.due_on,
            "last_phase": last[d.secret].phase if d.secret in last else None,
            "last_outcome": last[d.secret].outcome if d.secret in last else None,
        }
        for d in calendar
    ]
    (out / "rotation").mkdir()
    (out / "rotation" / "summary.json").write_text(json.dumps(c.rotation, indent=2))
    newest = max((e.at for e in entries), default=None)
    c.artifact("rotation-ledger", "rotation/summary.json", newest)


def collect(
    stack_file: Path,
    config: StackConfig,
    inventory: Path,
    out: Path,
    now: dt.datetime | None = None,
) -> Collected:
    """Every artifact into `out` (an empty directory), summarised."""
    now = now or dt.datetime.now(dt.UTC)
    c = Collected(config.stack, now.isoformat(timespec="seconds"), config)
    ev = evaluate(stack_file)
    network(c, ev, stack_file, out)
    cost(c, ev, out)
    hosts(c, inventory, out)
    review(c, inventory, out)
    rotation(c, inventory, out)
    return c
