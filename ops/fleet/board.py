"""The fleet board: every municipality's operational status on one page.

For each tenant's stack file in the fleet, the board assumes the tenant's fleet-reader role
(from the operations account, with the tenant's external ID), reads what the environment
published under `status/` (ops/status.py) and judges it by the rules below. A tenant's colour
is its worst finding's; no finding is green. Every finding names its rule, so the colour can
always be traced to why.

A tenant whose status cannot be read (no account or reader in its stack file, the role refused,
the bucket missing, a document that does not parse or does not agree with where it was found)
is red: an unknown is never shown as good news.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import datetime as dt
import io
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.config import (
    BACKUP_WRITER_ROLES,
    CERT_WARNING_DAYS,
    DRILL_ROLES,
    ConfigError,
    StackConfig,
    load_file,
)
from ops.awsapi import TIMEOUTS, Endpoint
from ops.status import (
    BACKUP_MAX_AGE,
    CONTROL_NODE,
    DRILL_MAX_AGE,
    JST,
    MAX_BYTES,
    OPERATIONS,
    PREFIX,
    REVIEW_MAX_AGE,
    Status,
    StatusError,
    for_people,
    parse,
    parse_time,
)

GREEN, AMBER, RED = "green", "amber", "red"
ORDER = {GREEN: 0, AMBER: 1, RED: 2}
MAX_OBJECTS = 200  # a tenant has a dozen status documents; more is not a status prefix
SESSION_NAME = "claims-dc-fleet-board"


@dataclass(frozen=True)
class Rule:
    id: str
    colour: str
    ja: str
    en: str


RULES = {
    r.id: r
    for r in (
        Rule("STATUS-UNREADABLE", RED, "状態を読み取れない", "the status cannot be read"),
        Rule("BACKUP-OLD", RED, "最終バックアップが26時間より前、またはない",
             "no backup in the last 26 hours"),
        Rule("BACKUP-FAILED", RED, "最後のバックアップが失敗", "the last backup failed"),
        Rule("VERIFY-FAILED", RED, "最後の検証で問題を検出", "the last verify found problems"),
        Rule("DRILL-OLD", AMBER, "復元訓練が35日より前、またはない",
             "no restore drill in the last 35 days"),
        Rule("DRILL-FAILED", RED, "最後の復元訓練が失敗", "the last restore drill failed"),
        Rule("REVIEW-OLD", AMBER, "アクセスレビューが90日より前、またはない",
             "no access review in the last 90 days"),
        Rule("REVIEW-INCOMPLETE", AMBER, "最後のアクセスレビューが不完全(読めない範囲あり)",
             "the last access review could not read every scope"),
        Rule("SECRET-OVERDUE", AMBER, "ローテーション期限を過ぎた鍵がある",
             "a secret is past its rotation age"),
        Rule("CERT-EXPIRING", AMBER, "30日以内に期限が切れる証明書がある",
             "a certificate expires within 30 days"),
        Rule("CERT-EXPIRED", RED, "期限切れの証明書がある", "a certificate has expired"),
    )
}  # fmt: skip
CERT_WARNING = dt.timedelta(days=CERT_WARNING_DAYS)


@dataclass(frozen=True)
class Finding:
    rule: str
    detail: str

    @property
    def colour(self) -> str:
        return RULES[self.rule].colour


@dataclass
class TenantStatus:
    stack_file: str
    stack: str
    code: str = ""
    name: str = ""
    findings: list[Finding] = field(default_factory=list)
    last_backup: str | None = None
    last_drill: str | None = None
    last_review: str | None = None
    review_verdict: str | None = None
    secrets: int = 0
    next_cert_expiry: str | None = None

    @property
    def colour(self) -> str:
        return max((f.colour for f in self.findings), key=ORDER.__getitem__, default=GREEN)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["colour"] = self.colour
        out["findings"] = [
            {"rule": f.rule, "colour": f.colour, "detail": f.detail,
             "ja": RULES[f.rule].ja, "en": RULES[f.rule].en}
            for f in self.findings
        ]  # fmt: skip
        return out


def judge(config: StackConfig, docs: list[Status], now: dt.datetime) -> list[Finding]:
    """The rules over what one tenant published; `docs` are the ones that parsed."""
    found: list[Finding] = []
    by = {(d.writer, d.host, d.kind): d for d in docs}
    hosts = [h for h in config.hosts.values() if not h.stand_in]
    for host in (h for h in hosts if h.role in BACKUP_WRITER_ROLES):
        backup = by.get((host.role, host.name, "backup"))
        when = backup.time() if backup else None
        if backup is not None and not backup.body["ok"]:
            found.append(Finding("BACKUP-FAILED", f"{host.name}: "
                                 f"{str(backup.body.get('error') or 'failed')[:200]}"))  # fmt: skip
        if when is None or now - when > BACKUP_MAX_AGE:
            found.append(Finding("BACKUP-OLD", f"{host.name}: {_age(when, now)}"))
        verify = by.get((host.role, host.name, "verify"))
        if verify is not None and (not verify.body["ok"] or verify.body["problems"]):
            found.append(Finding("VERIFY-FAILED",
                                 f"{host.name}: {verify.body['problems']} problems"))  # fmt: skip
    for host in (h for h in hosts if h.role in DRILL_ROLES):
        drill = by.get((host.role, host.name, "drill"))
        when = drill.time() if drill else None
        if drill is not None and not drill.body["ok"]:
            found.append(Finding("DRILL-FAILED", f"{host.name}: {_age(when, now)}"))
        if when is None or now - when > DRILL_MAX_AGE:
            found.append(Finding("DRILL-OLD", f"{host.name}: {_age(when, now)}"))
    bastions = {(h.role, h.name) for h in hosts if h.role == "bastion"}
    reviews = [d for d in docs if d.kind == "review" and (d.writer, d.host) in bastions]
    review_time = max((t for d in reviews if (t := d.time())), default=None)
    if review_time is None or now - review_time > REVIEW_MAX_AGE:
        found.append(Finding("REVIEW-OLD", _age(review_time, now)))
    latest = max(reviews, key=lambda d: d.time() or d.written, default=None)
    if latest is not None and latest.body["verdict"] == "INCOMPLETE":
        found.append(Finding("REVIEW-INCOMPLETE", f"{latest.host}: {_age(latest.time(), now)}, "
                             f"{latest.body.get('incomplete', '?')} scopes unread"))  # fmt: skip
    rotation = by.get((OPERATIONS, CONTROL_NODE, "rotation"))
    if rotation is None:
        found.append(Finding("SECRET-OVERDUE", "no rotation status published"))
    else:
        found += _rotation(rotation, now)
    return found


def _rotation(doc: Status, now: dt.datetime) -> list[Finding]:
    found: list[Finding] = []
    for i, s in enumerate(doc.body["secrets"]):
        where = f"{doc.key}: secrets[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("secret"), str):
            raise StatusError(f"{where}: not a secret entry")
        days = s.get("every_days")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise StatusError(f"{where}: every_days {str(days)[:20]!r} is not a whole number")
        last = s.get("last_rotated")
        rotated = parse_time(last, where) if last is not None else None
        if rotated is None:
            found.append(Finding("SECRET-OVERDUE", f"{s['secret'][:80]}: never rotated"))
        elif now - rotated > dt.timedelta(days=days):
            found.append(Finding("SECRET-OVERDUE", f"{s['secret'][:80]}: last rotated "
                                 f"{rotated.date()}, every {days} days"))  # fmt: skip
    for i, c in enumerate(doc.body["certificates"]):
        where = f"{doc.key}: certificates[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise StatusError(f"{where}: not a certificate entry")
        expires = parse_time(c.get("not_after"), where)
        if expires <= now:
            found.append(Finding("CERT-EXPIRED", f"{c['name'][:80]}: expired {expires.date()}"))
        elif expires - now <= CERT_WARNING:
            found.append(Finding("CERT-EXPIRING", f"{c['name'][:80]}: expires {expires.date()}"))
    return found


def _age(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "none published"
    hours = (now - when).total_seconds() / 3600
    ago = f"{hours:.0f} hours" if hours < 72 else f"{hours / 24:.0f} days"
    return f"{when.astimezone(JST).strftime('%Y-%m-%d %H:%M JST')} ({ago} ago)"


class Reader:
    """Reads tenants' status with the operations account's credentials, through `endpoint`."""

    def __init__(self, endpoint: Endpoint) -> None:
        import boto3

        self.endpoint = endpoint
        # One session for every client: it loads each service's model once (a session per
        # tenant would load them a hundred times). Building clients is not thread-safe.
        self._session = boto3.session.Session(region_name=endpoint.region)
        self._lock = threading.Lock()
        self._sts = self._client("sts")  # the operations account's own credentials

    def _client(self, service: str, pair: dict[str, str] | None = None) -> Any:
        with self._lock:
            return self._session.client(
                service, endpoint_url=self.endpoint.url, verify=self.endpoint.ca_bundle or True,
                config=TIMEOUTS, **(pair or {}),
            )  # fmt: skip

    def documents(self, config: StackConfig) -> list[tuple[str, bytes]]:
        """(key, bytes) of every status document the tenant's reader role can see."""
        if config.account_id is None:
            raise StatusError(f"{config.source}: no aws:allowedAccountIds: the board cannot "
                              "name the tenant's status bucket")  # fmt: skip
        if config.fleet_reader is None:
            raise StatusError(f"{config.source}: no claims-dc:fleetReader: the tenant has no "
                              "role the board may assume")  # fmt: skip
        role = f"arn:aws:iam::{config.account_id}:role/{config.fleet_reader_role}"
        bucket = config.status_bucket(config.account_id)
        try:
            creds = self._sts.assume_role(
                RoleArn=role, RoleSessionName=SESSION_NAME, DurationSeconds=900,
                ExternalId=config.fleet_reader.external_id,
            )["Credentials"]  # fmt: skip
        except Exception as e:
            raise StatusError(f"assuming {role}: {_short(e)}") from None
        s3 = self._client("s3", {"aws_access_key_id": creds["AccessKeyId"],
                                 "aws_secret_access_key": creds["SecretAccessKey"],
                                 "aws_session_token": creds["SessionToken"]})  # fmt: skip
        try:
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/", MaxKeys=MAX_OBJECTS)
        except Exception as e:
            raise StatusError(f"listing s3://{bucket}/{PREFIX}/: {_short(e)}") from None
        if listed.get("IsTruncated"):
            raise StatusError(f"s3://{bucket}/{PREFIX}/ holds more than {MAX_OBJECTS} objects")
        out = []
        for item in listed.get("Contents", []):
            key = item["Key"]
            if item.get("Size", 0) > MAX_BYTES:
                raise StatusError(f"{key}: {item['Size']} bytes, over {MAX_BYTES}")
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"]
                out.append((key, body.read(MAX_BYTES + 1)))
            except Exception as e:
                raise StatusError(f"reading s3://{bucket}/{key}: {_short(e)}") from None
        return out


