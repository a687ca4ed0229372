"""Accounts, sessions and the audit log.

Passwords are hashed with argon2id. Repeated failures lock an account for a while. Sessions are
random tokens whose SHA-256 alone is stored, with an expiry. Every login, success or failure,
and every read of personal data goes to the append-only audit log.
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
# Checked against when the user does not exist, so that a wrong name costs the same time.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Policy:
    lockout_failures: int = 5
    lockout_minutes: int = 15
    session_minutes: int = 30


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
    """Returns (session token, "ok") or (None, the reason). Every attempt is audited."""
    with conn.transaction():
        row = conn.execute(
            "SELECT id, password_hash, disabled, failed_logins, locked_until, role "
            "FROM users WHERE username = %s FOR UPDATE",
            (username,),
        ).fetchone()
        now = dt.datetime.now(dt.UTC)
        if row is None:
            _verify(_DUMMY_HASH, password)
            audit(conn, username, "login", None, address, False)
            return None, "unknown user or wrong password"
        user_id, stored, disabled, failures, locked_until, _ = row
        if disabled:
            audit(conn, username, "login-disabled", None, address, False)
            return None, "account disabled"
        if locked_until is not None and locked_until > now:
            audit(conn, username, "login-locked", None, address, False)
            return None, "account locked after repeated failures; try again later"
        if not _verify(stored, password):
            failures += 1
            lock = (now + dt.timedelta(minutes=policy.lockout_minutes)
                    if failures >= policy.lockout_failures else None)  # fmt: skip
            conn.execute(
                "UPDATE users SET failed_logins = %s, locked_until = %s WHERE id = %s",
                (0 if lock else failures, lock, user_id),
            )
            audit(conn, username, "login", "locked" if lock else None, address, False)
            return None, "unknown user or wrong password"
        conn.execute(
            "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = %s", (user_id,)
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
    """A new password: the lockout is cleared and every session of the user ends."""
    if len(password) < 12:
        raise ValueError("password: at least 12 characters")
    cur = owner.execute(
        "UPDATE users SET password_hash = %s, failed_logins = 0, locked_until = NULL "
        "WHERE username = %s",
        (HASHER.hash(password), username),
    )
    if cur.rowcount:
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
        "SELECT username, role, disabled, coalesce(locked_until > now(), false) "
        "FROM users ORDER BY username"
    ).fetchall()
    return [(str(a), str(b), bool(c), bool(d)) for a, b, c, d in rows]
