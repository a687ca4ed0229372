"""The access review on the lab: the organisation's inputs, and the problems the demo seeds.

An organisation keeps its staff roster, SSH key registry and exceptions register beside its
inventory (access_review.yml reads them from <inventory>/access-review/). The lab writes its
own there: the lab operator (staff L0001, whose key is the operator key) and the staff the
seeds name. The seeds are what an access review exists to catch:

- a leaver: D0102 left last month, and her account d0102 on the app host still takes her key;
- a never-used key: IAM user d0103, a console user, was given an access key at set-up that
  nobody has used (CIS 1.11);
- an unknown SSH key: the account d0104 on the database host admits a key that is in no
  one's name in the registry.

The exceptions register records the lab's two accepted risks, with an approver and an expiry:
the operators' NOPASSWD sudo (key-only accounts without passwords; every command logged) and
PostgreSQL's bootstrap superuser (peer authentication over the local socket only).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

from lab import podman as pm
from lab.backups import lab_client
from lab.plan import LabPlan
from ops.reviewlib.model import Finding
from ops.vault.sealed import scratch

LAB_OPERATOR = "L0001"
LEAVER, NEVER_USED, UNKNOWN_KEY = "d0102", "d0103", "d0104"
CASEWORKER = "s0201"  # the demo's caseworker (step 4), S0201 in the roster
REPORTS = "reports/access-review"  # under the inventory directory, where the play fetches


def _roster(today: dt.date) -> str:
    started = "2024-04-01"
    left = (today.replace(day=1) - dt.timedelta(days=1)).isoformat()  # end of last month
    return (
        "staff_id,name,organisation,job,roles,start,end\n"
        f"{LAB_OPERATOR},ラボ 運用者 (lab operator),dc-operator,infrastructure operator,"
        f"host:operators aws:admin,{started},\n"
        f"D0102,佐藤 花子,dc-operator,application operator,host:none,{started},{left}\n"
        f"D0103,鈴木 一郎,dc-operator,auditor,aws:readonly,{started},\n"
        f"D0104,高橋 次郎,dc-operator,database operator,host:none,{started},\n"
        f"S0201,山田 太郎,city-welfare,caseworker,app:caseworker,{started},\n"
    )


def _fingerprint(public_key: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]


def _public_key(path: Path, comment: str) -> Path:
    """A seed's public key; its private half is thrown away (nobody logs in with it)."""
    public = path.with_suffix(".pub")
    if not public.exists():
        with scratch() as private:
            made = private / path.name
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(made)],
                check=True,
            )
            public.write_bytes(made.with_suffix(".pub").read_bytes())
    return public


def exception_ids(datacenter: list[str]) -> dict[str, str]:
    """The lab's accepted findings (stable IDs) -> the reason they are accepted."""
    sudo = (
        "Operators log in with keys only and have no password to give; every sudo command is "
        "logged with its terminal (use_pty, /var/log/sudo.log)."
    )
    superuser = (
        "The bootstrap superuser: peer authentication over the local socket only; used by the "
        "backup's pg_dump and the review's probe."
    )
    out = {
        Finding("HOST-003", "", f"host:{h}", "opsadmin", "", "", ()).id: sudo for h in datacenter
    }
    out[Finding("DB-001", "", "db", "postgres", "", "", ()).id] = superuser
    return out


def write_inputs(inventory_dir: Path, datacenter: list[str], operator_key: Path,
                 today: dt.date | None = None) -> Path:  # fmt: skip
    """The roster, key registry and exceptions register beside the inventory; the seeds'
    public keys in seed-keys/. Rewritten each time (the leaver's end date follows today)."""
    today = today or dt.date.today()
    out = inventory_dir / "access-review"
    keys = out / "seed-keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / "roster.csv").write_text(_roster(today), encoding="utf-8-sig")
    leaver = _public_key(keys / LEAVER, f"{LEAVER}@lab")
    _public_key(keys / UNKNOWN_KEY, "someone@elsewhere")
    registry = [
        "fingerprint,staff_id",
        f"{_fingerprint(operator_key)},{LAB_OPERATOR}",
        f"{_fingerprint(leaver)},D0102",
    ]
    (out / "key-registry.csv").write_text("\n".join(registry) + "\n")
    expiry = (today + dt.timedelta(days=90)).isoformat()
    approver = "lab CISO (情報セキュリティ責任者)"
    rows = ["finding_id,reason,approver,expiry"] + [
        f'{fid},"{why}",{approver},{expiry}' for fid, why in exception_ids(datacenter).items()
    ]
    (out / "exceptions.csv").write_text("\n".join(rows) + "\n")
    return out