def _short(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:200]}"


def tenant_status(stack_file: Path, reader: Reader, now: dt.datetime) -> TenantStatus:
    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    row = TenantStatus(str(stack_file), stack)
    try:
        config = load_file(stack_file)
    except ConfigError as e:
        row.findings.append(Finding("STATUS-UNREADABLE", "; ".join(e.problems)[:300]))
        return row
    row.code, row.name = config.municipality.code, config.municipality.name
    docs: list[Status] = []
    try:
        for key, data in reader.documents(config):
            try:
                docs.append(parse(key, data, stack=config.stack, now=now))
            except StatusError as e:  # this document is not believed; the others still count
                row.findings.append(Finding("STATUS-UNREADABLE", str(e)[:300]))
        row.findings += judge(config, docs, now)
    except StatusError as e:
        row.findings.append(Finding("STATUS-UNREADABLE", str(e)[:300]))
        return row
    _summarise(row, docs)
    return row


def _summarise(row: TenantStatus, docs: list[Status]) -> None:
    def newest(kind: str) -> Status | None:
        return max((d for d in docs if d.kind == kind), key=lambda d: d.written, default=None)

    for kind, attr in (("backup", "last_backup"), ("drill", "last_drill"),
                       ("review", "last_review")):  # fmt: skip
        doc = newest(kind)
        if doc is not None:
            setattr(row, attr, doc.body["time"])
    review = newest("review")
    row.review_verdict = review.body["verdict"] if review else None
    rotation = newest("rotation")
    if rotation is not None:
        row.secrets = len(rotation.body["secrets"])
        expiries = [c["not_after"] for c in rotation.body["certificates"]]
        row.next_cert_expiry = min(expiries) if expiries else None


