"""Accounts, sessions and the audit log.

Passwords are hashed with argon2id. Failed logins are throttled, never locked: after a few
failures of a username from one address, each further attempt from that address for that
username must wait longer (1 s, 2 s, 4 s, ... up to a cap), and an address that fails for many
usernames is slowed the same way; a caseworker at another terminal is never kept out. Unknown
users, disabled accounts, throttled attempts and wrong passwords get the same answer at the
same cost (one argon2 verification, against a dummy hash when there is nothing else to check),
so the answer does not tell whether an account exists. Sessions are random tokens whose SHA-256
alone is stored, with an expiry. Every login, success or failure (with why, for auditors), and
every read of personal data goes to the append-only audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("caseworker", "supervisor", "auditor", "admin")
HASHER = PasswordHasher()  # argon2id with the library's current parameters
# Checked against when there is no real hash to check (an unknown, disabled or throttled
# login), so that every refusal costs the same time as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
REFUSED = "unknown user, wrong password, or too many attempts: wait a moment and try again"
ADDRESS_FACTOR = 10  # an address may fail this many times more, across usernames
PAIR_QUIET = dt.timedelta(hours=24)  # failures of a username from an address are forgotten
ADDRESS_QUIET = dt.timedelta(hours=1)  # failures of an address across usernames
NO_ADDRESS = "::"  # a request that came with none (never through nginx, which always sets one)


@dataclass(frozen=True)
class Policy:
    throttle_after: int = 3  # failures of a username from one address before any delay
    throttle_max_minutes: int = 15  # the longest delay
    session_minutes: int = 30

    def delay(self, failures: int, free: int) -> dt.timedelta:
        """How long after the latest failure the next attempt must wait: none for the first
        `free` failures, then 1 s, doubling with each failure, up to the cap."""
        if failures <= free:
            return dt.timedelta(0)
        seconds = 2 ** min(failures - free - 1, 20)
        return min(dt.timedelta(seconds=seconds), dt.timedelta(minutes=self.throttle_max_minutes))


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str


def audit(
    conn: psycopg.Connection,
    actor: str,
    action: str,
    target: str | None,
    address: str | None,
    success: bool,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (actor, action, target, address, success) "
        "VALUES (%s, %s, %s, %s, %s)",
        (actor, action, target, address, success),
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(
    conn: psycopg.Connection, username: str, password: str, address: str | None, policy: Policy
) -> tuple[str | None, str]:
    """Returns (session token, "ok") or (None, REFUSED): one answer for every refusal. Every
    attempt is audited, a refusal with its reason (unknown, disabled, throttled,
    wrong-password), which only auditors see."""
    address = address or NO_ADDRESS
    with conn.transaction():
        now = dt.datetime.now(dt.UTC)
        throttled = conn.execute(
            "SELECT 1 FROM login_throttle WHERE address = %s AND username IN (%s, '') "
            "AND not_before > %s",
            (address, username, now),
        ).fetchone()
        row = conn.execute(
            "SELECT id, password_hash, disabled FROM users WHERE username = %s", (username,)
        ).fetchone()
        usable = row is not None and not row[2] and not throttled
        # Exactly one verification whatever the case: the refusals cost what a login costs.
        verified = _verify(row[1] if usable and row else _DUMMY_HASH, password)
        if not (usable and verified and row):
            reason = ("throttled" if throttled else "unknown" if row is None
                      else "disabled" if row[2] else "wrong-password")  # fmt: skip
            _count_failure(conn, username, address, now, policy)
            audit(conn, username, "login", reason, address, False)
            return None, REFUSED
        user_id = row[0]
        conn.execute(
            "DELETE FROM login_throttle WHERE username = %s AND address = %s", (username, address)
        )
        token = secrets.token_urlsafe(32)
        conn.execute(
            "INSERT INTO sessions (token_sha256, user_id, expires_at, address) "
            "VALUES (%s, %s, %s, %s)",
            (
                _token_hash(token),
                user_id,
                now + dt.timedelta(minutes=policy.session_minutes),
                address,
            ),
        )
        audit(conn, username, "login", None, address, True)
        return token, "ok"


def _count_failure(
    conn: psycopg.Connection, username: str, address: str, now: dt.datetime, policy: Policy
) -> None:
    """One more failure for the username from this address and for the address as a whole;
    a count restarts after a quiet period, and rows quiet for a day are removed."""
    conn.execute("DELETE FROM login_throttle WHERE last_failure < %s", (now - PAIR_QUIET,))
    for name, quiet, free in (
        (username, PAIR_QUIET, policy.throttle_after),
        ("", ADDRESS_QUIET, policy.throttle_after * ADDRESS_FACTOR),
    ):
        row = conn.execute(
            "INSERT INTO login_throttle AS t (username, address, failures, not_before,"
            " last_failure) VALUES (%s, %s, 1, %s, %s)"
            " ON CONFLICT (username, address) DO UPDATE SET"
            " failures = CASE WHEN t.last_failure < %s THEN 1 ELSE t.failures + 1 END,"
            " last_failure = excluded.last_failure"
            " RETURNING failures",
            (name, address, now, now, now - quiet),
        ).fetchone()
        failures = int(row[0]) if row else 1
        conn.execute(
            "UPDATE login_throttle SET not_before = %s WHERE username = %s AND address = %s",
            (now + policy.delay(failures, free), name, address),
        )


def _verify(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def session_user(conn: psycopg.Connection, token: str | None) -> User | None:
    if not token:
        return None
    row = conn.execute(
        "SELECT u.id, u.username, u.role FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.token_sha256 = %s AND s.expires_at > now() AND NOT u.disabled",
        (_token_hash(token),),
    ).fetchone()
    return User(*row) if row else None


def logout(conn: psycopg.Connection, token: str) -> None:
    conn.execute("DELETE FROM sessions WHERE token_sha256 = %s", (_token_hash(token),))


# --- administration (the admin CLI connects as the owner) --------------------------------------


def create_user(owner: psycopg.Connection, username: str, role: str, password: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if len(password) < 12:
        raise ValueError("password: at least 12 characters")
    owner.execute(
        "INSERT INTO users (username, role, password_hash) VALUES (%s, %s, %s)",
        (username, role, HASHER.hash(password)),
    )
    audit(owner, "admin-cli", "user-create", f"{username} ({role})", None, True)


def set_password(owner: psycopg.Connection, username: str, password: str) -> bool:
    """A new password: its throttling is cleared and every session of the user ends."""
    if len(password) < 12:
        raise ValueError("password: at least 12 characters")
    cur = owner.execute(
        "UPDATE users SET password_hash = %s WHERE username = %s",
        (HASHER.hash(password), username),
    )
    if cur.rowcount:
        owner.execute("DELETE FROM login_throttle WHERE username = %s", (username,))
        owner.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = %s)",
            (username,),
        )
        audit(owner, "admin-cli", "user-password", username, None, True)
    return bool(cur.rowcount)


def set_disabled(owner: psycopg.Connection, username: str, disabled: bool) -> bool:
    cur = owner.execute("UPDATE users SET disabled = %s WHERE username = %s", (disabled, username))
    if cur.rowcount:
        owner.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = %s)",
            (username,),
        )
        audit(
            owner, "admin-cli", "user-disable" if disabled else "user-enable", username, None, True
        )
    return bool(cur.rowcount)


def list_users(owner: psycopg.Connection) -> list[tuple[str, str, bool, bool]]:
    rows = owner.execute(
        "SELECT username, role, disabled, EXISTS (SELECT 1 FROM login_throttle t"
        " WHERE t.username = u.username AND t.not_before > now()) "
        "FROM users u ORDER BY username"
    ).fetchall()
    return [(str(a), str(b), bool(c), bool(d)) for a, b, c, d in rows]
