"""The program's resource graph, recorded under strict mocks: what each component must and
must never declare."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from infra import offline
from infra.config import DATACENTER_ZONES
from infra.network.flows import nacl_rules
from infra.offline import Evaluation, evaluate

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_TYPES = {
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/vpnGateway:VpnGateway",  # CloudHub would join the two lines
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection",
}


@cache
def _eval(stack: str) -> Evaluation:
    return evaluate(REPO / f"Pulumi.{stack}.yaml")


@pytest.fixture(params=["lab", "omuta-prod"])
def ev(request: pytest.FixtureRequest) -> Evaluation:
    return _eval(request.param)


def test_nothing_that_leads_out_is_ever_declared(ev: Evaluation) -> None:
    assert not {r.type for r in ev.resources} & FORBIDDEN_TYPES
    for route in ev.of_type("aws:ec2/route:Route"):
        assert route.inputs.get("destinationCidrBlock") not in ("0.0.0.0/0", None)
        assert "destinationIpv6CidrBlock" not in route.inputs
    for subnet in ev.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs["mapPublicIpOnLaunch"] is False
    for instance in ev.of_type("aws:ec2/instance:Instance"):
        assert instance.inputs["associatePublicIpAddress"] is False


def test_subnets_per_zone_and_az(ev: Evaluation) -> None:
    subnets = ev.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == len(DATACENTER_ZONES) * len(ev.config.availability_zones)
    assert {s.inputs["availabilityZone"] for s in subnets} == set(ev.config.availability_zones)


def test_each_line_routes_only_into_its_zone(ev: Evaluation) -> None:
    routes = ev.of_type("aws:ec2/route:Route")
    dests = sorted(r.inputs["destinationCidrBlock"] for r in routes)
    assert dests == sorted([str(ev.config.zones["lgwan"].cidr), str(ev.config.zones["fund"].cidr)])
    lgwan_route = next(r for r in routes if r.name == "lgwan-app-route")
    assert lgwan_route.inputs["routeTableId"] == "segment-app-rt-id"
    fund_route = next(r for r in routes if r.name == "fund-intake-route")
    assert fund_route.inputs["routeTableId"] == "segment-intake-rt-id"
    tgws = ev.of_type("aws:ec2transitgateway/transitGateway:TransitGateway")
    assert len(tgws) == 2
    for tgw in tgws:
        assert tgw.inputs["defaultRouteTableAssociation"] == "disable"
        assert tgw.inputs["defaultRouteTablePropagation"] == "disable"
    # The line side of each transit gateway knows only the zone it serves.
    tgw_routes = {
        r.name: r.inputs["destinationCidrBlock"]
        for r in ev.of_type("aws:ec2transitgateway/route:Route")
    }
    assert tgw_routes["lgwan-to-app"] == str(ev.config.zones["app"].cidr)
    assert tgw_routes["fund-to-intake"] == str(ev.config.zones["intake"].cidr)


def test_line_kinds_follow_the_config() -> None:
    lab, prod = _eval("lab"), _eval("omuta-prod")
    assert len(lab.of_type("aws:ec2/vpnConnection:VpnConnection")) == 2
    assert not lab.of_type("aws:directconnect/transitVirtualInterface:TransitVirtualInterface")
    assert len(prod.of_type("aws:ec2/vpnConnection:VpnConnection")) == 1
    vif = prod.of_type("aws:directconnect/transitVirtualInterface:TransitVirtualInterface")
    assert len(vif) == 1 and vif[0].inputs["vlan"] == 101
    for vpn in lab.of_type("aws:ec2/vpnConnection:VpnConnection"):
        assert vpn.inputs["staticRoutesOnly"] is True
        assert vpn.inputs["tunnel1IkeVersions"] == ["ikev2"]


def test_nacls_are_the_flow_policy(ev: Evaluation) -> None:
    rules = ev.of_type("aws:ec2/networkAclRule:NetworkAclRule")
    for zone in DATACENTER_ZONES:
        mine = [r for r in rules if r.name.startswith(f"segment-{zone}-nacl-")]
        s3 = tuple(offline.KNOWN_INVOKES["aws:ec2/getPrefixList:getPrefixList"]["cidrBlocks"])
        assert len(mine) == len(nacl_rules(ev.config, zone, s3)), zone
        assert all(r.inputs["ruleAction"] == "allow" for r in mine)
        assert all(r.inputs["cidrBlock"] != "0.0.0.0/0" for r in mine)


def test_default_security_group_is_empty(ev: Evaluation) -> None:
    (default,) = ev.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.inputs["ingress"] == [] and default.inputs["egress"] == []


def test_endpoints_are_private(ev: Evaluation) -> None:
    endpoints = ev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    services = {e.inputs["serviceName"].rsplit(".", 1)[1]: e for e in endpoints}
    assert set(services) == {"s3", "kms", "sts", "logs", "ssm", "ssmmessages", "ec2messages"}
    assert services["s3"].inputs["vpcEndpointType"] == "Gateway"
    for name, e in services.items():
        if name != "s3":
            assert e.inputs["privateDnsEnabled"] is True
    ingress = [
        r
        for r in ev.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("segment-endpoints-sg-from-")
    ]
    assert {r.inputs["fromPort"] for r in ingress} == {443}
    assert {r.inputs["cidrIpv4"] for r in ingress} == {
        str(ev.config.zones[z].cidr) for z in ("app", "db", "intake", "mgmt")
    }


def test_flow_logs_all_traffic_encrypted(ev: Evaluation) -> None:
    (flow_log,) = ev.of_type("aws:ec2/flowLog:FlowLog")
    assert flow_log.inputs["trafficType"] == "ALL"
    (group,) = ev.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["retentionInDays"] == ev.config.log_retention_days
    assert group.inputs["kmsKeyId"].startswith("arn:aws:kms:")


def test_hosts_are_hardened(ev: Evaluation) -> None:
    instances = {i.name.removeprefix("hosts-"): i for i in ev.of_type("aws:ec2/instance:Instance")}
    assert set(instances) == {n for n, h in ev.config.hosts.items() if not h.stand_in}
    for name, inst in instances.items():
        meta = inst.inputs["metadataOptions"]
        assert meta["httpTokens"] == "required" and meta["httpPutResponseHopLimit"] == 1
        root = inst.inputs["rootBlockDevice"]
        assert root["encrypted"] is True and root["kmsKeyId"].startswith("arn:aws:kms:")
        assert inst.inputs["privateIp"] == str(ev.config.hosts[name].address)
        assert "password" not in inst.inputs["userData"].lower()
        assert inst.inputs["disableApiTermination"] is (ev.config.hosts[name].role == "db")


def test_backup_writers_may_put_but_never_delete_and_only_their_own_prefix(
    ev: Evaluation,
) -> None:
    writers = {
        p.name: json.loads(p.inputs["policy"])["Statement"]
        for p in ev.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name.startswith("hosts-")
    }
    assert set(writers) == {"hosts-app-backup-writer", "hosts-db-backup-writer",
                            "hosts-intake-backup-writer"}  # the bastion holds none  # fmt: skip
    for name, statements in writers.items():
        prefix = name.split("-")[1]
        allowed = {a for s in statements if s["Effect"] == "Allow" for a in s["Action"]}
        denied = {a for s in statements if s["Effect"] == "Deny" for a in s["Action"]}
        assert "s3:PutObject" in allowed and "s3:PutObjectRetention" in allowed
        assert not {a for a in allowed if "Delete" in a}
        assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
                "s3:PutBucketObjectLockConfiguration"} <= denied  # fmt: skip
        objects = next(s for s in statements if s["Sid"] == "WriteAndReadOwnBackups")
        assert objects["Resource"].endswith(f"/{prefix}/*")
        listing = next(s for s in statements if s["Sid"] == "ListOwnPrefix")
        assert listing["Condition"]["StringLike"]["s3:prefix"] == [f"{prefix}/", f"{prefix}/*"]
        caps = {s["Sid"]: s["Condition"] for s in statements if s["Sid"].startswith(("Only", "No"))}
        assert caps["OnlyComplianceLocks"] == {
            "StringNotEquals": {"s3:object-lock-mode": "COMPLIANCE"}}  # fmt: skip
        assert "s3:object-lock-remaining-retention-days" in caps["NoLocksBeyondTheCap"][
            "NumericGreaterThan"]  # fmt: skip


def test_pruning_is_a_separate_mfa_role_that_still_cannot_unprotect(ev: Evaluation) -> None:
    (role,) = [r for r in ev.of_type("aws:iam/role:Role") if r.name == "backup-maintenance"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    (policy,) = [p for p in ev.of_type("aws:iam/rolePolicy:RolePolicy")
                 if p.name == "backup-maintenance-policy"]  # fmt: skip
    statements = json.loads(policy.inputs["policy"])["Statement"]
    allowed = {a for s in statements if s["Effect"] == "Allow" for a in s["Action"]}
    denied = {a for s in statements if s["Effect"] == "Deny" for a in s["Action"]}
    assert "s3:DeleteObjectVersion" in allowed
    assert {"s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration"} <= denied


def test_backup_bucket_is_locked_down(ev: Evaluation) -> None:
    lock = next(
        r
        for r in ev.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
        if r.name.startswith("backup-bucket")
    )
    assert lock.inputs["rule"]["defaultRetention"] == {
        "mode": "COMPLIANCE",
        "days": ev.config.backup.retention_days,
    }
    policy = next(
        p for p in ev.of_type("aws:s3/bucketPolicy:BucketPolicy") if p.name == "backup-policy"
    )
    statements = json.loads(policy.inputs["policy"])["Statement"]
    sids = {s["Sid"] for s in statements}
    assert sids == {"DenyInsecureTransport", "DenyOutsideTheDataCenter"}
    outside = next(s for s in statements if s["Sid"] == "DenyOutsideTheDataCenter")
    assert outside["Condition"]["StringNotEquals"]["aws:sourceVpce"] == "segment-s3-id"
    bucket = next(b for b in ev.of_type("aws:s3/bucket:Bucket") if b.name == "backup-bucket")
    assert bucket.inputs["objectLockEnabled"] is True


def test_replica_only_when_configured() -> None:
    lab, prod = _eval("lab"), _eval("omuta-prod")
    assert not lab.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    assert len(prod.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")) == 1
    (provider,) = prod.of_type("pulumi:providers:aws")
    assert provider.inputs["region"] == "ap-northeast-3"


def test_audit_trail_validates_its_logs(ev: Evaluation) -> None:
    (trail,) = ev.of_type("aws:cloudtrail/trail:Trail")
    assert trail.inputs["enableLogFileValidation"] is True
    assert trail.inputs["kmsKeyId"].startswith("arn:aws:kms:")


def test_keys_rotate(ev: Evaluation) -> None:
    keys = ev.of_type("aws:kms/key:Key")
    assert keys and all(k.inputs["enableKeyRotation"] is True for k in keys)


def test_an_unknown_invoke_fails_the_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(offline.KNOWN_INVOKES, "aws:ec2/getAmi:getAmi")
    with pytest.raises(Exception, match="aws:ec2/getAmi:getAmi is not known to the mocks"):
        evaluate(REPO / "Pulumi.lab.yaml")


def test_lines_cannot_be_cut_by_a_config_edit(ev: Evaluation) -> None:
    line_types = {
        "aws:ec2transitgateway/transitGateway:TransitGateway": "amazonSideAsn",
        "aws:ec2/customerGateway:CustomerGateway": "ipAddress",
        "aws:ec2/vpnConnection:VpnConnection": "customerGatewayId",
        "aws:directconnect/transitVirtualInterface:TransitVirtualInterface": "vlan",
    }
    seen = 0
    for resource in ev.resources:
        if resource.type in line_types:
            seen += 1
            assert resource.protect, resource.name
            assert line_types[resource.type] in resource.ignore_changes, resource.name
        if resource.component in ("lgwan", "fund") and not resource.type.startswith("claims-dc:"):
            assert resource.protect, resource.name
    assert seen >= 4
    buckets = [b for b in ev.of_type("aws:s3/bucket:Bucket")]
    assert buckets and all(b.protect for b in buckets)


def test_zones_that_use_the_endpoints_reach_s3_through_their_nacls(ev: Evaluation) -> None:
    s3 = offline.KNOWN_INVOKES["aws:ec2/getPrefixList:getPrefixList"]["cidrBlocks"]
    rules = ev.of_type("aws:ec2/networkAclRule:NetworkAclRule")
    for zone in DATACENTER_ZONES:
        out_to_s3 = {
            r.inputs["cidrBlock"]
            for r in rules
            if r.name.startswith(f"segment-{zone}-nacl-out-")
            and r.inputs["cidrBlock"] in s3
            and r.inputs["fromPort"] == 443
        }
        assert out_to_s3 == (set(s3) if zone != "endpoints" else set()), zone


def test_each_host_role_writes_only_its_own_status_and_the_reader_only_reads(
    ev: Evaluation,
) -> None:
    policies = {p.name: json.loads(p.inputs["policy"])
                for p in ev.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.name.startswith("status-")}  # fmt: skip
    writers = {n: d for n, d in policies.items() if n.endswith("-writer")}
    assert set(writers) == {f"status-{r}-writer" for r in ("app", "bastion", "db", "intake")}
    for name, doc in writers.items():
        role = name.split("-")[1]
        allowed = [s for s in doc["Statement"] if s["Effect"] == "Allow"]
        (put,) = [s for s in allowed if s["Action"] == "s3:PutObject"]
        assert put["Resource"].endswith(f"/status/{role}/*")
        assert {str(s["Action"]) for s in allowed} == {"s3:PutObject", "kms:GenerateDataKey"}
    # The bucket refuses a role's prefix to every other principal.
    (bucket_policy,) = [p for p in ev.of_type("aws:s3/bucketPolicy:BucketPolicy")
                        if p.name == "status-policy"]  # fmt: skip
    guards = [s for s in json.loads(bucket_policy.inputs["policy"])["Statement"]
              if s["Sid"].startswith("OnlyThe")]  # fmt: skip
    assert len(guards) == 4
    assert all(s["Effect"] == "Deny" and "aws:PrincipalArn" in s["Condition"]["ArnNotEquals"]
               for s in guards)  # fmt: skip
    # The reader: assumable only from the operations account with the external ID; reads only.
    (reader,) = [r for r in ev.of_type("aws:iam/role:Role") if r.name == "status-fleet-reader"]
    trust = json.loads(reader.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"]["AWS"].endswith(
        f":{ev.config.fleet_reader.operations_account_id}:root"
    )
    assert trust["Condition"] == {
        "StringEquals": {"sts:ExternalId": ev.config.fleet_reader.external_id}}  # fmt: skip
    actions = {s["Action"] for s in policies["status-fleet-reader-policy"]["Statement"]}
    assert actions == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}
    (get,) = [s for s in policies["status-fleet-reader-policy"]["Statement"]
              if s["Action"] == "s3:GetObject"]  # fmt: skip
    assert get["Resource"].endswith("/status/*")


def test_no_fleet_reader_without_one_in_the_config(tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text(encoding="utf-8"))
    del doc["config"]["claims-dc:fleetReader"]
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    ev = evaluate(path)
    assert not [r for r in ev.of_type("aws:iam/role:Role") if r.name == "status-fleet-reader"]
    assert ev.of_type("aws:s3/bucketPolicy:BucketPolicy")  # the status bucket stays
