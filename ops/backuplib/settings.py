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
    origin: str = "(defaults)"


def load(path: Path) -> Settings:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SettingsError(f"{path}: cannot read: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML: {e}") from e
    return from_dict(raw, str(path))


def from_dict(raw: dict[str, Any], where: str) -> Settings:
    unknown = set(raw) - {"repository", "retention", "state", "source"}
    if unknown:
        raise SettingsError(f"{where}: unknown section(s) {sorted(unknown)}")
    repo = raw.get("repository")
    if not isinstance(repo, dict) or not isinstance(repo.get("url"), str) or not repo["url"]:
        raise SettingsError(f"{where}: [repository] url is required")
    known = {"url", "endpoint_url", "region", "ca_bundle", "kms_key_id", "key_file", "lock_days"}
    if set(repo) - known:
        raise SettingsError(f"{where}: unknown key(s) in [repository]: {sorted(set(repo) - known)}")
    if bool(repo.get("kms_key_id")) == bool(repo.get("key_file")):
        raise SettingsError(f"{where}: [repository] needs exactly one of kms_key_id and key_file")
    lock_days = repo.get("lock_days", 35)
    if not isinstance(lock_days, int) or isinstance(lock_days, bool) or not 1 <= lock_days <= 3650:
        raise SettingsError(f"{where}: [repository] lock_days must be 1..3650, got {lock_days!r}")
    try:
        retention = RetentionPolicy.from_dict(raw.get("retention", {}), where)
    except ValueError as e:
        raise SettingsError(str(e)) from e
    sources = []
    for i, s in enumerate(raw.get("source", [])):
        try:
            sources.append(SourceSpec.from_dict(s, f"{where}: [[source]] #{i + 1}"))
        except SourceError as e:
            raise SettingsError(str(e)) from e
    names = [s.name for s in sources]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SettingsError(f"{where}: source names must be unique; repeated: {dup}")
    return Settings(
        url=repo["url"],
        endpoint_url=repo.get("endpoint_url"),
        region=repo.get("region"),
        ca_bundle=repo.get("ca_bundle"),
        kms_key_id=repo.get("kms_key_id"),
        key_file=Path(repo["key_file"]) if repo.get("key_file") else None,
        lock_days=lock_days,
        retention=retention,
        state_dir=Path(raw.get("state", {}).get("dir", "/var/lib/claims-dc-backup")),
        sources=sources,
        origin=where,
    )
