"""The lab's side of key rotation: what the other parties do, and what a real
environment would already have.

- The fund (the sender stand-in) makes its new SFTP key pair itself and hands over the public
  half, then switches to its new key. Its OpenSSH client (UpdateHostKeys) learns the intake
  host's announced new host key on a delivery; it checks the key against the notice and
  confirms, as the real fund would.
- The lab operator (L0001) keeps one IAM access key on the control node for the ops tools
  (secrets/aws-credentials, sealed), the kind of remaining key the AWS rotation replaces.
- The operators' user CA exists and is trusted before the first rotation.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import podman as pm
from lab.backups import lab_client
from lab.delivery import SENDER_USER
from lab.lab import operator_dir
from lab.plan import LabPlan
from ops.playbook import run_playbook
from ops.rotation.aws_keys import read_profiles, write_profile
from ops.rotation.calendar import Due
from ops.rotation.driver import KINDS, Operator, Options, Site, due_calendar, rotate_kinds
from ops.rotation.host_keys import KnownHosts
from ops.rotation.ledger import Entry, Ledger
from ops.rotation.machine import Outcome, pending
from ops.rotation.partners import read_notice
from ops.rotation.sshca import UserCA, line_fingerprint, set_trusted, trusted
from ops.rotation.status import publish as publish_status
from ops.rotation.steps import Steps

AUTOMATION_USER = "l0001"  # the lab operator's own IAM user; the roster's L0001
OPERATOR_IDENTITY = "L0001 lab operator"
OPERATOR_ACCOUNT = "opsadmin"
SSH_DIR = f"/home/{SENDER_USER}/.ssh"


def ensure_user_ca(inventory: Path) -> None:
    """A trusted user CA, published to the hosts, if none is yet."""
    ca_dir = inventory.parent / "ssh-ca"
    if trusted(ca_dir):
        return
    set_trusted(ca_dir, [UserCA(ca_dir, "user-ca-1").create()])
    run = run_playbook(inventory, "rotate_keys.yml")
    if not run.ok:
        raise RuntimeError(f"publishing the first user CA failed: {run.summary()}")


def ensure_automation_key(state: Path, endpoint_url: str, ca_cert: str) -> str:
    """L0001's IAM user and one access key, kept in secrets/aws-credentials; its key ID."""
    iam = lab_client("iam", endpoint_url, ca_cert, region="us-east-1")
    creds = state / "secrets" / "aws-credentials"
    try:
        iam.get_user(UserName=AUTOMATION_USER)
    except iam.exceptions.NoSuchEntityException:
        iam.create_user(UserName=AUTOMATION_USER, Tags=[{"Key": "StaffId", "Value": "L0001"}])
    live = {
        k["AccessKeyId"]
        for k in iam.list_access_keys(UserName=AUTOMATION_USER)["AccessKeyMetadata"]
    }
    if creds.exists():
        parser = read_profiles(creds)
        if AUTOMATION_USER in parser and parser[AUTOMATION_USER]["aws_access_key_id"] in live:
            return parser[AUTOMATION_USER]["aws_access_key_id"]
    for key_id in live:  # a key whose secret the control node lost is of no use to anyone
        iam.delete_access_key(UserName=AUTOMATION_USER, AccessKeyId=key_id)
    made = iam.create_access_key(UserName=AUTOMATION_USER)["AccessKey"]
    pair = {"aws_access_key_id": made["AccessKeyId"]}
    pair["aws_secret_access_key"] = made["SecretAccessKey"]
    write_profile(creds, AUTOMATION_USER, pair)
    return str(made["AccessKeyId"])


def _sender(plan: LabPlan, argv: list[str], **kw: Any) -> Any:
    return pm.exec_in(
        plan.first("sender").container, ["runuser", "-u", SENDER_USER, "--", *argv], **kw
    )


