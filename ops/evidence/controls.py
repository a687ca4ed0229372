"""The control matrix: each requirement of controls.yml judged from the collected evidence.

A requirement with a `check` is PASS or FAIL by the function of that name below; one with
`not_covered` is NOT COVERED with its reason, and is listed all the same: a matrix that left out
what it cannot prove would look better than the environment is. A check fails when its
evidence is missing, unreadable or stale; it never passes on evidence it did not see.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import ALLOWED_REGIONS, BACKUP_WRITER_ROLES, DATACENTER_ROLES, DRILL_ROLES
from ops.evidence.collect import Artifact, Collected

CONTROLS = Path(__file__).with_name("controls.yml")
PASS, FAIL, NOT_COVERED = "PASS", "FAIL", "NOT COVERED"
STATUSES = (PASS, FAIL, NOT_COVERED)
# Listening on these is expected beyond the flow policy, each for its reason.
EXTRA_LISTENERS = {
    ("mgmt", 22): "the operators' way in: Session Manager forwards to the bastion's sshd",
}
OUR_UNITS = ("claimapp-web.service", "claimapp-intake.service", "claims-dc-backup.service")
# Units that run as root on purpose: the backup reads every source it is given.
ROOT_UNITS = {"claims-dc-backup.service": "reads the sources it backs up, confined otherwise"}
SSHD_REQUIRED = {
    "passwordauthentication": "no",
    "kbdinteractiveauthentication": "no",
    "permitrootlogin": "no",
    "permitemptypasswords": "no",
    "pubkeyauthentication": "yes",
}
ANY_ADDRESS = ("all", "0.0.0.0", "::")  # noqa: S104 (read from pg_hba, not bound to)
DB_AUTH_METHODS = ("scram-sha-256", "cert", "peer", "reject")


@dataclass
class Row:
    id: str
    guideline: str
    section: str
    section_confirmed: bool
    ja: str
    en: str
    status: str
    detail: str
    artifacts: list[str]  # paths in the pack
    evidence_at: str | None
    stale: bool


@dataclass
class Result:
    status: str
    detail: str
    artifacts: list[Artifact]


def load() -> dict[str, Any]:
    data = yaml.safe_load(CONTROLS.read_text(encoding="utf-8"))
    return dict(data)


def matrix(c: Collected, requirements: list[dict[str, Any]] | None = None) -> list[Row]:
    rows = []
    for req in requirements if requirements is not None else load()["requirements"]:
        if "check" in req:
            result = CHECKS[req["check"]](c)
        else:
            result = Result(NOT_COVERED, " ".join(str(req["not_covered"]).split()), [])
        stale = any(a.stale for a in result.artifacts)
        status = result.status
        detail = result.detail
        if stale and status == PASS:
            status = FAIL
            detail = f"stale evidence ({', '.join(_stale(result.artifacts))}); " + detail
        dates = [a.at for a in result.artifacts if a.at]
        rows.append(
            Row(
                req["id"],
                req["guideline"],
                str(req["section"]),
                req.get("section_confirmed", True),
                req["ja"],
                req["en"],
                status,
                detail,
                sorted({a.path for a in result.artifacts}),
                min(dates) if dates else None,
                stale,
            )
        )
    return rows


def counts(rows: list[Row]) -> dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in STATUSES} | {
        "stale": sum(r.stale for r in rows)
    }


def as_dicts(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def _stale(artifacts: list[Artifact]) -> Iterator[str]:
    for a in artifacts:
        if a.stale:
            yield f"{a.path} from {a.at or 'an unknown time'}, rule {a.rule}"


def _of(c: Collected, kind: str, path_part: str = "") -> list[Artifact]:
    return [a for a in c.artifacts if a.kind == kind and path_part in a.path]


# -- the network ----------------------------------------------------------------------------


def _verdict(c: Collected, verdict: str) -> Result:
    got = c.network.get("verdicts", {}).get(verdict)
    evidence = _of(c, "network-proof") + _of(c, "linkage-report")
    if got is None:
        return Result(FAIL, "the closed-network proof did not run", evidence)
    examples = "; ".join(c.network.get("counterexamples", {}).get(verdict, []))
    detail = f"proof '{verdict}': {got}" + (f" ({examples})" if examples else "")
    return Result(PASS if got == "HOLDS" else FAIL, detail, evidence)


def network_closed(c: Collected) -> Result:
    result = _verdict(c, "closed")
    bad = [v for v in c.network.get("violations", []) if v.get("severity") in ("critical", "high")]
    if bad and result.status == PASS:
        rules = ", ".join(sorted({v["rule"] for v in bad}))
        return Result(
            FAIL, f"{result.detail}; policy pack: {len(bad)} violations ({rules})", result.artifacts
        )
    if result.status == PASS:
        result.detail += f"; policy pack: {c.network.get('rules')} rules, none violated"
    return result


def lines_separated(c: Collected) -> Result:
    return _verdict(c, "separated")


def flows_exact(c: Collected) -> Result:
    return _verdict(c, "policy")


def _dc(c: Collected) -> list[str]:
    """The data center's own hosts (the lab's stand-ins for outside parties are not)."""
    return sorted(h.name for h in c.config.hosts.values() if h.role in DATACENTER_ROLES)


def _hosts_missing(c: Collected) -> list[str]:
    return sorted(set(_dc(c)) - set(c.hosts))


def _per_host(c: Collected, judge: Callable[[str, dict[str, Any]], list[str]], what: str) -> Result:
    """PASS when every data-center host's evidence is there and `judge` finds nothing."""
    problems = [f"{h}: no evidence" for h in _hosts_missing(c)]
    for host, data in sorted(c.hosts.items()):
        problems += [f"{host}: {p}" for p in judge(host, data)]
    evidence = _of(c, "host-settings")
    if problems:
        return Result(FAIL, "; ".join(problems), evidence)
    return Result(PASS, f"{what} on {', '.join(sorted(c.hosts))}", evidence)