def board(stack_files: list[Path], reader: Reader, *, workers: int = 16,
          now: dt.datetime | None = None) -> list[TenantStatus]:  # fmt: skip
    """Every tenant, read in parallel (the work is waiting on the API)."""
    now = now or dt.datetime.now(dt.UTC)
    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda p: _safely(p, reader, now), stack_files))


def _safely(path: Path, reader: Reader, now: dt.datetime) -> TenantStatus:
    try:
        return tenant_status(path, reader, now)
    except Exception as e:  # one tenant's surprise is that tenant's red row, not the board's end
        row = TenantStatus(str(path), path.name)
        row.findings.append(Finding("STATUS-UNREADABLE", f"unexpected: {_short(e)}"))
        return row


# The board's columns, Japanese first (the operations team's language), for CSV and HTML.
COLUMNS = [
    ("colour", "状態", "status"),
    ("code", "団体コード", "code"),
    ("name", "団体名", "municipality"),
    ("stack", "スタック", "stack"),
    ("last_backup", "最終バックアップ", "last backup"),
    ("last_drill", "最終復元訓練", "last drill"),
    ("last_review", "最終アクセスレビュー", "last review"),
    ("next_cert_expiry", "直近の証明書期限", "next certificate expiry"),
    ("findings", "指摘(規則)", "findings (rule)"),
]
COLOUR_JA = {GREEN: "緑 正常", AMBER: "黄 要対応", RED: "赤 異常"}
TIMES = ("last_backup", "last_drill", "last_review", "next_cert_expiry")


