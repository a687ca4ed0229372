"""Rotating the fund's SFTP key, as one `Rotation` of the phase machine. The fund makes its
new key pair itself and sends the public half; its private key never reaches the data center.

    staged     the key the fund sent is checked (one public key, ed25519, ECDSA or RSA of 3072
               bits and more, not the key in use) and kept beside the inventory
    published  the intake host accepts the new key, and the old one until the window the
               operator set ends: sshd itself refuses the old one from then on (authorized_keys
               expiry-time), whether or not anyone reruns anything
    switched   the fund uses the new key: the operator confirms it (--fund-confirmed), or the
               window has ended; until then the rotation waits at `published`
    verified   on confirmation, sshd's log shows the fund logged in with the new key since it
               was published; after the window, the new key is the one accepted
    retired    the old key is removed, and the host accepts the new key alone

Control-node files beside the inventory: fund_sftp.pub (accepted), fund_sftp.retiring.pub and
fund_sftp.retiring.until (the old key and its window's end, YYYYMMDDHHMM UTC),
fund_sftp.next.pub (staged). Rolling back `published` makes the old key the accepted one again.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

from ops.rotation.ledger import Ledger
from ops.rotation.machine import Interrupted, Rotation, pending
from ops.rotation.sshca import CAError, key_info, line_fingerprint
from ops.rotation.steps import StepFailed, Steps

INTAKE = "role_intake"
SECRET = "sftp-key:fund"  # noqa: S105 - the ledger's name for it, not a secret
WINDOW = re.compile(r"^(\d+)([hd])$")
ACCEPTED_TYPES = {"ED25519", "ECDSA"}


def parse_window(text: str) -> dt.timedelta:
    m = WINDOW.match(text)
    if not m or int(m[1]) == 0:
        raise StepFailed(f"window {text!r}: hours or days, like 48h or 14d")
    n = int(m[1])
    window = dt.timedelta(hours=n) if m[2] == "h" else dt.timedelta(days=n)
    if window > dt.timedelta(days=90):
        raise StepFailed(f"window {text!r}: at most 90 days")
    return window


def check_public_key(path: Path, current: str) -> str:
    """The one public key line in `path`, as the fund sent it; refused with the reason."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise StepFailed(f"{path}: cannot read the fund's key ({e})") from e
    if "PRIVATE KEY" in text:
        raise StepFailed(f"{path}: a private key; the fund sends its public key only")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 1:
        raise StepFailed(f"{path}: {len(lines)} keys; one public key is expected")
    try:
        bits, fp, kind = key_info(lines[0])
    except (CAError, ValueError) as e:
        raise StepFailed(f"{path}: not an OpenSSH public key ({e})") from e
    if kind not in ACCEPTED_TYPES and not (kind == "RSA" and bits >= 3072):
        raise StepFailed(f"{path}: {kind} {bits} bits; ed25519, ECDSA or RSA of 3072+ bits")
    if fp == line_fingerprint(current):
        raise StepFailed(f"{path}: {fp} is the key in use already")
    return lines[0]


def sftp_key_rotation(state: Path, steps: Steps, ledger: Ledger, *, new_key: Path | None,
                      window: dt.timedelta, confirmed: bool) -> tuple[Rotation, str]:  # fmt: skip
    """The rotation, and the phase to stop after this run (`published` while the fund has
    neither confirmed nor run out of window)."""
    current, nxt = state / "fund_sftp.pub", state / "fund_sftp.next.pub"
    retiring, until_file = state / "fund_sftp.retiring.pub", state / "fund_sftp.retiring.until"
    resumed = pending(ledger, SECRET)
    if resumed is None:
        if new_key is None:
            raise StepFailed(
                "sftp-key: no rotation under way; give the key the fund sent (--fund-key)"
            )
        new_line = check_public_key(new_key, current.read_text())
        old_line = current.read_text().strip()
    else:
        new_line = (nxt if nxt.exists() else current).read_text().strip()
        old_line = (retiring if retiring.exists() else current).read_text().strip()
    old_fp, new_fp = line_fingerprint(old_line), line_fingerprint(new_line)

    def window_over() -> bool:
        if not until_file.exists():
            return False
        end = dt.datetime.strptime(until_file.read_text().strip(), "%Y%m%d%H%M")
        return dt.datetime.now(dt.UTC).replace(tzinfo=None) >= end

    def stage() -> None:
        nxt.write_text(new_line + "\n")

    def publish() -> None:
        if nxt.exists():
            end = dt.datetime.now(dt.UTC) + window
            retiring.write_text(old_line + "\n")
            until_file.write_text(end.strftime("%Y%m%d%H%M") + "\n")
            tmp = current.with_suffix(".new")
            shutil.copy(nxt, tmp)
            tmp.replace(current)
            nxt.unlink()
        steps.run("sftp-keys", INTAKE, key_rotation_sftp_fingerprints=[new_fp, old_fp])

    def unpublish() -> None:
        if retiring.exists():
            current.write_text(old_line + "\n")
            retiring.unlink()
            until_file.unlink(missing_ok=True)
        steps.run("sftp-keys", INTAKE, key_rotation_sftp_fingerprints=[old_fp])

    def switch() -> None:
        if not (confirmed or window_over()):
            raise Interrupted("waiting for the fund: not confirmed, and its window is open")

    def verify() -> None:
        if window_over() and not confirmed:
            return  # sshd refuses the old key already; the new one is the accepted one
        published_at = next(e.at for e in reversed(ledger.entries())
                            if e.secret == SECRET and e.phase == "published")  # fmt: skip
        since = dt.datetime.fromisoformat(published_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        try:
            steps.run("sftp-seen", INTAKE, key_rotation_sftp_fingerprints=[new_fp],
                      key_rotation_sftp_since=since)  # fmt: skip
        except StepFailed as e:
            # The fund says it switched: rolling back would lock it out. Wait for its login.
            raise Interrupted(f"no login by the fund with {new_fp} since {since} yet") from e

    def retire() -> None:
        retiring.unlink(missing_ok=True)
        until_file.unlink(missing_ok=True)
        steps.run("sftp-keys", INTAKE, key_rotation_sftp_fingerprints=[new_fp])

    rotation = Rotation(
        SECRET, old_fp, new_fp,
        {"staged": stage, "published": publish, "switched": switch,
         "verified": verify, "retired": retire},
        {"staged": lambda: nxt.unlink(missing_ok=True), "published": unpublish},
    )  # fmt: skip
    stop = "retired" if confirmed or window_over() else "published"
    return rotation, stop