def _account(plan: LabPlan, host: str, user: str, public_key: str) -> None:
    c = plan.host(host).container
    if pm.exec_in(c, ["id", user], check=False).returncode != 0:
        pm.exec_in(c, ["useradd", "--create-home", "--shell", "/bin/bash", user])
    pm.exec_in(c, ["install", "-d", "-m", "0700", "-o", user, "-g", user, f"/home/{user}/.ssh"])
    pm.exec_in(
        c,
        [
            "sh",
            "-c",
            f"cat > /home/{user}/.ssh/authorized_keys && "
            f"chown {user}: /home/{user}/.ssh/authorized_keys",
        ],
        input_text=public_key,
    )


def iam_client(endpoint_url: str, ca_cert: str) -> Any:
    return lab_client("iam", endpoint_url, ca_cert, region="us-east-1")  # IAM is global


def seed(plan: LabPlan, inventory_dir: Path, endpoint_url: str, ca_cert: str) -> dict[str, str]:
    """Plant the three problems (idempotent): where each one is."""
    keys = inventory_dir / "access-review" / "seed-keys"
    _account(plan, plan.first("app").name, LEAVER, (keys / f"{LEAVER}.pub").read_text())
    _account(plan, plan.first("db").name, UNKNOWN_KEY, (keys / f"{UNKNOWN_KEY}.pub").read_text())
    iam = iam_client(endpoint_url, ca_cert)
    try:
        iam.get_user(UserName=NEVER_USED)
    except iam.exceptions.NoSuchEntityException:
        iam.create_user(UserName=NEVER_USED, Tags=[{"Key": "StaffId", "Value": "D0103"}])
        iam.create_login_profile(
            UserName=NEVER_USED,
            Password="Lab-" + secrets.token_urlsafe(18),
            PasswordResetRequired=True,
        )
        mfa = iam.create_virtual_mfa_device(VirtualMFADeviceName=NEVER_USED)
        iam.enable_mfa_device(
            UserName=NEVER_USED,
            SerialNumber=mfa["VirtualMFADevice"]["SerialNumber"],
            AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )
        iam.create_access_key(UserName=NEVER_USED)  # the secret is dropped at once
    return {
        "leaver": f"{LEAVER} on {plan.first('app').name}",
        "never-used key": f"IAM user {NEVER_USED}",
        "unknown SSH key": f"{UNKNOWN_KEY} on {plan.first('db').name}",
    }


def unseed(plan: LabPlan, endpoint_url: str, ca_cert: str) -> None:
    for host, user in ((plan.first("app").name, LEAVER), (plan.first("db").name, UNKNOWN_KEY)):
        pm.exec_in(plan.host(host).container, ["userdel", "--remove", user], check=False)
    iam = iam_client(endpoint_url, ca_cert)
    try:
        for k in iam.list_access_keys(UserName=NEVER_USED)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=NEVER_USED, AccessKeyId=k["AccessKeyId"])
        for m in iam.list_mfa_devices(UserName=NEVER_USED)["MFADevices"]:
            iam.deactivate_mfa_device(UserName=NEVER_USED, SerialNumber=m["SerialNumber"])
            iam.delete_virtual_mfa_device(SerialNumber=m["SerialNumber"])
        iam.delete_login_profile(UserName=NEVER_USED)
        iam.delete_user(UserName=NEVER_USED)
    except iam.exceptions.NoSuchEntityException:
        pass


def seeded_findings(plan: LabPlan) -> set[tuple[str, str, str]]:
    """(check, system, account) of what the seeds must produce."""
    return {
        ("ACR-002", f"host:{plan.first('app').name}", LEAVER),
        ("IAM-005", "aws", NEVER_USED),
        ("ACR-006", f"host:{plan.first('db').name}", UNKNOWN_KEY),
    }


def verify(report_dir: Path) -> list[str]:
    """The fetched report against its signed manifest and the signer the play wrote."""
    from ops.reviewlib.report import NAMESPACE, verify_manifest

    return verify_manifest(report_dir, report_dir / "allowed_signers", NAMESPACE)


def latest_report(inventory_dir: Path) -> Path | None:
    """The newest review fetched to the control node."""
    root = inventory_dir / REPORTS
    runs = (
        sorted(p for p in root.glob("*") if (p / "review.json").exists()) if root.exists() else []
    )
    return runs[-1] if runs else None


def read_report(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "review.json").read_text()))