def _for_people(row: TenantStatus) -> dict[str, Any]:
    d = row.as_dict()
    for key in TIMES:
        d[key] = for_people(d[key]) or None
    return d


def to_csv(rows: list[TenantStatus]) -> bytes:
    """UTF-8 with BOM, so Excel in a Japanese office opens it as it is."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([f"{ja} ({en})" for _, ja, en in COLUMNS])
    for r in rows:
        d = _for_people(r)
        w.writerow(
            [COLOUR_JA[r.colour] if k == "colour" else
             " / ".join(f"{f['rule']}: {f['detail']}" for f in d["findings"]) if k == "findings"
             else _cell(d.get(k)) for k, _, _ in COLUMNS]
        )  # fmt: skip
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ would be a formula in a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def to_html(rows: list[TenantStatus], now: dt.datetime) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    counts = {c: sum(1 for r in rows if r.colour == c) for c in (RED, AMBER, GREEN)}
    return env.get_template("board.html.j2").render(
        rows=[_for_people(r) for r in sorted(rows, key=lambda r: (-ORDER[r.colour], r.code))],
        rules=list(RULES.values()), columns=COLUMNS, colour_ja=COLOUR_JA, counts=counts,
        generated=now.astimezone(JST).strftime("%Y-%m-%d %H:%M JST"),
    )  # fmt: skip


def to_json(rows: list[TenantStatus], now: dt.datetime) -> dict[str, Any]:
    return {
        "generated": now.isoformat(timespec="seconds"),
        "rules": [asdict(r) for r in RULES.values()],
        "tenants": [r.as_dict() for r in rows],
    }
