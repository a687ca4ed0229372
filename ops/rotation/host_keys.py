"""Rotating one host's SSH host key, as one `Rotation` of the phase machine:

    staged     the host makes a new key beside the served one (sshd does not read it)
    published  the control node's known_hosts (the operators' file, which Ansible and the
               fund's stand-in read) holds the old and the new key
    switched   sshd serves the new key, after `sshd -t` passed with it; the old one is kept
               aside on the host
    verified   a fresh connection, by the inventory's way in, presents the new key
    retired    the old key is deleted on the host and from known_hosts; the host no longer
               presents it

A host whose key an outside party pins (the intake host, for the fund: ops/rotation/partners.py)
is announced at `published` too: sshd offers the new key beside the served one, and a notice in
Japanese and English is written for the operator to send. Its rotation stops at `published`
until the partner confirms or the notice period ends.

The access review pins whatever key the host serves, read over Ansible's verified connection,
so from `switched` on it pins the new one. Rolling back `switched` serves the old key again;
rolling back `published` takes the new line out of known_hosts (and withdraws the notice);
rolling back `staged` deletes the unused key (and sshd stops offering it).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from infra.config import DEFAULT_NOTICE_DAYS
from ops.rotation.ledger import Ledger
from ops.rotation.machine import Rotation, pending
from ops.rotation.partners import (
    Notice,
    Terms,
    archive_notice,
    may_switch,
    notice_paths,
    read_notice,
    withdraw_notice,
    write_notice,
)
from ops.rotation.reach import served_host_key
from ops.rotation.sshca import line_fingerprint
from ops.rotation.steps import StepFailed, Steps


class KnownHosts:
    """An OpenSSH known_hosts file whose lines are `name,address keytype key`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        return [ln for ln in self.path.read_text().splitlines() if ln.strip()]

    def keys(self, host: str) -> list[str]:
        """The keys (`type base64`) known for `host`."""
        return [
            " ".join(ln.split()[1:3]) for ln in self.lines() if host in ln.split()[0].split(",")
        ]

    def add(self, host: str, address: str, key: str) -> None:
        if key not in self.keys(host):
            self._write([*self.lines(), f"{host},{address} {key}"])

    def remove(self, host: str, key: str) -> None:
        self._write(
            [
                ln
                for ln in self.lines()
                if not (host in ln.split()[0].split(",") and " ".join(ln.split()[1:3]) == key)
            ]
        )

    def _write(self, lines: list[str]) -> None:
        tmp = self.path.with_suffix(".new")
        tmp.write_text("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)
        tmp.replace(self.path)  # readers see the old file or the new one, never half


def host_key_rotation(
    host: str,
    address: str,
    steps: Steps,
    known_hosts: KnownHosts,
    out_dir: Path,
    ledger: Ledger,
    ssh_config: Path | None = None,
    *,
    pinned_by: tuple[str, ...] = (),
    terms: Terms | None = None,
) -> tuple[Rotation, str]:
    """The rotation, and the phase this run stops after: `published` while a partner that
    pins the key has neither confirmed nor seen its notice period end."""
    # Long on purpose: the phases of one host-key rotation as closures over the same host, files and
    # ledger, handed to the phase machine together; apart, each would need all of them passed in
    secret = f"host-key:{host}"
    notices = out_dir / "notices"
    terms = terms or Terms(dt.timedelta(days=DEFAULT_NOTICE_DAYS))
    next_pub = out_dir / f"{host}.next.pub"
    resumed = pending(ledger, secret)
    known = known_hosts.keys(host)
    if resumed is None and len(known) != 1:
        raise StepFailed(
            f"{known_hosts.path}: {len(known)} keys for {host}; expected the one served"
        )
    old_key = known[0] if known else ""
    if resumed is not None:
        old_key = next((k for k in known if line_fingerprint(k) == resumed.old), "")
        if not old_key:
            raise StepFailed(
                f"rotation {resumed.rotation} of {secret} stopped at {resumed.phase}, but "
                f"{known_hosts.path} no longer knows its old key {resumed.old}: the host was "
                "remade? Close that rotation first: claims-dc rotate --ledger "
                f"{ledger.path} abandon {secret} --reason '...'"
            )
    rotation = Rotation(secret, line_fingerprint(old_key), resumed.new if resumed else "", {}, {})

    def new_key() -> str:
        return " ".join(next_pub.read_text().split()[:2])

    def stage() -> None:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        steps.run("host-key-stage", host, key_rotation_out_dir=str(out_dir))
        rotation.new = line_fingerprint(new_key())

    def publish_notice() -> None:
        now = dt.datetime.now(dt.UTC)
        write_notice(notices, Notice(
            secret, host, address, pinned_by, new_key(), rotation.new, rotation.old,
            now.isoformat(timespec="seconds"), (now + terms.notice).isoformat(timespec="seconds"),
        ))  # fmt: skip

    def publish() -> None:
        known_hosts.add(host, address, new_key())
        if pinned_by:
            steps.run("host-key-announce", host)
            publish_notice()

    def switch() -> None:
        steps.run("host-key-switch", host)

    def verify() -> None:
        if served_host_key(ssh_config, address) != new_key():
            raise StepFailed(f"{host} ({address}) does not present the new host key")

    def retire() -> None:
        steps.run("host-key-retire", host)
        known_hosts.remove(host, old_key)
        if served_host_key(ssh_config, address) == old_key:
            raise StepFailed(f"{host} ({address}) still presents the old host key")
        next_pub.unlink(missing_ok=True)
        archive_notice(notices, host)

    rotation.do = {
        "staged": stage,
        "published": publish,
        "switched": switch,
        "verified": verify,
        "retired": retire,
    }

    def discard() -> None:
        steps.run("host-key-discard", host)
        next_pub.unlink(missing_ok=True)

    def unpublish() -> None:
        known_hosts.remove(host, new_key())
        withdraw_notice(notices, host)

    rotation.undo = {
        "staged": discard,
        "published": unpublish,
        "switched": lambda: steps.run("host-key-unswitch", host),
    }
    if pinned_by and resumed is not None and resumed.phase == "published" \
            and next_pub.exists() and _notice_of(notices, host, rotation.new) is None:  # fmt: skip
        publish_notice()  # lost beside the ledger: told again, and the period starts again
    return rotation, _stop(rotation, resumed is not None, pinned_by, terms, notices, host)


def _stop(rotation: Rotation, resuming: bool, pinned_by: tuple[str, ...], terms: Terms,
          notices: Path, host: str) -> str:  # fmt: skip
    """`retired`, unless a partner pins the key and the switch must wait; the reason either
    way goes into the ledger's `switched` entry or the run's report (rotation.notes)."""
    if not pinned_by:
        return "retired"
    notice = _notice_of(notices, host, rotation.new) if resuming else None
    if notice is None:
        if terms.switch_now:
            rotation.notes["switched"] = (
                f"switched at once (--switch-now), before {', '.join(pinned_by)} could be told: "
                "their logins fail with 'Host key verification failed' until they add the new key"
            )
            return "retired"
        rotation.notes["published"] = (
            f"announced to {', '.join(pinned_by)} (notice {notice_paths(notices, host)[1]}); the "
            "switch waits for their confirmation or the end of the notice period"
        )
        return "published"
    ok, why = may_switch(notice, terms)
    rotation.notes["switched" if ok else "published"] = why
    return "retired" if ok else "published"


def _notice_of(notices: Path, host: str, new_fingerprint: str) -> Notice | None:
    """The notice of this rotation (of its new key), not one left by another."""
    notice = read_notice(notices, host)
    return notice if notice is not None and notice.new_fingerprint == new_fingerprint else None
