"""The backup configuration file (TOML), e.g. /etc/claims-dc/backup/backup.toml:

[repository]
url = "s3://claims-dc-999997-lab-backup-123456789012/db"   # or a directory
endpoint_url = "https://10.231.50.10"      # omit for AWS itself
region = "ap-northeast-1"
ca_bundle = "/etc/claims-dc/backup/ca.crt"  # omit for the system's CAs
kms_key_id = "arn:aws:kms:...:key/..."      # or: key_file = "/etc/claims-dc/backup/repo.key"
lock_days = 35                               # Object Lock on every object, from its write

[retention]
daily = 35
monthly = 12
yearly = 5

[state]
dir = "/var/lib/claims-dc-backup"           # reports, verify coverage, the local lock

[status]                                     # optional: publish each run for the fleet board
bucket = "claims-dc-999997-lab-status-123456789012"
stack = "lab"
writer = "db"                                # the host's role (ops/status.py)
host = "db-1"

[[source]]
name = "claims-db"
kind = "postgres"
database = "claims"
run_as = "postgres"

[[source]]
name = "claim-files"
kind = "files"
paths = ["/srv/claims"]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.backuplib.retention import RetentionPolicy
from ops.backuplib.sources import SourceError, SourceSpec
from ops.status import Publisher, StatusError


class SettingsError(Exception):
    pass


@dataclass
class Settings:
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    ca_bundle: str | None = None
    kms_key_id: str | None = None
    key_file: Path | None = None
    lock_days: int = 35
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    state_dir: Path = Path("/var/lib/claims-dc-backup")
    sources: list[SourceSpec] = field(default_factory=list)
    status: Publisher | None = None  # where run, verify and drill publish their outcome
    origin: str = "(defaults)"


def load(path: Path) -> Settings:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SettingsError(f"{path}: cannot read: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML: {e}") from e
    return from_dict(raw, str(path))


def _kind(value: object) -> str:
    """What a TOML value is, as the file's author would say it."""
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip


def _text(table: dict[str, Any], key: str, where: str, what: str, required: bool = False) -> str:
    value = table.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        got = "nothing" if value is None else f"{_kind(value)} {str(value)[:40]!r}"
        raise SettingsError(f"{where}: {key} must be {what}, got {got}")
    return value


def _table(raw: dict[str, Any], key: str, where: str, required: bool = False) -> dict[str, Any]:
    value = raw.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        got = "nothing" if value is None else _kind(value)
        raise SettingsError(f"{where}: [{key}] must be a table, got {got}")
    return value


def from_dict(raw: dict[str, Any], where: str) -> Settings:
    unknown = set(raw) - {"repository", "retention", "state", "source", "status"}
    if unknown:
        raise SettingsError(f"{where}: unknown section(s) {sorted(unknown)}")
    repo = _table(raw, "repository", where, required=True)
    here = f"{where}: [repository]"
    known = {"url", "endpoint_url", "region", "ca_bundle", "kms_key_id", "key_file", "lock_days"}
    if set(repo) - known:
        raise SettingsError(f"{here} unknown key(s): {sorted(set(repo) - known)}")
    url = _text(repo, "url", here, "a directory or s3://bucket/prefix", required=True)
    endpoint_url = _text(repo, "endpoint_url", here, "an https:// URL")
    region = _text(repo, "region", here, "an AWS region name")
    ca_bundle = _text(repo, "ca_bundle", here, "the path of a CA bundle")
    kms_key_id = _text(repo, "kms_key_id", here, "a KMS key ID or ARN")
    key_file = _text(repo, "key_file", here, "the absolute path of a key file")
    if key_file and not key_file.startswith("/"):
        raise SettingsError(f"{here}: key_file must be an absolute path, got {key_file!r}")
    if bool(kms_key_id) == bool(key_file):
        raise SettingsError(f"{here} needs exactly one of kms_key_id and key_file")
    lock_days = repo.get("lock_days", 35)
    if not isinstance(lock_days, int) or isinstance(lock_days, bool) or not 1 <= lock_days <= 3650:
        raise SettingsError(f"{here}: lock_days must be a whole number 1..3650, got {lock_days!r}")
    try:
        retention = RetentionPolicy.from_dict(_table(raw, "retention", where), where)
    except ValueError as e:
        raise SettingsError(str(e)) from e
    state = _table(raw, "state", where)
    if set(state) - {"dir"}:
        raise SettingsError(f"{where}: [state] unknown key(s): {sorted(set(state) - {'dir'})}")
    state_dir = _text(state, "dir", f"{where}: [state]", "an absolute directory path")
    if state_dir and not state_dir.startswith("/"):
        raise SettingsError(f"{where}: [state] dir must be an absolute path, got {state_dir!r}")
    listed = raw.get("source", [])
    if isinstance(listed, dict):
        raise SettingsError(f"{where}: sources are written [[source]] (one table per source), "
                            "not [source]")  # fmt: skip
    if not isinstance(listed, list):
        raise SettingsError(f"{where}: source must be [[source]] tables, got {_kind(listed)}")
    sources = []
    for i, s in enumerate(listed):
        here_source = f"{where}: [[source]] #{i + 1}"
        if not isinstance(s, dict):
            raise SettingsError(f"{here_source} must be a table, got {_kind(s)}")
        try:
            sources.append(SourceSpec.from_dict(s, here_source))
        except SourceError as e:
            raise SettingsError(str(e)) from e
    names = [s.name for s in sources]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SettingsError(f"{where}: source names must be unique; repeated: {dup}")
    status = _status(raw, where)
    return Settings(
        url=url,
        endpoint_url=endpoint_url or None,
        region=region or None,
        ca_bundle=ca_bundle or None,
        kms_key_id=kms_key_id or None,
        key_file=Path(key_file) if key_file else None,
        lock_days=lock_days,
        retention=retention,
        state_dir=Path(state_dir or "/var/lib/claims-dc-backup"),
        sources=sources,
        status=status,
        origin=where,
    )


def _status(raw: dict[str, Any], where: str) -> Publisher | None:
    table = _table(raw, "status", where)
    if not table:
        return None
    here = f"{where}: [status]"
    fields = ("bucket", "stack", "writer", "host")
    if set(table) - set(fields):
        raise SettingsError(f"{here} unknown key(s): {sorted(set(table) - set(fields))}")
    values = [_text(table, k, here, "a name", required=True) for k in fields]
    try:
        return Publisher(*values)
    except StatusError as e:
        raise SettingsError(f"{here}: {e}") from e
