"""Configuration: a TOML file, then the environment, never the code.

    /etc/claimapp/claimapp.toml (or $CLAIMAPP_CONFIG):

    [database]
    dsn = "host=/var/run/postgresql dbname=claims user=claims_app"
    password_file = "/etc/claimapp/db-password"   # mode 0600 or 0400, owned by the service

    [paths]
    drop = "/srv/claims/incoming"
    quarantine = "/srv/claims/quarantine"
    processed = "/srv/claims/processed"

    [intake]
    max_file_bytes = 67108864   # a larger claim file is refused before it is read

    [web]
    session_minutes = 30
    throttle_after = 3          # failed logins of a username from one address before delays
    throttle_max_minutes = 15   # the longest delay

Environment variables override the file: CLAIMAPP_DSN, CLAIMAPP_DB_PASSWORD_FILE,
CLAIMAPP_DROP, CLAIMAPP_QUARANTINE, CLAIMAPP_PROCESSED, CLAIMAPP_SESSION_MINUTES,
CLAIMAPP_THROTTLE_AFTER, CLAIMAPP_THROTTLE_MAX_MINUTES, CLAIMAPP_MAX_FILE_BYTES. A password
never sits in the file or the DSN: it comes from the password file, which must not be readable
by anyone else.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_FILE = Path("/etc/claimapp/claimapp.toml")
# A month of one large hospital is a few MB; 64 MiB leaves room and bounds memory and time.
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    dsn: str  # with the password added from the password file, if any
    drop: Path
    quarantine: Path
    processed: Path
    session_minutes: int
    throttle_after: int
    throttle_max_minutes: int
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


def _int(source: str, key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: {key} = {value!r}: not a whole number") from None
    if not low <= number <= high:
        raise SettingsError(f"{source}: {key} = {number}: must be {low} to {high}")
    return number


def _password(path: Path, source: str) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        raise SettingsError(f"{source}: password_file = {str(path)!r}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(
            f"{source}: password_file = {str(path)!r}: mode "
            f"{stat.S_IMODE(info.st_mode):o}, must not be readable by others "
            f"(chmod 600)"
        )
    return path.read_text(encoding="utf-8").strip()


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    path = path or Path(env.get("CLAIMAPP_CONFIG", str(DEFAULT_FILE)))
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    source = str(path)
    db, paths, web = data.get("database", {}), data.get("paths", {}), data.get("web", {})
    intake = data.get("intake", {})
    dsn = env.get("CLAIMAPP_DSN", db.get("dsn", ""))
    if not dsn:
        raise SettingsError(f"{source}: database.dsn (or CLAIMAPP_DSN) is required")
    try:
        parts = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg raises its own ProgrammingError
        raise SettingsError(
            f"{source}: database.dsn is not a libpq connection string ({exc})"
        ) from None
    if "password" in parts:
        raise SettingsError(
            f"{source}: database.dsn carries a password; put it in database.password_file instead"
        )
    password_file = env.get("CLAIMAPP_DB_PASSWORD_FILE", db.get("password_file"))
    if password_file:
        dsn = make_conninfo(dsn, password=_password(Path(password_file), source))
    return Settings(
        dsn=dsn,
        drop=Path(env.get("CLAIMAPP_DROP", paths.get("drop", "/srv/claims/incoming"))),
        quarantine=Path(env.get("CLAIMAPP_QUARANTINE",
                                paths.get("quarantine", "/srv/claims/quarantine"))),
        processed=Path(env.get("CLAIMAPP_PROCESSED",
                               paths.get("processed", "/srv/claims/processed"))),
        session_minutes=_int(source, "web.session_minutes", env.get(
            "CLAIMAPP_SESSION_MINUTES", web.get("session_minutes", 30)), 1, 24 * 60),
        throttle_after=_int(source, "web.throttle_after", env.get(
            "CLAIMAPP_THROTTLE_AFTER", web.get("throttle_after", 3)), 1, 100),
        throttle_max_minutes=_int(source, "web.throttle_max_minutes", env.get(
            "CLAIMAPP_THROTTLE_MAX_MINUTES", web.get("throttle_max_minutes", 15)), 1, 24 * 60),
        max_file_bytes=_int(source, "intake.max_file_bytes", env.get(
            "CLAIMAPP_MAX_FILE_BYTES", intake.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES)),
            1024, 2**31),
    )  # fmt: skip