def fund_makes_new_key(plan: LabPlan, state: Path) -> Path:
    """The fund's new key pair, made on the sender; the public half as the fund hands it over."""
    _sender(plan, ["sh", "-c", f"test -e {SSH_DIR}/id_ed25519.new || ssh-keygen -q -t ed25519 "
                   f"-N '' -C fund-next -f {SSH_DIR}/id_ed25519.new"])  # fmt: skip
    sent = state / "fund_sftp.sent.pub"
    sent.write_text(_sender(plan, ["cat", f"{SSH_DIR}/id_ed25519.new.pub"]).stdout)
    return sent


def fund_known_fingerprints(plan: LabPlan) -> set[str]:
    """The fingerprints of the intake host's ed25519 keys (the kind rotated and pinned) the
    fund's client holds. (UpdateHostKeys also teaches it the host's ECDSA key, unrotated.)"""
    proc = _sender(plan, ["ssh-keygen", "-l", "-f", f"{SSH_DIR}/known_hosts"], check=False)
    return {ln.split()[1] for ln in proc.stdout.splitlines()
            if len(ln.split()) > 1 and ln.endswith("(ED25519)")}  # fmt: skip


def fund_confirms(plan: LabPlan, state: Path) -> list[str]:
    """What the fund does with a notice: a delivery (its client learns the announced key), a
    look at its known_hosts, and its confirmation if the key there is the one the notice
    gives. The partners that confirmed (the fund, or none)."""
    intake = plan.first("intake")
    notice = read_notice(state / "rotation" / "notices", intake.name)
    if notice is None:
        return []
    fund_logs_in(plan)
    return ["fund"] if notice.new_fingerprint in fund_known_fingerprints(plan) else []


def fund_switches(plan: LabPlan) -> None:
    """The fund moves to its new key; the old pair is kept aside (for the lab to try)."""
    moves = (
        "mv id_ed25519 id_ed25519.old && mv id_ed25519.pub id_ed25519.old.pub && "
        "mv id_ed25519.new id_ed25519 && mv id_ed25519.new.pub id_ed25519.pub"
    )
    _sender(plan, ["sh", "-c", f"cd {SSH_DIR} && if test -e id_ed25519.new; then {moves}; fi"])


def fund_login(plan: LabPlan, key: str = "id_ed25519") -> subprocess.CompletedProcess[str]:
    """One SFTP session from the sender with that key alone, as its deliveries make."""
    return _sender(  # type: ignore[no-any-return]
        plan,
        ["sftp", "-b", "-", "-i", f"{SSH_DIR}/{key}", "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", f"{SENDER_USER}@{plan.first('intake').address}"],
        input_text="ls\n", check=False, timeout=60,
    )  # fmt: skip


def fund_logs_in(plan: LabPlan, key: str = "id_ed25519") -> bool:
    return fund_login(plan, key).returncode == 0


def fund_adds_known_host(plan: LabPlan, line: str) -> None:
    """The fund adds, by hand, the known_hosts line a notice gave it."""
    _sender(plan, ["sh", "-c", f"cat >> {SSH_DIR}/known_hosts"], input_text=line + "\n")


def operator_cert_key(state: Path) -> Path:
    """The key the lab operator's certificates are for: not the key Ansible logs in with, so
    the break-glass path (plain keys) never depends on the CA being rotated. The operator's
    own, beside the operator's login key (lab.lab.operator_dir), not in the inventory."""
    key = operator_dir(state.name) / "operator_cert_ed25519"
    if not key.exists():
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", OPERATOR_IDENTITY, "-f"]
        subprocess.run([*keygen, str(key)], check=True, timeout=30)
    return key.with_name(key.name + ".pub")


