"""Rotating the application's database login, as one `Rotation` of the phase machine. The
application's grants belong to a NOLOGIN role (claims_app); it logs in as one of two login
roles, each SET ROLE to it, so one login can get a new password while the other serves:

    staged     a new password for the login not in use, on the control node only (sealed)
    published  the database admits that login with it (its verifier, LOGIN)
    switched   each application host first checks that the database admits it (a fresh
               connection, the password on stdin), then writes it and restarts on it
    verified   each application host connects with its own settings as the new login
    retired    no session still uses the old login (waited for), then it is disabled
               (NOLOGIN, no password) and its password tried once more and refused

The control node's secrets directory holds the state Ansible reads: `db-app-login` names the
login in use, and a login is enabled while its password file `db-<login>` exists. Rolling
back `switched` writes the old name back and restarts on it; rolling back `published`
disables the new login again. The ledger records login names only.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path

from ops.files import write_private
from ops.rotation.ledger import Ledger
from ops.rotation.machine import Rotation, pending
from ops.rotation.steps import StepFailed, Steps
from ops.vault.sealed import write_secret

LOGINS = ("claims_app_a", "claims_app_b")
APP_HOSTS = "role_app:role_intake"
DB_HOSTS = "role_db"


def new_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def new_salt() -> str:
    return "".join(secrets.choice("0123456789abcdef") for _ in range(32))


def first_logins(secrets_dir: Path) -> list[Path]:
    """The owner's and the login in use's passwords and salts, sealed, where missing: what
    site.yml reads on its first run. Returns the files made."""
    made = []
    for login in ("claims_owner", in_use(secrets_dir)):
        for path, make in ((secrets_dir / f"db-{login}", new_password),
                           (secrets_dir / f"db-{login}.salt", new_salt)):  # fmt: skip
            if not path.exists():
                write_secret(path, make() + "\n")
                made.append(path)
    return made


def in_use(secrets_dir: Path) -> str:
    marker = secrets_dir / "db-app-login"
    name = marker.read_text().strip() if marker.exists() else LOGINS[0]
    if name not in LOGINS:
        raise StepFailed(f"{marker}: {name!r} is not one of {', '.join(LOGINS)}")
    return name


def db_login_rotation(steps: Steps, secrets_dir: Path, ledger: Ledger) -> Rotation:
    resumed = pending(ledger, "db-login:claims_app")
    old = resumed.old if resumed else in_use(secrets_dir)
    new = LOGINS[1 - LOGINS.index(old)]
    password, staged = secrets_dir / f"db-{new}", secrets_dir / f"db-{new}.staged"
    salt = secrets_dir / f"db-{new}.salt"
    marker = secrets_dir / "db-app-login"

    def stage() -> None:
        if not password.exists():
            write_secret(staged, new_password() + "\n")
            write_secret(salt, new_salt() + "\n")

    def unstage() -> None:
        staged.unlink(missing_ok=True)
        salt.unlink(missing_ok=True)

    def publish() -> None:
        if staged.exists():
            staged.replace(password)
        steps.run("db-logins", DB_HOSTS)

    def unpublish() -> None:
        password.unlink(missing_ok=True)
        salt.unlink(missing_ok=True)
        steps.run("db-logins", DB_HOSTS)

    def switch() -> None:
        steps.run(
            "db-check",
            APP_HOSTS,
            key_rotation_db_login=new,
            key_rotation_db_password_file=str(password),
        )
        write_private(marker, new + "\n")
        steps.run("db-switch", APP_HOSTS)

    def unswitch() -> None:
        write_private(marker, old + "\n")
        steps.run("db-switch", APP_HOSTS)

    def verify() -> None:
        steps.run("db-check", APP_HOSTS)  # the application's own settings: the new login

    def retire() -> None:
        steps.run("db-sessions", DB_HOSTS, key_rotation_db_login=old)
        old_password = secrets_dir / f"db-{old}"
        retired = old_password.with_name(old_password.name + ".retired")
        if old_password.exists():
            old_password.replace(retired)  # disabled from here on; kept to be tried once
        try:
            steps.run("db-logins", DB_HOSTS)
            steps.run(
                "db-check",
                APP_HOSTS,
                key_rotation_db_login=old,
                key_rotation_db_password_file=str(retired),
                key_rotation_db_expect="refused",
            )
        except Exception:
            retired.replace(old_password)  # the old login stays usable for the rollback
            steps.run("db-logins", DB_HOSTS)
            raise
        retired.unlink(missing_ok=True)
        (secrets_dir / f"db-{old}.salt").unlink(missing_ok=True)

    return Rotation(
        "db-login:claims_app",
        old,
        new,
        {
            "staged": stage,
            "published": publish,
            "switched": switch,
            "verified": verify,
            "retired": retire,
        },
        {"staged": unstage, "published": unpublish, "switched": unswitch},
    )