def _chains(ruleset: str) -> dict[str, str]:
    """hook -> policy of each base chain in an `nft list ruleset`."""
    out = {}
    for line in ruleset.splitlines():
        words = line.replace(";", " ").split()
        if "hook" in words and "policy" in words:
            out[words[words.index("hook") + 1]] = words[words.index("policy") + 1]
    return out


def host_firewall_default_drop(c: Collected) -> Result:
    def judge(host: str, data: dict[str, Any]) -> list[str]:
        chains = _chains(data["nftables"])
        return [
            f"{hook} chain policy {chains.get(hook, 'missing')}"
            for hook in ("input", "output")
            if chains.get(hook) != "drop"
        ]

    return _per_host(c, judge, "input and output chains drop by default")


def listeners(sockets: str) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of each listening socket in `ss -Hltnu` output."""
    out = []
    for line in sockets.splitlines():
        cols = line.split()
        if len(cols) < 5:
            continue
        address, _, port = cols[4].rpartition(":")
        if port.isdigit():
            out.append((cols[0], address.strip("[]").split("%")[0], int(port)))
    return out


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def listening_as_allowed(c: Collected) -> Result:
    allowed: dict[str, set[tuple[int, str]]] = {}
    for _src, dst, port, proto in c.config.allowed():
        allowed.setdefault(dst, set()).add((port, proto))

    def judge(host: str, data: dict[str, Any]) -> list[str]:
        zone = c.config.hosts[host].zone if host in c.config.hosts else "?"
        found = []
        for proto, address, port in listeners(data["sockets"]):
            if _loopback(address) or (port, proto) in allowed.get(zone, set()):
                continue
            if (zone, port) in EXTRA_LISTENERS:
                continue
            found.append(f"listens on {address}:{port}/{proto}, which no flow into {zone} allows")
        return found

    return _per_host(c, judge, "every listener is one the flow policy (or loopback) allows")


def _sshd(data: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in data["sshd"].splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key.lower(), value.strip())
    return out


def sshd_hardened(c: Collected) -> Result:
    def judge(host: str, data: dict[str, Any]) -> list[str]:
        effective = _sshd(data)
        return [
            f"sshd {k} {effective.get(k, '(unset)')}, wants {v}"
            for k, v in SSHD_REQUIRED.items()
            if effective.get(k) != v
        ]

    return _per_host(
        c, judge, "sshd -T: " + ", ".join(f"{k} {v}" for k, v in SSHD_REQUIRED.items())
    )


def fund_mutual_auth(c: Collected) -> Result:
    intake = [h for h in _dc(c) if c.config.hosts[h].zone == "intake"]
    problems = []
    for host in intake:
        data = c.hosts.get(host)
        if data is None:
            problems.append(f"{host}: no evidence")
            continue
        effective = _sshd(data)
        if effective.get("passwordauthentication") != "no":
            problems.append(f"{host}: the fund could log in with a password")
        if effective.get("pubkeyauthentication") != "yes":
            problems.append(f"{host}: no key authentication")
    wanted = (*(f"host-key:{h}" for h in intake), "sftp-key")
    pinned = [r for r in c.rotation or [] if r["secret"].startswith(wanted)]
    rotated = [r["secret"] for r in pinned if r["last_rotated"]]
    if c.rotation is None:
        problems.append("no rotation ledger: the host key the fund pins is not on record")
    evidence = _of(c, "host-settings", "intake") + _of(c, "rotation-ledger")
    if problems:
        return Result(FAIL, "; ".join(problems), evidence)
    return Result(
        PASS,
        f"the fund logs in by key only on {', '.join(intake)}; its client pins "
        f"the intake host key, announced on rotation ({', '.join(rotated) or 'none yet'})",
        evidence,
    )


def encrypted_in_transit(c: Collected) -> Result:
    web = [h for h in _dc(c) if c.config.hosts[h].zone == "app"]
    problems = [f"{h}: no evidence" for h in _hosts_missing(c)]
    for host in web:
        ports = {
            p
            for _proto, a, p in listeners(c.hosts.get(host, {}).get("sockets", ""))
            if not _loopback(a)
        }
        if 80 in ports or 8080 in ports:
            problems.append(f"{host}: listens for plain HTTP")
        if 443 not in ports and host in c.hosts:
            problems.append(f"{host}: not listening on 443")
    problems += _pg_hba_problems(c, plain_only=True)
    evidence = _of(c, "host-settings")
    if problems:
        return Result(FAIL, "; ".join(problems), evidence)
    return Result(
        PASS,
        "caseworkers reach the application over HTTPS only (443, no 80); every "
        "remote PostgreSQL rule is hostssl; administration is SSH",
        evidence,
    )


def _pg_hba_problems(c: Collected, plain_only: bool = False) -> list[str]:
    db_hosts = [h for h in _dc(c) if c.config.hosts[h].zone == "db"]
    problems = []
    for host in db_hosts:
        raw = c.hosts.get(host, {}).get("pg_hba")
        try:
            rules = json.loads(raw) if isinstance(raw, str) else None
        except json.JSONDecodeError:
            rules = None
        if not isinstance(rules, list):
            problems.append(f"{host}: pg_hba_file_rules not read")
            continue
        for r in rules:
            where = f"{host} pg_hba line {r.get('line_number')}"
            if r.get("error"):
                problems.append(f"{where}: {r['error']}")
            elif r.get("auth_method") == "reject":
                continue  # a refusal needs no TLS: the catch-all at the end is one
            elif r.get("type") in ("host", "hostnossl"):
                problems.append(f"{where}: {r['type']} allows a connection without TLS")
            elif plain_only:
                continue
            elif r.get("auth_method") not in DB_AUTH_METHODS:
                problems.append(f"{where}: auth {r.get('auth_method')}")
            elif r.get("type") == "hostssl" and r.get("address") in ANY_ADDRESS:
                problems.append(f"{where}: from any address")
    return problems


def database_access_rules(c: Collected) -> Result:
    problems = _pg_hba_problems(c)
    evidence = _of(c, "host-settings", "db")
    if problems:
        return Result(FAIL, "; ".join(problems), evidence)
    return Result(
        PASS,
        "pg_hba: remote logins only hostssl from the app and intake hosts with "
        f"{' or '.join(DB_AUTH_METHODS[:2])}; local only by peer; the rest rejected",
        evidence,
    )


def _units(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    out = {}
    for block in data["units"].split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            out[props["Id"]] = props
    return out


def units_confined(c: Collected) -> Result:
    def judge(host: str, data: dict[str, Any]) -> list[str]:
        problems = []
        for name, p in _units(data).items():
            if name not in OUR_UNITS or p.get("LoadState") != "loaded":
                continue
            wrong = [
                f"{k}={p.get(k)}"
                for k, ok in (
                    ("NoNewPrivileges", ("yes",)),
                    ("ProtectSystem", ("strict", "full")),
                    ("PrivateTmp", ("yes",)),
                )
                if p.get(k) not in ok
            ]
            if p.get("User", "") in ("", "root") and name not in ROOT_UNITS:
                wrong.append("runs as root")
            problems += [f"{name} {w}" for w in wrong]
        return problems

    return _per_host(
        c,
        judge,
        "the application's units run unprivileged, NoNewPrivileges, "
        "ProtectSystem strict, PrivateTmp",
    )


# -- access -----------------------------------------------------------------------------------


def access_reviewed(c: Collected) -> Result:
    evidence = _of(c, "access-review")
    if c.review is None:
        return Result(FAIL, "no access review fetched", evidence)
    r = c.review
    if not r["signed"]:
        return Result(FAIL, f"review {r['run']}: {r['signature']}", evidence)
    if r["verdict"] == "INCOMPLETE":
        incomplete = [s["system"] for s in r["scopes"] if s["status"] != "COMPLETE"]
        return Result(FAIL, f"review {r['run']} INCOMPLETE: {', '.join(incomplete)}", evidence)
    return Result(
        PASS,
        f"review {r['run']}: signed and verified, every scope complete "
        f"({len(r['scopes'])} systems), verdict {r['verdict']}",
        evidence,
    )


def access_as_rostered(c: Collected) -> Result:
    evidence = _of(c, "access-review") + _of(c, "access-review-diff")
    if c.review is None:
        return Result(FAIL, "no access review fetched", evidence)
    findings = c.review["findings"]
    if findings:
        named = "; ".join(f"{f['check']} {f['account']} on {f['system']}" for f in findings)
        return Result(FAIL, f"{len(findings)} accounts do not match the roster: {named}", evidence)
    return Result(
        PASS,
        f"every account matches the roster ({c.review['suppressed']} accepted "
        "risks in the exceptions register)",
        evidence,
    )


def keys_rotated(c: Collected) -> Result:
    evidence = _of(c, "rotation-ledger")
    if c.rotation is None:
        return Result(FAIL, "no rotation ledger", evidence)
    late = [f"{r['secret']} ({r['status']})" for r in c.rotation if r["status"] != "not-due"]
    if late:
        return Result(
            FAIL,
            f"{len(late)} of {len(c.rotation)} secrets not current: " + ", ".join(late),
            evidence,
        )
    return Result(PASS, f"all {len(c.rotation)} secrets rotated within their calendar", evidence)


# -- backups ----------------------------------------------------------------------------------


def _backup_hosts(c: Collected) -> list[str]:
    return [h for h in _dc(c) if c.config.hosts[h].role in BACKUP_WRITER_ROLES]


def _backups(
    c: Collected,
    command: str,
    hosts: list[str],
    judge: Callable[[dict[str, Any]], str | None],
    what: str,
) -> Result:
    problems, evidence = [], []
    for host in hosts:
        report = c.backups.get(host, {}).get(command)
        if report is None:
            problems.append(f"{host}: no {command} report")
            continue
        evidence += _of(c, f"backup-{command}", f"backups/{host}/")
        wrong = judge(report)
        if wrong:
            problems.append(f"{host}: {wrong}")
    if problems:
        return Result(FAIL, "; ".join(problems), evidence)
    return Result(PASS, f"{what} on {', '.join(hosts)}", evidence)


def backed_up_daily(c: Collected) -> Result:
    return _backups(
        c,
        "run",
        _backup_hosts(c),
        lambda r: None if r.get("ok") else f"the last backup failed: {r.get('error')}",
        "the newest backup succeeded",
    )


def backups_verified(c: Collected) -> Result:
    def judge(r: dict[str, Any]) -> str | None:
        if not r.get("ok") or r.get("problems"):
            return f"verify --read-data found: {'; '.join(map(str, r.get('problems') or []))}"
        return None

    return _backups(
        c,
        "verify",
        _backup_hosts(c),
        judge,
        "verify --read-data read every pack back with no problem",
    )


def restore_drilled(c: Collected) -> Result:
    hosts = [h for h in _dc(c) if c.config.hosts[h].role in DRILL_ROLES]

    def judge(r: dict[str, Any]) -> str | None:
        if not r.get("ok"):
            return f"the drill failed: {'; '.join(map(str, r.get('problems') or []))}"
        return None

    return _backups(
        c,
        "drill",
        hosts,
        judge,
        "a snapshot restored into a scratch PostgreSQL, "
        "row counts and pg_dump identical to the live database",
    )


def backups_locked(c: Collected) -> Result:
    def judge(r: dict[str, Any]) -> str | None:
        if r.get("immutability") != "Object Lock COMPLIANCE":
            return f"stored {r.get('immutability') or 'without a lock'}"
        until = str(r.get("retain_until") or "")
        if until <= c.generated_at:
            return f"retention ended {until or '(none)'}"
        return None

    return _backups(
        c,
        "run",
        _backup_hosts(c),
        judge,
        "each snapshot under Object Lock COMPLIANCE until its retention date",
    )


def encrypted_at_rest(c: Collected) -> Result:
    problems = []
    if not c.audit.get("volumes_encrypted"):
        problems.append("an instance volume without a KMS key")
    if not c.audit.get("log_group_kms"):
        problems.append("a log group without a KMS key")
    for host in _backup_hosts(c):
        key = (c.backups.get(host, {}).get("run") or {}).get("key") or {}
        if not key.get("kms_key_id"):
            problems.append(f"{host}: the backup's key is not wrapped by KMS")
    evidence = _of(c, "network-proof") + _of(c, "backup-run")
    if problems:
        return Result(FAIL, "; ".join(problems), evidence)
    return Result(
        PASS,
        "EBS volumes and log groups under the environment's KMS keys (declared); "
        "every backup sealed with AES-256-GCM under a KMS-wrapped key",
        evidence,
    )


def audit_trail_kept(c: Collected) -> Result:
    trails = c.audit.get("trails") or []
    lock = c.audit.get("audit_lock") or {}
    evidence = _of(c, "network-proof")
    good = [t for t in trails if t["log_file_validation"] and t["multi_region"] and t["kms"]]
    retention = (lock.get("defaultRetention") or {}) if isinstance(lock, dict) else {}
    if not good or retention.get("mode") != "COMPLIANCE":
        return Result(FAIL, f"trails {trails}, audit bucket lock {lock}", evidence)
    return Result(
        PASS,
        f"CloudTrail {good[0]['name']}: every region, log file validation, KMS; "
        f"its bucket locked COMPLIANCE for {retention.get('days'):g} days",
        evidence,
    )


def linkage_report_current(c: Collected) -> Result:
    evidence = _of(c, "linkage-report")
    if not c.network.get("report"):
        return Result(FAIL, "no linkage report", evidence)
    return Result(
        PASS,
        f"drawn from the stack config (sha256 {c.network['config_sha256'][:16]}...) "
        "when this pack was made",
        evidence,
    )


def data_in_japan(c: Collected) -> Result:
    regions = c.audit.get("regions") or []
    evidence = _of(c, "network-proof")
    outside = [r for r in regions if r not in ALLOWED_REGIONS]
    if outside or not regions:
        return Result(FAIL, f"regions {regions}", evidence)
    return Result(
        PASS,
        f"data stored only in {', '.join(regions)} (Tokyo, Osaka); the config "
        "loader refuses any other region",
        evidence,
    )


def cost_estimated(c: Collected) -> Result:
    evidence = _of(c, "cost-estimate")
    if c.cost is None:
        return Result(
            FAIL, "no cost estimate (the stack file has no claims-dc:cost block)", evidence
        )
    diff = c.cost.get("difference_yen")
    return Result(
        PASS,
        f"{c.cost['months'] // 12}-year total {c.cost['total_yen']:,} yen"
        + (f"; {diff:,} yen against the on-premises baseline" if diff is not None else ""),
        evidence,
    )


CHECKS: dict[str, Callable[[Collected], Result]] = {
    f.__name__: f
    for f in (
        network_closed,
        lines_separated,
        flows_exact,
        host_firewall_default_drop,
        listening_as_allowed,
        fund_mutual_auth,
        encrypted_in_transit,
        sshd_hardened,
        database_access_rules,
        access_reviewed,
        access_as_rostered,
        keys_rotated,
        units_confined,
        backed_up_daily,
        backups_verified,
        restore_drilled,
        backups_locked,
        encrypted_at_rest,
        audit_trail_kept,
        linkage_report_current,
        data_in_japan,
        cost_estimated,
    )
}
