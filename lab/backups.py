"""The daily backups on the lab: what the demo and the lab tests read from the hosts.

Everything goes through the hosts' own command (/usr/local/sbin/claims-dc-backup) and files;
the control node only reads them, and tries what an attacker with S3 access would try.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from lab import podman as pm
from lab.plan import LabHost

COMMAND = "/usr/local/sbin/claims-dc-backup"
STATE = "/var/lib/claims-dc-backup"
BACKUP_ROLES = ("db", "intake", "app")


def backup_cli(host: LabHost, *args: str, timeout: float = 600) -> tuple[int, dict[str, Any]]:
    """`claims-dc-backup --json --quiet ARGS` on the host: (exit code, parsed result)."""
    out = pm.exec_in(host.container, [COMMAND, "--json", "--quiet", *args], check=False,
                     timeout=timeout)  # fmt: skip
    try:
        return out.returncode, json.loads(out.stdout or "null")
    except json.JSONDecodeError:
        return out.returncode, {"ok": False, "error": (out.stdout + out.stderr)[-800:]}


def status(host: LabHost) -> dict[str, Any]:
    out = pm.exec_in(host.container, ["cat", f"{STATE}/status.json"], check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {"ok": False, "error": "no run yet"}


def last_report(host: LabHost) -> dict[str, Any]:
    st = status(host)
    out = pm.exec_in(host.container, ["cat", st.get("report") or "/nonexistent"], check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def lab_client(service: str, endpoint_url: str, ca_cert: str,
               region: str = "ap-northeast-1") -> Any:  # fmt: skip
    """A client of the lab's AWS endpoint. moto does not authenticate: a placeholder key, as
    the hosts' lab config says."""
    placeholder = "lab-placeholder-moto-does-not-authenticate"
    return boto3.session.Session(
        aws_access_key_id=placeholder,
        aws_secret_access_key=placeholder,
        region_name=region,
    ).client(service, endpoint_url=endpoint_url, verify=ca_cert)


def s3_client(endpoint_url: str, ca_cert: str) -> Any:
    return lab_client("s3", endpoint_url, ca_cert)


def try_delete(s3: Any, bucket: str, prefix: str, obj: dict[str, Any]) -> str:
    """Try to destroy one backup object by hand: the answer S3 (moto) gives."""
    try:
        s3.delete_object(Bucket=bucket, Key=f"{prefix}/{obj['key']}", VersionId=obj["version_id"])
    except s3.exceptions.ClientError as e:
        return str(e.response.get("Error", {}).get("Code", "error"))
    return "DELETED"
