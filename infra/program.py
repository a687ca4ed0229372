"""The Pulumi program as a function of the typed config, so tests can run it under mocks.

One environment: keys, the closed segment, the two lines, backup storage, the hosts and the
audit trail, composed from the one StackConfig. Stand-in hosts of the lab are never deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig
from infra.datacenter.audit import AuditTrail, AuditTrailArgs
from infra.datacenter.backup import BackupStorage, BackupStorageArgs
from infra.datacenter.hosts import DataCenterHosts, DataCenterHostsArgs
from infra.datacenter.keys import EnvironmentKeys, EnvironmentKeysArgs
from infra.datacenter.status import StatusStore, StatusStoreArgs
from infra.network.closed_segment import ClosedSegment, ClosedSegmentArgs
from infra.network.lines import DedicatedLine, LgwanLink, LineArgs


def outputs(config: StackConfig) -> dict[str, Any]:
    """The environment's shape, known before anything is created."""
    return {
        "municipality": {"code": config.municipality.code, "name": config.municipality.name},
        "region": config.region,
        "vpcCidr": str(config.vpc_cidr),
        "zones": {name: str(zone.cidr) for name, zone in config.zones.items()},
        "hosts": {
            name: {"zone": h.zone, "role": h.role, "address": str(h.address)}
            for name, h in config.hosts.items()
            if not h.stand_in
        },
        "flows": sorted(f"{s}->{d}:{p}/{proto}" for s, d, p, proto in config.allowed()),
    }


Export = Callable[[str, Any], None]


def run(config: StackConfig, export: Export = pulumi.export) -> None:
    """Declare the environment; `export` receives the stack outputs (the engine's by default,
    a recorder when the program runs offline, so that the lab sees what `pulumi stack output
    --json` prints)."""
    account = aws.get_caller_identity().account_id
    keys = EnvironmentKeys("keys", EnvironmentKeysArgs(config=config, account_id=account))
    segment = ClosedSegment("segment", ClosedSegmentArgs(config=config, logs_key_arn=keys.logs.arn))
    subnet_ids: dict[str, list[pulumi.Input[str]]] = {
        z: [s.id for s in subs] for z, subs in segment.subnets.items()
    }

    def line_args(outside: str) -> LineArgs:
        zone = config.line_zone(outside)
        return LineArgs(
            config=config,
            vpc_id=segment.vpc.id,
            zone=zone,
            subnet_ids=list(subnet_ids[zone]),
            route_table_id=segment.route_tables[zone].id,
        )

    lgwan = LgwanLink("lgwan", line_args("lgwan"))
    fund = DedicatedLine("fund", line_args("fund"))
    backup = BackupStorage(
        "backup",
        BackupStorageArgs(
            config=config,
            account_id=account,
            storage_key_arn=keys.storage.arn,
            s3_endpoint_id=segment.s3_endpoint.id,
        ),
    )
    hosts = DataCenterHosts(
        "hosts",
        DataCenterHostsArgs(
            config=config,
            vpc_id=segment.vpc.id,
            subnet_ids=subnet_ids,
            storage_key_arn=keys.storage.arn,
            backup_bucket_arn=backup.bucket.arn,
            s3_prefix_list_id=segment.s3_endpoint.prefix_list_id,
        ),
    )
    status = StatusStore(
        "status",
        StatusStoreArgs(
            config=config,
            account_id=account,
            storage_key_arn=keys.storage.arn,
            host_roles=hosts.roles,
        ),
    )
    audit = AuditTrail(
        "audit", AuditTrailArgs(config=config, account_id=account, logs_key_arn=keys.logs.arn)
    )
    for key, value in outputs(config).items():
        export(key, value)
    export("vpcId", segment.vpc.id)
    export("subnetIds", subnet_ids)
    export("backupBucket", backup.bucket.bucket)
    export("backupBreakGlassRoleArn", backup.break_glass_role.arn)
    export("statusBucket", status.bucket.bucket)
    if status.fleet_reader is not None:
        export("fleetReaderRoleArn", status.fleet_reader.arn)
    export("storageKeyArn", keys.storage.arn)
    export("logsKeyArn", keys.logs.arn)
    export("instanceIds", {n: i.id for n, i in hosts.instances.items()})
    export("privateIps", {n: i.private_ip for n, i in hosts.instances.items()})
    export("roleArns", {r: role.arn for r, role in hosts.roles.items()})
    export("endpointDnsNames", {
        s: e.dns_entries.apply(lambda d: [x["dns_name"] for x in (d or [])])
        for s, e in segment.interface_endpoints.items()
    })  # fmt: skip
    export("transitGateways", {
        "lgwan": lgwan.transit_gateway.id, "fund": fund.transit_gateway.id})  # fmt: skip
    export("auditTrailArn", audit.trail.arn)
