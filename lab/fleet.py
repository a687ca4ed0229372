"""The lab's fleet: tenants beside the lab's own, for the demo's board and the benches.

`make_fleet` onboards real municipalities with `ops.fleet new` and fills their blanks with
documentation values (RFC 5737 addresses, the lab API's one account). `simulate` stands in for
a tenant's environment at the status bucket only: it makes the tenant's bucket and reader role
in the lab's AWS API and publishes what its hosts would have published, as old as asked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import BACKUP_WRITER_ROLES, DRILL_ROLES, StackConfig
from infra.datacenter.status import fleet_reader_trust
from ops.awsapi import Endpoint
from ops.fleet.codes import code_list
from ops.fleet.onboard import new_tenant
from ops.status import CONTROL_NODE, OPERATIONS, Publisher, Status, parse

LAB_ACCOUNT = "123456789012"  # the lab's AWS API (moto) has this one account
# The operations account is always another one (see Pulumi.lab.yaml): moto does not check who
# assumes a role, so the board reaches the readers from the lab's one account all the same.
OPERATIONS_ACCOUNT = "210987654321"


def fill(path: Path, n: int) -> None:
    """What a municipality and the fund would say, in documentation values: tenant n's own
    far-side ranges and routers (tenants sharing a line must not overlap)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    config = doc["config"]
    config["aws:allowedAccountIds"] = [LAB_ACCOUNT]
    config["claims-dc:fleetReader"]["operationsAccountId"] = OPERATIONS_ACCOUNT
    config["claims-dc:zones"]["lgwan"]["cidr"] = f"172.16.{n}.0/24"
    config["claims-dc:zones"]["fund"]["cidr"] = f"172.17.{n}.0/24"
    config["claims-dc:lines"]["lgwan"]["customerGatewayIp"] = f"198.51.100.{n % 250 + 1}"
    config["claims-dc:lines"]["fund"]["customerGatewayIp"] = f"203.0.113.{n % 250 + 1}"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def make_fleet(directory: Path, count: int, skip: int = 0) -> list[Path]:
    """`count` municipalities (cities, in code order, after the first `skip`), filled in."""
    directory.mkdir(parents=True, exist_ok=True)
    cities = [m for m in code_list().values() if m.city][skip : skip + count]
    made = []
    for n, m in enumerate(cities, start=skip):
        path, _ = new_tenant(directory, m, region="ap-northeast-1", stack=m.code,
                             lines={"lgwan": "vpn", "fund": "vpn"})  # fmt: skip
        fill(path, n)
        made.append(path)
    return made


@dataclass(frozen=True)
class Ages:
    """How old each published status is (None: never published)."""

    backup_hours: float | None = 3
    drill_days: float | None = 2
    review_days: float | None = 10
    review_verdict: str = "PASS"
    rotated_days: float | None = 30
    cert_days_left: float = 300


def simulate(endpoint: Endpoint, config: StackConfig, ages: Ages,
             now: dt.datetime | None = None) -> str:  # fmt: skip
    """The tenant's status bucket and reader role, and its hosts' status; returns the bucket."""
    # Long on purpose: one tenant's status world made in the order AWS needs it (bucket, role,
    # policy, objects); a fixture for the board, read straight through
    now = now or dt.datetime.now(dt.UTC)
    assert config.account_id and config.fleet_reader, config.source
    s3, iam = endpoint.client("s3"), endpoint.client("iam")
    bucket = config.status_bucket(config.account_id)
    where = {"LocationConstraint": config.region}
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True,
                         CreateBucketConfiguration=where)  # fmt: skip
    trust = fleet_reader_trust(config.fleet_reader.operations_account_id,
                               config.fleet_reader.external_id)  # fmt: skip
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=config.fleet_reader_role, AssumeRolePolicyDocument=trust)

    def ago(**kw: float) -> str:
        return (now - dt.timedelta(**kw)).isoformat(timespec="seconds")

    def put(writer: str, host: str, kind: str, body: dict[str, Any]) -> None:
        Publisher(bucket, config.stack, writer, host).publish(s3, kind, body, now=now)

    for host in (h for h in config.hosts.values() if not h.stand_in):
        if host.role in BACKUP_WRITER_ROLES and ages.backup_hours is not None:
            put(
                host.role,
                host.name,
                "backup",
                {"ok": True, "snapshot": "0" * 64, "time": ago(hours=ages.backup_hours)},
            )
            put(
                host.role,
                host.name,
                "verify",
                {"ok": True, "problems": 0, "time": ago(hours=ages.backup_hours)},
            )
        if host.role in DRILL_ROLES and ages.drill_days is not None:
            put(
                host.role,
                host.name,
                "drill",
                {"ok": True, "tables": 6, "rows": 1000, "time": ago(days=ages.drill_days)},
            )
        if host.role == "bastion" and ages.review_days is not None:
            put(
                host.role,
                host.name,
                "review",
                {
                    "verdict": ages.review_verdict,
                    "findings": 0,
                    "accounts": 12,
                    "incomplete": int(ages.review_verdict == "INCOMPLETE"),
                    "time": ago(days=ages.review_days),
                },
            )
    if ages.rotated_days is not None:
        every = dict(config.rotation.every_days)
        secrets = [
            {
                "secret": f"host-key:{h}",
                "kind": "host-keys",
                "status": "not-due",
                "every_days": every["host-keys"],
                "last_rotated": ago(days=ages.rotated_days),
            }
            for h in config.hosts
            if not config.hosts[h].stand_in
        ]
        put(
            OPERATIONS,
            CONTROL_NODE,
            "rotation",
            {
                "time": ago(days=ages.rotated_days),
                "secrets": secrets,
                "certificates": [
                    {
                        "name": "tls:app-1",
                        "not_after": (now + dt.timedelta(days=ages.cert_days_left)).isoformat(
                            timespec="seconds"
                        ),
                    }
                ],
            },
        )
    return bucket


def published(endpoint: Endpoint, config: StackConfig, writer: str, host: str,
              kind: str) -> Status:  # fmt: skip
    """What the environment published, read back and believed as the board would."""
    assert config.account_id, config.source
    bucket = config.status_bucket(config.account_id)
    key = Publisher(bucket, config.stack, writer, host).key(kind)
    data = endpoint.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return parse(key, data, stack=config.stack)
