"""Rotate everything, or one kind of secret, through the phase machine and the ledger.

Kinds, in the order `all` takes them (each a `Rotation` of ops/rotation/machine.py):

    ssh-user-ca    the operators' user CA, by overlap (ops/rotation/user_ca.py)
    host-keys      each data-center host's SSH host key (ops/rotation/host_keys.py)
    db-login       the application's database login (ops/rotation/db_login.py)
    tls            each web host's TLS certificate from the internal CA (ops/rotation/tls.py)
    aws            the backup key's automatic rotation checked; the IAM access keys kept in
                   secrets/aws-credentials rotated (ops/rotation/aws_keys.py)
    sftp-key       the fund's SFTP key, with an overlap window (ops/rotation/sftp_key.py)

A run resumes every rotation of the chosen kinds that an earlier run left unfinished, and
starts a new rotation only of a secret that is due under the stack's calendar
(ops/rotation/calendar.py), or of any with --early; a secret rotated within its interval is
reported `not-due`, with its age and the date it falls due. So running the same command again
after an interruption continues what stopped and changes nothing that finished. A host key an
outside party pins (ops/rotation/partners.py) waits at `published` for the partner.

Everything the driver keeps lives beside the inventory: the ledger and Ansible's log in
rotation/, the CAs in ssh-ca/, the operators' known_hosts, the secrets directory. The
break-glass path never depends on what is rotated: every host step runs over the operators'
plain keys, checked against known_hosts, with SSH multiplexing off.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import DEFAULT_NOTICE_DAYS, ROTATION_KINDS
from ops.awsapi import Endpoint
from ops.playbook import BIN
from ops.rotation.aws_keys import access_key_rotation, check_kms_rotation, read_profiles
from ops.rotation.calendar import Due, calendar, due, policy
from ops.rotation.db_login import db_login_rotation
from ops.rotation.host_keys import KnownHosts, host_key_rotation
from ops.rotation.ledger import PHASES, Ledger
from ops.rotation.machine import Outcome, Rotation, pending, rotate
from ops.rotation.partners import Terms
from ops.rotation.sftp_key import sftp_key_rotation
from ops.rotation.sshca import Certificate, UserCA, fingerprint, trusted
from ops.rotation.steps import StepFailed, Steps
from ops.rotation.tls import tls_rotation
from ops.rotation.user_ca import ca_rotation, try_login

KINDS = ROTATION_KINDS


@dataclass
class Site:
    inventory: Path
    hosts: dict[str, str]  # data-center host -> address
    groups: dict[str, list[str]]
    vars: dict[str, Any]  # the inventory's variables (as a data-center host sees them)
    pinned_by: dict[str, tuple[str, ...]] = field(default_factory=dict)  # host -> partners

    @property
    def every_days(self) -> dict[str, int]:
        """Days between rotations per kind: the stack's calendar."""
        return policy(self.vars.get("claims_dc_rotation_every_days"))

    @property
    def notice(self) -> dt.timedelta:
        """How long a partner is told of a new key it pins before the switch."""
        days = self.vars.get("claims_dc_rotation_notice_days", DEFAULT_NOTICE_DAYS)
        ok = isinstance(days, int) and not isinstance(days, bool) and days > 0
        return dt.timedelta(days=days if ok else DEFAULT_NOTICE_DAYS)

    @property
    def state(self) -> Path:
        return self.inventory.parent

    @property
    def ssh_config(self) -> Path | None:
        """The SSH configuration Ansible uses (ansible_ssh_common_args' -F): the way in that
        the rotation's own fresh connections take too."""
        args = str(self.vars.get("ansible_ssh_common_args", "")).split()
        if "-F" in args and args.index("-F") + 1 < len(args):
            return Path(args[args.index("-F") + 1])
        return None

    @classmethod
    def read(cls, inventory: Path) -> Site:
        inventory = inventory.resolve()  # files beside it are handed to Ansible by path
        proc = subprocess.run(
            [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise StepFailed(f"{inventory}: ansible-inventory failed: {proc.stderr.strip()[-300:]}")
        data = json.loads(proc.stdout)
        hostvars = data["_meta"]["hostvars"]
        groups = {g: v.get("hosts", []) for g, v in data.items() if isinstance(v, dict)}
        dc = groups.get("datacenter", [])
        if not dc:
            raise StepFailed(f"{inventory}: no hosts in group datacenter")
        hosts = {h: hostvars[h].get("ansible_host", h) for h in dc}
        pinned = {h: tuple(hostvars[h].get("claims_dc_host_key_pinned_by") or ()) for h in dc}
        return cls(inventory, hosts, groups, hostvars[dc[0]], pinned)

    def aws(self) -> Endpoint:
        """The AWS API as the inventory describes it for the control node: its endpoint (none:
        AWS's own), the CA that endpoint's certificate comes from, and an AWS config file
        instead of the default credential chain, where the inventory names one."""
        return Endpoint(
            self.vars.get("claims_dc_aws_endpoint_url") or None,
            str(self.vars.get("claims_dc_aws_region", "ap-northeast-1")),
            self.vars.get("claims_dc_aws_ca_cert_file") or None,
            self.vars.get("claims_dc_aws_config_file") or None,
        )


@dataclass
class Operator:
    """Whose certificate a user-CA rotation moves to the new CA."""

    public_key: Path
    identity: str
    principals: list[str]


def _ca_pair(ca_dir: Path, ledger: Ledger) -> tuple[UserCA, UserCA]:
    """The user CA hosts trust now and the next generation; or, for a rotation that stopped,
    the two it was between."""
    names = {fingerprint(p): p.stem for p in ca_dir.glob("user-ca-*.pub")}
    resumed = pending(ledger, "ssh-user-ca")
    if resumed is not None and {resumed.old, resumed.new} <= set(names):
        return UserCA(ca_dir, names[resumed.old]), UserCA(ca_dir, names[resumed.new])
    current = [names[fp] for fp in trusted(ca_dir) if fp in names]
    if len(current) != 1:
        raise StepFailed(
            f"{ca_dir}: hosts trust {len(current)} user CAs; rotating needs one "
            f"(claims-dc rotate --ca-dir {ca_dir} ca init user-ca-1, then ca trust user-ca-1)"
        )
    n = int(current[0].rsplit("-", 1)[1])
    return UserCA(ca_dir, current[0]), UserCA(ca_dir, f"user-ca-{n + 1}")


@dataclass
class Options:
    operator: Operator | None = None  # ssh-user-ca
    fund_key: Path | None = None  # sftp-key: the public key the fund sent
    fund_window: dt.timedelta = dt.timedelta(days=14)
    fund_confirmed: bool = False
    until: str = "retired"
    early: bool = False  # start new rotations of secrets not yet due
    partner_confirmed: frozenset[str] = frozenset()  # partners holding a pinned key's new one
    switch_now: bool = False  # switch pinned keys without waiting for the partners
    notice: dt.timedelta | None = None  # None: the stack's notice period
    limit: frozenset[str] = frozenset()  # host-keys, tls: only these hosts (empty: all)


class Skip(Exception):
    """Nothing to rotate of this kind now, and why (reported, not a failure)."""


Build = Callable[[], tuple[Rotation, str]]


@dataclass(frozen=True)
class Planned:
    """One secret's rotation, built only when its turn comes (a host key's old fingerprint is
    read just before it is rotated). `requested`: the operator asked for a new one explicitly
    (the fund sent a new key), so the calendar does not hold it back."""

    secret: str
    build: Build
    requested: bool = False


def secrets_of(site: Site, kinds: list[str]) -> list[str]:
    """Every secret of these kinds the environment has, by its ledger name."""
    out: list[str] = []
    for kind in kinds:
        if kind == "ssh-user-ca":
            out.append("ssh-user-ca")
        elif kind == "host-keys":
            out += [f"host-key:{h}" for h in site.hosts]
        elif kind == "db-login":
            out.append("db-login:claims_app")
        elif kind == "tls":
            out += [f"tls:{h}" for h in site.groups.get("role_app", [])]
        elif kind == "aws":
            creds = site.state / "secrets" / "aws-credentials"
            if creds.exists():
                out += [f"aws-key:{p}" for p in read_profiles(creds).sections()]
        elif kind == "sftp-key":
            out.append("sftp-key:fund")
        else:
            raise StepFailed(f"unknown kind {kind!r}: one of all, {', '.join(KINDS)}")
    return out


def due_calendar(site: Site, kinds: list[str], ledger: Ledger) -> list[Due]:
    return calendar(secrets_of(site, kinds), ledger, site.every_days)


def plan(kind: str, site: Site, steps: Steps, ledger: Ledger, opts: Options) -> list[Planned]:
    """The rotations of one kind, with the phase each stops after."""
    known = KnownHosts(site.state / "known_hosts")
    if kind == "ssh-user-ca":
        if opts.operator is None and pending(ledger, "ssh-user-ca") is None:
            raise Skip("no operator key given (--operator-key, --identity, --principal)")
        if opts.operator is None:
            raise StepFailed(
                "ssh-user-ca: a rotation is under way; resuming it needs the operator key it "
                "moves (--operator-key, --identity, --principal)"
            )
        op = opts.operator

        def user_ca() -> tuple[Rotation, str]:
            old, new = _ca_pair(site.state / "ssh-ca", ledger)

            def login(cert: Certificate) -> bool:
                return all(
                    try_login(cert, a, known.path, op.principals[0], site.ssh_config)
                    for a in site.hosts.values()
                )

            def publish() -> None:
                steps.run("ssh-trust", "datacenter")

            rotation = ca_rotation(
                old, new, op.public_key, op.identity, op.principals, publish, login
            )
            return rotation, opts.until

        return [Planned("ssh-user-ca", user_ca)]
    if kind == "host-keys":
        terms = Terms(opts.notice or site.notice, opts.partner_confirmed, opts.switch_now)
        out_dir = site.state / "rotation"
        return [
            Planned(f"host-key:{h}", _host_key(h, a, steps, known, out_dir, ledger, opts.until,
                                               site.ssh_config, site.pinned_by.get(h, ()), terms))
            for h, a in site.hosts.items() if not opts.limit or h in opts.limit
        ]  # fmt: skip
    if kind == "db-login":
        secrets_dir = site.state / "secrets"
        return [
            Planned(
                "db-login:claims_app",
                lambda: (db_login_rotation(steps, secrets_dir, ledger), opts.until),
            )
        ]
    if kind == "tls":
        return [Planned(f"tls:{h}", _tls(h, site.state / "pki", steps, ledger, opts.until))
                for h in site.groups.get("role_app", [])
                if not opts.limit or h in opts.limit]  # fmt: skip
    if kind == "aws":
        creds = site.state / "secrets" / "aws-credentials"
        if not creds.exists():
            raise Skip(f"no IAM access key is kept on the control node ({creds})")
        endpoint = site.aws()
        return [Planned(f"aws-key:{p}",
                        _aws_key(p, site.state / "secrets", endpoint, ledger, opts.until))
                for p in read_profiles(creds).sections()]  # fmt: skip
    if kind == "sftp-key":
        if opts.fund_key is None and pending(ledger, "sftp-key:fund") is None:
            raise Skip("the fund has sent no new key (--fund-key)")

        def sftp() -> tuple[Rotation, str]:
            rotation, stop = sftp_key_rotation(
                site.state, steps, ledger, new_key=opts.fund_key, window=opts.fund_window,
                confirmed=opts.fund_confirmed,
            )  # fmt: skip
            return rotation, min(stop, opts.until, key=PHASES.index)

        return [Planned("sftp-key:fund", sftp, requested=opts.fund_key is not None)]
    raise StepFailed(f"unknown kind {kind!r}: one of all, {', '.join(KINDS)}")


def _host_key(host: str, address: str, steps: Steps, known: KnownHosts, out_dir: Path,
              ledger: Ledger, until: str, ssh_config: Path | None, pinned_by: tuple[str, ...],
              terms: Terms) -> Build:  # fmt: skip
    def build() -> tuple[Rotation, str]:
        rotation, stop = host_key_rotation(
            host, address, steps, known, out_dir, ledger, ssh_config,
            pinned_by=pinned_by, terms=terms,
        )  # fmt: skip
        return rotation, min(stop, until, key=PHASES.index)

    return build


def _tls(host: str, pki: Path, steps: Steps, ledger: Ledger, until: str) -> Build:
    return lambda: (tls_rotation(host, pki, steps, ledger), until)


def _aws_key(profile: str, secrets_dir: Path, endpoint: Endpoint, ledger: Ledger,
             until: str) -> Build:  # fmt: skip
    return lambda: (access_key_rotation(profile, secrets_dir, endpoint, ledger), until)


def check_aws(site: Site) -> Outcome:
    """The backup key's automatic rotation: a check, recorded beside the rotations."""
    endpoint = site.aws()
    key_id = str(site.vars.get("claims_dc_backup_kms_key_id", ""))
    if not key_id:
        return Outcome("kms:backup", "", None, "failed", None, "no claims_dc_backup_kms_key_id")
    try:
        return Outcome(
            "kms:backup", "", None, "checked", None, check_kms_rotation(endpoint, key_id)
        )
    except StepFailed as e:
        return Outcome("kms:backup", "", None, "failed", None, str(e))


def held_back(item: Planned, every: Mapping[str, int], ledger: Ledger,
              opts: Options) -> Outcome | None:  # fmt: skip
    """`not-due` for a secret whose last rotation finished within its interval and that no one
    asked to rotate early; None when it is to run (resumed, due, --early or requested)."""
    if opts.early or item.requested:
        return None
    when = due(item.secret, ledger, every)
    if when.status != "not-due":
        return None
    return Outcome(item.secret, "", None, "not-due",
                   note=f"{when.describe()}; --early rotates it now")  # fmt: skip


def run_planned(planned: list[Planned], every: Mapping[str, int], ledger: Ledger,
                opts: Options) -> list[Outcome]:  # fmt: skip
    """Each planned rotation in turn: resumed if under way, started if due (or asked for),
    otherwise reported `not-due` and left alone."""
    outcomes = []
    for item in planned:
        waiting = held_back(item, every, ledger, opts)
        if waiting is not None:
            print(f"rotation: {item.secret}: not due ({waiting.note})", file=sys.stderr)
            outcomes.append(waiting)
            continue
        try:
            rotation, until = item.build()
        except StepFailed as e:
            outcomes.append(Outcome(item.secret, "", None, "not-started", None, str(e)))
            continue
        out = rotate(rotation, ledger, until=until)
        print(f"rotation: {out.secret}: {out.outcome} at {out.reached}", file=sys.stderr)
        outcomes.append(out)
    return outcomes


def rotate_kinds(
    site: Site, kinds: list[str], *, ledger: Ledger, steps: Steps, opts: Options
) -> list[Outcome]:
    outcomes = []
    for kind in kinds:
        if kind == "aws":
            outcomes.append(check_aws(site))
        try:
            planned = plan(kind, site, steps, ledger, opts)
        except Skip as e:
            outcomes.append(Outcome(kind, "", None, "skipped", None, note=str(e)))
            continue
        except StepFailed as e:
            outcomes.append(Outcome(kind, "", None, "not-started", None, str(e)))
            continue
        outcomes += run_planned(planned, site.every_days, ledger, opts)
    return outcomes
