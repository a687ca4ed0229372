"""Every policy rule fires on a bad case and stays quiet on a good one; both stacks pass all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from infra.offline import evaluate
from infra.policy.pack import policies
from infra.policy.rules import RULES, Res, Settings, evaluate_rules

REPO = Path(__file__).resolve().parents[2]
S = Settings(min_retention_days=35)
VPCE, TOKYO, SVC = "aws:ec2/vpcEndpoint:VpcEndpoint", "ap-northeast-1", "vpce-svc-0123456789abcdef0"

# rule id -> (failing resource, passing resource)
RESOURCE_CASES: dict[str, tuple[Res, Res]] = {
    "CDC-NET-001": (Res("aws:ec2/internetGateway:InternetGateway", "igw", {}),
                    Res("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16"})),
    "CDC-NET-002": (Res("aws:ec2/route:Route", "r", {"destinationCidrBlock": "0.0.0.0/0"}),
                    Res("aws:ec2/route:Route", "r", {"destinationCidrBlock": "10.232.1.0/24"})),
    "CDC-NET-003": (Res("aws:ec2/subnet:Subnet", "s", {"mapPublicIpOnLaunch": True}),
                    Res("aws:ec2/subnet:Subnet", "s", {"mapPublicIpOnLaunch": False})),
    "CDC-NET-004": (Res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "in",
                        {"cidrIpv4": "0.0.0.0/0", "fromPort": 22}),
                    Res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "in",
                        {"cidrIpv4": "10.231.40.0/24", "fromPort": 22})),
    "CDC-NET-005": (Res("aws:ec2/networkAclRule:NetworkAclRule", "n",
                        {"ruleAction": "allow", "cidrBlock": "0.0.0.0/0"}),
                    Res("aws:ec2/networkAclRule:NetworkAclRule", "n",
                        {"ruleAction": "allow", "cidrBlock": "10.231.10.0/24"})),
    "CDC-EC2-001": (Res("aws:ec2/instance:Instance", "i", {"metadataOptions": {
                        "httpTokens": "optional"}, "rootBlockDevice": {
                        "encrypted": True, "kmsKeyId": "k"}}),
                    Res("aws:ec2/instance:Instance", "i", {"metadataOptions": {
                        "httpTokens": "required"}, "rootBlockDevice": {
                        "encrypted": True, "kmsKeyId": "k"}})),
    "CDC-EC2-002": (Res("aws:ec2/instance:Instance", "i", {"metadataOptions": {
                        "httpTokens": "required"}, "rootBlockDevice": {"encrypted": True}}),
                    Res("aws:ec2/instance:Instance", "i", {"metadataOptions": {
                        "httpTokens": "required"}, "rootBlockDevice": {
                        "encrypted": True, "kmsKeyId": "arn:aws:kms:k"}})),
    "CDC-KMS-001": (Res("aws:kms/key:Key", "k", {"enableKeyRotation": False}),
                    Res("aws:kms/key:Key", "k", {"enableKeyRotation": True})),
    "CDC-LOG-002": (Res("aws:cloudtrail/trail:Trail", "t", {"enableLogFileValidation": False}),
                    Res("aws:cloudtrail/trail:Trail", "t", {"enableLogFileValidation": True})),
    "CDC-GOV-001": (Res("pulumi:providers:aws", "p", {"region": "us-east-1"}),
                    Res("pulumi:providers:aws", "p", {"region": "ap-northeast-3"})),
    "CDC-NET-006": (Res("aws:ec2/route:Route", "r", {"destinationCidrBlock": "0.0.0.0/1"}),
                    Res("aws:ec2/route:Route", "r", {"destinationCidrBlock": "172.20.40.0/24"})),
    "CDC-NET-007": (Res("aws:ec2/route:Route", "r", {"destinationPrefixListId": "pl-1234"}),
                    Res("aws:ec2/route:Route", "r", {"destinationCidrBlock": "10.232.1.0/24"})),
    "CDC-NET-008": (Res(VPCE, "e", {"serviceName": f"com.amazonaws.vpce.{TOKYO}.{SVC}",
                                    "vpcEndpointType": "Interface"}),
                    Res(VPCE, "e", {"serviceName": f"com.amazonaws.{TOKYO}.kms",
                                    "vpcEndpointType": "Interface"})),
    "CDC-NET-009": (Res("aws:lambda/function:Function", "f",
                        {"vpcConfig": {"subnetIds": ["app-id"], "securityGroupIds": ["sg-id"]}}),
                    Res("aws:lambda/function:Function", "f", {"runtime": "python3.11"})),
}  # fmt: skip

# Every variant of a class the network rules must catch, not only the first one found.
NETWORK_VARIANTS: list[tuple[str, Res]] = [
    ("CDC-NET-002", Res("aws:ec2transitgateway/route:Route", "t",
                        {"destinationCidrBlock": "0.0.0.0/0"})),
    ("CDC-NET-002", Res("aws:ec2/routeTable:RouteTable", "t",
                        {"routes": [{"ipv6CidrBlock": "::/0", "egressOnlyGatewayId": "e"}]})),
    ("CDC-NET-003", Res("aws:ec2/eipAssociation:EipAssociation", "a",
                        {"allocationId": "eipalloc-0123", "networkInterfaceId": "eni-id"})),
    ("CDC-NET-003", Res("aws:ec2/instance:Instance", "i", {"ipv6AddressCount": 1})),
    ("CDC-NET-003", Res("aws:ec2/networkInterface:NetworkInterface", "n",
                        {"ipv6Addresses": ["2001:db8::5"]})),
    ("CDC-NET-003", Res("aws:ec2/vpc:Vpc", "v", {"assignGeneratedIpv6CidrBlock": True})),
    ("CDC-NET-006", Res("aws:ec2/route:Route", "r", {"destinationCidrBlock": "128.0.0.0/1"})),
    ("CDC-NET-006", Res("aws:ec2/route:Route", "r", {"destinationCidrBlock": "8.8.8.0/24"})),
    ("CDC-NET-006", Res("aws:ec2/route:Route", "r", {"destinationIpv6CidrBlock": "2000::/3"})),
    ("CDC-NET-006", Res("aws:ec2transitgateway/route:Route", "t",
                        {"destinationCidrBlock": "64.0.0.0/2"})),
    ("CDC-NET-006", Res("aws:ec2/routeTable:RouteTable", "t",
                        {"routes": [{"cidrBlock": "192.0.0.0/2", "transitGatewayId": "g"}]})),
    ("CDC-NET-006", Res("aws:ec2/route:Route", "r", {"destinationCidrBlock": "10.0.0.0/33"})),
    ("CDC-NET-007", Res("aws:ec2transitgateway/prefixListReference:PrefixListReference", "p",
                        {"prefixListId": "pl-1", "transitGatewayRouteTableId": "t"})),
    ("CDC-NET-007", Res("aws:ec2/routeTable:RouteTable", "t",
                        {"routes": [{"destinationPrefixListId": "pl-1", "gatewayId": "g"}]})),
    ("CDC-NET-007", Res("aws:ec2/managedPrefixList:ManagedPrefixList", "m",
                        {"entries": [{"cidr": "10.0.0.0/8"}]})),
    ("CDC-NET-008", Res(VPCE, "e", {"serviceName": f"com.amazonaws.vpce.{TOKYO}.{SVC}",
                                    "vpcEndpointType": "GatewayLoadBalancer"})),
    ("CDC-NET-008", Res(VPCE, "e", {"serviceName": "aws.sagemaker.ap-northeast-1.notebook",
                                    "vpcEndpointType": "Interface"})),
    ("CDC-NET-008", Res(VPCE, "e", {"serviceName": "com.amazonaws.us-east-1.s3",
                                    "vpcEndpointType": "Gateway"})),
    ("CDC-NET-008", Res(VPCE, "e", {"serviceName": f"com.amazonaws.{TOKYO}.kms",
                                    "vpcEndpointType": "Gateway"})),
    ("CDC-NET-008", Res(VPCE, "e", {"vpcEndpointType": "Interface"})),
    ("CDC-NET-009", Res("aws:ec2clientvpn/endpoint:Endpoint", "c",
                        {"clientCidrBlock": "10.100.0.0/22"})),
    ("CDC-NET-009", Res("aws:ec2clientvpn/networkAssociation:NetworkAssociation", "c",
                        {"subnetId": "app-id"})),
]  # fmt: skip


@pytest.mark.parametrize(("rule_id", "bad"), NETWORK_VARIANTS,
                         ids=[f"{r}-{b.type.split(':')[-1]}-{i}"
                              for i, (r, b) in enumerate(NETWORK_VARIANTS)])  # fmt: skip
def test_network_rules_catch_every_variant(rule_id: str, bad: Res) -> None:
    check = _rule(rule_id).check
    assert check(bad, S), f"{rule_id} did not fire on {bad}"


def test_an_endpoint_service_the_stack_lists_passes_and_the_region_is_the_stacks() -> None:
    partner = Res(VPCE, "e", {"serviceName": f"com.amazonaws.vpce.{TOKYO}.{SVC}",
                              "vpcEndpointType": "Interface"})  # fmt: skip
    check = _rule("CDC-NET-008").check
    accepted = Settings(endpoint_exceptions={partner.props["serviceName"]: "the fund's relay"})
    assert check(partner, accepted) == []
    osaka_kms = Res(VPCE, "e", {"serviceName": "com.amazonaws.ap-northeast-3.kms",
                                "vpcEndpointType": "Interface"})  # fmt: skip
    assert check(osaka_kms, Settings()) == []  # the pack alone: either Japanese region
    assert check(osaka_kms, Settings(region=TOKYO))  # a Tokyo stack: only Tokyo's services


def _bucket_set(**overrides: Any) -> list[Res]:
    """A fully compliant bucket and its v7 sub-resources; overrides replace one of them."""
    b = frozenset({"b"})
    parts = {
        "bucket": Res("aws:s3/bucket:Bucket", "b", {"objectLockEnabled": True}),
        "pab": Res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "pab",
                   {"blockPublicAcls": True, "blockPublicPolicy": True,
                    "ignorePublicAcls": True, "restrictPublicBuckets": True}, {"bucket": b}),
        "versioning": Res("aws:s3/bucketVersioning:BucketVersioning", "v",
                          {"versioningConfiguration": {"status": "Enabled"}}, {"bucket": b}),
        "lock": Res("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration", "l",
                    {"rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": 35.0}}},
                    {"bucket": b}),
        "sse": Res("aws:s3/bucketServerSideEncryptionConfiguration:"
                   "BucketServerSideEncryptionConfiguration", "e",
                   {"rules": [{"applyServerSideEncryptionByDefault": {
                       "sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:aws:kms:k"}}]},
                   {"bucket": b}),
        "policy": Res("aws:s3/bucketPolicy:BucketPolicy", "p", {"policy": json.dumps({
            "Statement": [{"Effect": "Deny", "Action": "s3:*", "Principal": "*",
                           "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})},
                      {"bucket": b}),
        "vpc": Res("aws:ec2/vpc:Vpc", "vpc", {}),
        "flowlog": Res("aws:ec2/flowLog:FlowLog", "fl", {"trafficType": "ALL"},
                       {"vpcId": frozenset({"vpc"})}),
    }  # fmt: skip
    for key, value in overrides.items():
        if value is None:
            del parts[key]
        else:
            parts[key] = value
    return list(parts.values())


STACK_FAILURES: dict[str, list[dict[str, Any]]] = {
    "CDC-S3-001": [{"pab": None},
                   {"pab": Res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "pab",
                               {"blockPublicAcls": True, "blockPublicPolicy": True,
                                "ignorePublicAcls": True}, {"bucket": frozenset({"b"})})}],
    "CDC-S3-002": [{"versioning": None},
                   {"versioning": Res("aws:s3/bucketVersioning:BucketVersioning", "v",
                                      {"versioningConfiguration": {"status": "Suspended"}},
                                      {"bucket": frozenset({"b"})})}],
    "CDC-S3-003": [{"lock": None},
                   {"bucket": Res("aws:s3/bucket:Bucket", "b", {})},
                   {"lock": Res("aws:s3/bucketObjectLockConfiguration:"
                                "BucketObjectLockConfiguration", "l",
                                {"rule": {"defaultRetention": {"mode": "GOVERNANCE", "days": 35}}},
                                {"bucket": frozenset({"b"})})},
                   {"lock": Res("aws:s3/bucketObjectLockConfiguration:"
                                "BucketObjectLockConfiguration", "l",
                                {"rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": 7}}},
                                {"bucket": frozenset({"b"})})}],
    "CDC-S3-004": [{"sse": None},
                   {"sse": Res("aws:s3/bucketServerSideEncryptionConfiguration:"
                               "BucketServerSideEncryptionConfiguration", "e",
                               {"rules": [{"applyServerSideEncryptionByDefault": {
                                   "sseAlgorithm": "AES256"}}]}, {"bucket": frozenset({"b"})})}],
    "CDC-S3-005": [{"policy": None},
                   {"policy": Res("aws:s3/bucketPolicy:BucketPolicy", "p",
                                  {"policy": json.dumps({"Statement": [{"Effect": "Allow",
                                   "Action": "s3:GetObject", "Principal": "*"}]})},
                                  {"bucket": frozenset({"b"})})}],
    "CDC-LOG-001": [{"flowlog": None},
                    {"flowlog": Res("aws:ec2/flowLog:FlowLog", "fl", {"trafficType": "REJECT"},
                                    {"vpcId": frozenset({"vpc"})})}],
}  # fmt: skip


def _rule(rule_id: str) -> Any:
    return next(r for r in RULES if r.id == rule_id)


def test_every_rule_has_cases_and_metadata() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(RESOURCE_CASES) | set(STACK_FAILURES) | set(FILE_FAILURES)
    for rule in RULES:
        assert rule.severity in ("low", "medium", "high", "critical")
        assert rule.fix and rule.corresponds_to and rule.title


@pytest.mark.parametrize("rule_id", sorted(RESOURCE_CASES))
def test_resource_rule_fails_and_passes(rule_id: str) -> None:
    bad, good = RESOURCE_CASES[rule_id]
    check = _rule(rule_id).check
    assert check(bad, S), f"{rule_id} did not fire on {bad}"
    assert check(good, S) == []


@pytest.mark.parametrize("rule_id", sorted(STACK_FAILURES))
def test_stack_rule_fails_and_passes(rule_id: str) -> None:
    check = _rule(rule_id).stack_check
    assert check(_bucket_set(), S) == []
    for override in STACK_FAILURES[rule_id]:
        assert check(_bucket_set(**override), S), f"{rule_id} did not fire on {override}"


# --- rules over the stack settings file ------------------------------------------------------

GOOD_FILE: dict[str, Any] = {
    "secretsprovider": "awskms://alias/claims-dc-pulumi-secrets?region=ap-northeast-1",
    "encryptedkey": "AQICAHh...",
    "config": {
        "aws:region": "ap-northeast-1",
        "claims-dc:lines": {"fund": {"type": "vpn", "customerGatewayIp": "203.0.113.20"}},
        "claims-dc:dbPassword": {"secure": "v1:abcdefghijklmnop"},
        "claims-dc:connectionId": "dxcon-fg5abc12",
    },
}
_AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
FILE_FAILURES: dict[str, list[dict[str, Any]]] = {
    "CDC-CFG-001": [
        {"config": {"claims-dc:dbPassword": "hunter2hunter2"}},
        {"config": {"claims-dc:lines": {"fund": {"psk": "x", "preSharedKey": "abc"}}}},
        {"config": {"aws:accessKey": "AKIAIOSFODNN7EXAMPLE"}},
        {"config": {"claims-dc:notes": f"ops key {_AWS_SECRET}"}},
        {"config": {"claims-dc:extra": ["-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl"]}},
        {"config": {"claims-dc:dsn": "postgresql://app:s3cret@db-1/claims"}},
        {"config": {"claims-dc:tokens": {"git": "ghp_abcdefghijklmnopqrstuvwx"}}},
    ],
    "CDC-CFG-002": [
        {"secretsprovider": None},
        {"secretsprovider": "passphrase"},
        {"secretsprovider": "awskms://alias/x?region=us-east-1"},
        {"secretsprovider": "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"},
    ],
}


def _file(**override: Any) -> dict[str, Any]:
    document = {**GOOD_FILE, "config": dict(GOOD_FILE["config"])}
    for key, value in override.items():
        if key == "config":
            document["config"].update(value)
        elif value is None:
            document.pop(key)
        else:
            document[key] = value
    return document


@pytest.mark.parametrize("rule_id", sorted(FILE_FAILURES))
def test_stack_file_rule_fails_and_passes(rule_id: str) -> None:
    check = _rule(rule_id).file_check
    assert check(_file(), S) == []
    for override in FILE_FAILURES[rule_id]:
        found = check(_file(**override), S)
        assert found, f"{rule_id} did not fire on {override}"
        for _, message in found:  # the message names the key, never the value
            assert "hunter2" not in message and _AWS_SECRET not in message
            assert "AKIAIOSFODNN7EXAMPLE" not in message and "s3cret" not in message


def test_a_plain_secret_in_a_stack_file_fails_the_check_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import infra.check

    text = (REPO / "Pulumi.lab.yaml").read_text()
    region = "  aws:region: ap-northeast-1\n"
    leaky = text.replace(region, f"{region}  aws:secretKey: {_AWS_SECRET}\n")
    (tmp_path / "Pulumi.lab.yaml").write_text(leaky)
    monkeypatch.setattr(infra.check, "REPO", tmp_path)
    assert infra.check.main(["--stack", "lab"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION CDC-CFG-001 [critical] Pulumi.lab.yaml: aws:secretKey" in out
    assert _AWS_SECRET not in out


def test_the_config_loader_never_repeats_a_secret_named_value() -> None:
    from infra.config import ConfigError, parse

    raw = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text())["config"]
    raw["claims-dc:adminPassword"] = "hunter2hunter2"
    with pytest.raises(ConfigError) as info:
        parse(raw, stack="lab", source="Pulumi.lab.yaml")
    assert "claims-dc:adminPassword = (not shown: a secret's name): unknown key" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("stack", ["lab", "omuta-prod"])
def test_both_stacks_pass_every_rule(stack: str) -> None:
    ev = evaluate(REPO / f"Pulumi.{stack}.yaml")
    settings = Settings(min_retention_days=ev.config.backup.retention_days)
    assert evaluate_rules(ev.policy_view(), settings) == []


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        additional_secret_outputs=[],
        custom_timeouts=None,
    )  # type: ignore[arg-type]


def test_the_pack_reports_through_pulumi_policy() -> None:
    """Validation arguments built by hand, as pulumi-policy-aws's own tests do."""
    by_name = {p.name: p for p in policies()}
    reports: list[str] = []
    args = ResourceValidationArgs(
        "aws:ec2/route:Route",
        {"destinationCidrBlock": "0.0.0.0/0"},
        "urn:pulumi:lab::claims-dc::aws:ec2/route:Route::r",
        "r",
        _opts(),
        None,
        {},
    )
    by_name["cdc-net-002"].validate(args, lambda msg, urn=None: reports.append(msg))
    assert reports and reports[0].startswith("[CDC-NET-002]")

    bucket = PolicyResource(
        "aws:s3/bucket:Bucket",
        {"objectLockEnabled": True},
        "urn:b",
        "b",
        _opts(),
        None,
        None,
        [],
        {},
    )
    pab = PolicyResource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {"blockPublicAcls": True},
        "urn:pab",
        "pab",
        _opts(),
        None,
        None,
        [bucket],
        {"bucket": [bucket]},
    )
    stack_reports: list[str] = []
    by_name["cdc-s3-001"].validate(
        StackValidationArgs([bucket, pab], {}), lambda msg, urn=None: stack_reports.append(msg)
    )
    assert stack_reports and "lacks blockPublicPolicy" in stack_reports[0]


def test_the_pack_reads_the_region_and_accepted_services_from_its_policy_config() -> None:
    from infra.policy.pack import _settings

    settings = _settings({"region": "ap-northeast-3", "endpointServices": ["com.example.relay"]})
    assert settings.region == "ap-northeast-3"
    assert "com.example.relay" in settings.endpoint_exceptions
    relay = Res(VPCE, "e", {"serviceName": "com.example.relay", "vpcEndpointType": "Interface"})
    assert _rule("CDC-NET-008").check(relay, settings) == []
    assert _rule("CDC-NET-008").check(relay, _settings({}))