def settle_remade_hosts(site: Site, ledger: Ledger) -> list[str]:
    """The lab owns its ledger. A host-key rotation that stopped on a host the lab has since
    made anew cannot be resumed: the key it started from is gone, and `lab up` pinned the one
    the new host serves. Close it, as an operator would with `ops.rotation abandon`; every
    other unfinished rotation resumes. Returns the secrets closed."""
    known = KnownHosts(site.state / "known_hosts")
    closed = []
    for host in site.hosts:
        secret = f"host-key:{host}"
        stopped = pending(ledger, secret)
        if stopped is None or stopped.old in {line_fingerprint(k) for k in known.keys(host)}:
            continue
        note = "abandoned by the lab: the host was made anew"
        ledger.append(
            Entry(secret, stopped.rotation, stopped.phase, "rolled-back", stopped.old,
                  stopped.new, note)
        )  # fmt: skip
        closed.append(secret)
    return closed


@dataclass
class Round:
    """One rotation of everything, in the two passes the demo makes."""

    plan: LabPlan
    inventory: Path
    endpoint_url: str
    ca_cert: str
    ansible_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.state = self.inventory.parent
        ensure_user_ca(self.inventory)
        ensure_automation_key(self.state, self.endpoint_url, self.ca_cert)
        self.site = Site.read(self.inventory)
        self.ledger = Ledger(self.state / "rotation" / "ledger.jsonl")
        self.steps = Steps(self.site.inventory, self.state / "rotation" / "ansible.log",
                           self.ansible_args)  # fmt: skip
        self.operator = Operator(operator_cert_key(self.state), OPERATOR_IDENTITY,
                                 [OPERATOR_ACCOUNT])  # fmt: skip
        self.window = dt.timedelta(days=14)
        self.status = ""  # where the last run's status for the fleet board went

    def to_published(self, *, early: bool = True) -> list[Outcome]:
        """Every secret to `published`, where old and new both work (early: due or not); what
        an earlier round left unfinished resumes (or, on a host made anew, is closed first)."""
        settle_remade_hosts(self.site, self.ledger)
        sent = fund_makes_new_key(self.plan, self.state)
        opts = Options(self.operator, sent, self.window, False, "published", early=early)
        return self._rotate(opts)

    def to_retired(self) -> list[Outcome]:
        """The fund confirms the intake host's announced key (learnt on a delivery) and
        switches to its new SFTP key; then everything under way resumes to `retired`, and
        nothing new starts."""
        confirmed = fund_confirms(self.plan, self.state)
        fund_switches(self.plan)
        if not fund_logs_in(self.plan):
            raise RuntimeError("the fund cannot log in with its new key during the overlap")
        opts = Options(self.operator, None, self.window, True, "retired",
                       partner_confirmed=frozenset(confirmed))  # fmt: skip
        second = self._rotate(opts)
        fund_logs_in(self.plan)  # its client drops the intake host's retired key by itself
        return second

    def run_again(self) -> list[Outcome]:
        """`rotate all` again, as an operator would after a finished round: nothing is due,
        so nothing starts."""
        opts = Options(self.operator, None, self.window, False, "retired")
        return self._rotate(opts)

    def _rotate(self, opts: Options) -> list[Outcome]:
        """What `claims-dc rotate all` does: the rotations, then the status."""
        outcomes = rotate_kinds(self.site, list(KINDS), ledger=self.ledger, steps=self.steps,
                                opts=opts)  # fmt: skip
        self.status = publish_status(self.site, self.ledger)
        return outcomes


def due_now(inventory: Path) -> list[Due]:
    """`rotate --due`: the calendar of every secret."""
    site = Site.read(inventory)
    return due_calendar(site, list(KINDS), Ledger(site.state / "rotation" / "ledger.jsonl"))


def rotate_everything(
    plan: LabPlan, inventory: Path, endpoint_url: str, ca_cert: str,
    ansible_args: tuple[str, ...] = (),
) -> tuple[list[Outcome], list[Outcome]]:  # fmt: skip
    """Every secret to `published` first, due or not; then the fund confirms the intake host's
    new key and switches to its new SFTP key, and confirms; then everything resumes to
    `retired`. A round an earlier run left unfinished is resumed, not restarted."""
    rotation_round = Round(plan, inventory, endpoint_url, ca_cert, ansible_args)
    first = rotation_round.to_published()
    return first, rotation_round.to_retired()
