"""The stack config loader: the stacks in the repo load, and every rejection fires."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import (
    ConfigError,
    load_file,
    load_stack,
    municipality_check_digit,
    parse,
)

REPO = Path(__file__).resolve().parents[2]


def _parse(raw: dict[str, Any]) -> Any:
    return parse(raw, stack="lab", source="Pulumi.lab.yaml")


def test_lab_stack_loads_with_the_design_flow_policy() -> None:
    config = load_stack("lab", REPO)
    assert config.region == "ap-northeast-1"
    assert set(config.zones) == {"lgwan", "fund", "app", "db", "intake", "mgmt", "endpoints"}
    assert config.allowed() == {
        ("lgwan", "app", 443, "tcp"),
        ("fund", "intake", 22, "tcp"),
        ("app", "db", 5432, "tcp"),
        ("intake", "db", 5432, "tcp"),
        ("mgmt", "app", 22, "tcp"),
        ("mgmt", "db", 22, "tcp"),
        ("mgmt", "intake", 22, "tcp"),
        ("app", "endpoints", 443, "tcp"),
        ("db", "endpoints", 443, "tcp"),
        ("intake", "endpoints", 443, "tcp"),
        ("mgmt", "endpoints", 443, "tcp"),
    }
    assert not config.is_allowed("lgwan", "fund", 22)
    assert config.hosts["app-1"].address == ipaddress.IPv4Address("10.231.10.10")
    assert config.hosts["terminal-1"].stand_in
    assert not config.hosts["db-1"].stand_in


def test_sample_municipality_stack_loads() -> None:
    config = load_stack("omuta-prod", REPO)
    assert config.municipality.code == "402028"
    assert all(not h.stand_in for h in config.hosts.values())


@pytest.mark.parametrize(("code", "digit"), [("40202", 8), ("13101", 6), ("99999", 7)])
def test_municipality_check_digit(code: str, digit: int) -> None:
    assert municipality_check_digit(code) == digit


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        keys = path.split("/")
        node: Any = raw
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        keys = path.split("/")
        node: Any = raw
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[keys[-1]]

    return mutate


def _append_flow(flow: dict[str, Any]) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        raw["claims-dc:flows"].append(flow)

    return mutate


# (case id, mutation, text the error must contain: the key, then the value)
REJECTIONS: list[tuple[str, Mutation, str, str]] = [
    ("region outside Japan", _set("aws:region", "us-east-1"), "aws:region", "'us-east-1'"),
    ("region missing", _delete("aws:region"), "aws:region", "None"),
    (
        "unknown top-level key",
        _set("claims-dc:vpcCdir", "10.0.0.0/16"),
        "claims-dc:vpcCdir",
        "10.0.0.0/16",
    ),
    (
        "municipality code not 6 digits",
        _set("claims-dc:municipality/code", "12345"),
        "claims-dc:municipality.code",
        "'12345'",
    ),
    (
        "municipality code bad check digit",
        _set("claims-dc:municipality/code", "402029"),
        "claims-dc:municipality.code",
        "check digit should be 8",
    ),
    (
        "municipality name empty",
        _set("claims-dc:municipality/name", " "),
        "claims-dc:municipality.name",
        "' '",
    ),
    (
        "vpc cidr unparsable",
        _set("claims-dc:vpcCidr", "10.231.0.0/33"),
        "claims-dc:vpcCidr",
        "'10.231.0.0/33'",
    ),
    (
        "vpc cidr host bits",
        _set("claims-dc:vpcCidr", "10.231.0.1/16"),
        "claims-dc:vpcCidr",
        "'10.231.0.1/16'",
    ),
    (
        "vpc cidr too large",
        _set("claims-dc:vpcCidr", "10.0.0.0/8"),
        "claims-dc:vpcCidr",
        "between /16 and /28",
    ),
    (
        "zone cidr not a string",
        _set("claims-dc:zones/app/cidr", 42),
        "claims-dc:zones.app.cidr",
        "42",
    ),
    (
        "zone cidr unparsable",
        _set("claims-dc:zones/db/cidr", "10.231.20.0/24x"),
        "claims-dc:zones.db.cidr",
        "'10.231.20.0/24x'",
    ),
    (
        "unknown zone",
        _set("claims-dc:zones/internet", {"cidr": "10.231.90.0/24"}),
        "claims-dc:zones.internet",
        "unknown zone",
    ),
    ("zone missing", _delete("claims-dc:zones/mgmt"), "claims-dc:zones.mgmt", "missing"),
    (
        "data-center zone outside the VPC",
        _set("claims-dc:zones/app/cidr", "10.240.10.0/24"),
        "claims-dc:zones.app.cidr",
        "must lie inside vpcCidr",
    ),
    (
        "outside zone inside the VPC",
        _set("claims-dc:zones/lgwan/cidr", "10.231.99.0/24"),
        "claims-dc:zones.lgwan.cidr",
        "must not overlap vpcCidr",
    ),
    (
        "zones overlap",
        _set("claims-dc:zones/db/cidr", "10.231.10.0/25"),
        "claims-dc:zones.db.cidr",
        "overlaps claims-dc:zones.app.cidr",
    ),
    (
        "host address outside its zone",
        _set("claims-dc:hosts/app-1/address", "10.231.20.50"),
        "claims-dc:hosts.app-1.address",
        "not inside zone app",
    ),
    (
        "host address unparsable",
        _set("claims-dc:hosts/db-1/address", "10.231.20.300"),
        "claims-dc:hosts.db-1.address",
        "'10.231.20.300'",
    ),
    (
        "host on an AWS-reserved address",
        _set("claims-dc:hosts/db-1/address", "10.231.20.1"),
        "claims-dc:hosts.db-1.address",
        "reserved",
    ),
    (
        "host on the router's address",
        _set("claims-dc:hosts/db-1/address", "10.231.20.254"),
        "claims-dc:hosts.db-1.address",
        "10.231.20.254 for the lab router",
    ),
    (
        "host address taken twice",
        _set("claims-dc:hosts/app-2", {"zone": "app", "role": "app", "address": "10.231.10.10"}),
        "claims-dc:hosts.app-2.address",
        "already taken by host app-1",
    ),
    (
        "host in unknown zone",
        _set("claims-dc:hosts/app-1/zone", "dmz"),
        "claims-dc:hosts.app-1.zone",
        "'dmz'",
    ),
    (
        "host with unknown role",
        _set("claims-dc:hosts/app-1/role", "web"),
        "claims-dc:hosts.app-1.role",
        "'web'",
    ),
    (
        "host role in the wrong zone",
        _set("claims-dc:hosts/db-1/zone", "app"),
        "claims-dc:hosts.db-1.zone",
        "a db host belongs in zone db",
    ),
    (
        "host name not a DNS label",
        _set("claims-dc:hosts/App_1", {"zone": "app", "role": "app", "address": "10.231.10.11"}),
        "claims-dc:hosts.App_1",
        "DNS label",
    ),
    (
        "host with unknown key",
        _set("claims-dc:hosts/app-1/publicIp", True),
        "claims-dc:hosts.app-1.publicIp",
        "unknown key",
    ),
    (
        "flow from unknown zone",
        _set("claims-dc:flows/0/from", "internet"),
        "claims-dc:flows[0].from",
        "'internet'",
    ),
    (
        "flow to unknown zone",
        _set("claims-dc:flows/3/to", ["app", "dbb"]),
        "claims-dc:flows[3].to",
        "'dbb'",
    ),
    ("flow port zero", _set("claims-dc:flows/0/port", 0), "claims-dc:flows[0].port", "0"),
    (
        "flow port too high",
        _set("claims-dc:flows/0/port", 65536),
        "claims-dc:flows[0].port",
        "65536",
    ),
    (
        "flow port a string",
        _set("claims-dc:flows/0/port", "443"),
        "claims-dc:flows[0].port",
        "'443'",
    ),
    (
        "flow port a YAML boolean",
        _set("claims-dc:flows/0/port", True),
        "claims-dc:flows[0].port",
        "True",
    ),
    (
        "flow protocol unknown",
        _set("claims-dc:flows/0/protocol", "icmp"),
        "claims-dc:flows[0].protocol",
        "'icmp'",
    ),
    ("flow without a reason", _delete("claims-dc:flows/0/why"), "claims-dc:flows[0].why", "None"),
    (
        "flow within one zone",
        _append_flow({"from": "app", "to": "app", "port": 8080, "why": "x"}),
        "claims-dc:flows[5]",
        "'app -> app'",
    ),
    (
        "flow joining LGWAN and the fund",
        _append_flow({"from": "lgwan", "to": "fund", "port": 22, "why": "x"}),
        "claims-dc:flows[5]",
        "must never reach each other",
    ),
    (
        "flow joining the fund and LGWAN",
        _append_flow({"from": ["fund"], "to": ["lgwan"], "port": 443, "why": "x"}),
        "claims-dc:flows[5]",
        "'fund -> lgwan'",
    ),
    (
        "duplicate flow",
        _append_flow({"from": "mgmt", "to": "db", "port": 22, "why": "again"}),
        "claims-dc:flows[5]",
        "duplicates claims-dc:flows[3]",
    ),
    (
        "flow with unknown key",
        _set("claims-dc:flows/0/ports", [443]),
        "claims-dc:flows[0].ports",
        "unknown key",
    ),
    ("no flows", _set("claims-dc:flows", []), "claims-dc:flows", "non-empty list"),
    (
        "one availability zone",
        _set("claims-dc:availabilityZones", ["ap-northeast-1a"]),
        "claims-dc:availabilityZones",
        "at least two",
    ),
    (
        "availability zone of another region",
        _set("claims-dc:availabilityZones", ["ap-northeast-1a", "ap-northeast-3a"]),
        "claims-dc:availabilityZones[1]",
        "'ap-northeast-3a'",
    ),
    (
        "availability zone outside Japan",
        _set("claims-dc:availabilityZones", ["ap-northeast-1a", "us-east-1a"]),
        "claims-dc:availabilityZones[1]",
        "'us-east-1a'",
    ),
    (
        "availability zone twice",
        _set("claims-dc:availabilityZones", ["ap-northeast-1a", "ap-northeast-1a"]),
        "claims-dc:availabilityZones[1]",
        "listed twice",
    ),
    (
        "zone too small to split across AZs",
        _set("claims-dc:zones/mgmt/cidr", "10.231.40.0/28"),
        "claims-dc:zones.mgmt.cidr",
        "too small for 2 subnets",
    ),
    (
        "host on the second AZ subnet's reserved head",
        _set("claims-dc:hosts/app-1/address", "10.231.10.129"),
        "claims-dc:hosts.app-1.address",
        "reserved",
    ),
    (
        "host with a bad instance type",
        _set("claims-dc:hosts/app-1/instanceType", "big"),
        "claims-dc:hosts.app-1.instanceType",
        "'big'",
    ),
    ("line missing", _delete("claims-dc:lines/fund"), "claims-dc:lines.fund", "missing"),
    (
        "unknown line",
        _set("claims-dc:lines/internet", {"type": "vpn"}),
        "claims-dc:lines.internet",
        "unknown line",
    ),
    (
        "line of unknown type",
        _set("claims-dc:lines/lgwan/type", "ipsec"),
        "claims-dc:lines.lgwan.type",
        "'ipsec'",
    ),
    (
        "line with a public ASN",
        _set("claims-dc:lines/lgwan/bgpAsn", 2516),
        "claims-dc:lines.lgwan.bgpAsn",
        "private ASN",
    ),
    (
        "vpn line without an address",
        _set("claims-dc:lines/fund/customerGatewayIp", "x"),
        "claims-dc:lines.fund.customerGatewayIp",
        "'x'",
    ),
    (
        "vpn line with a dx key",
        _set("claims-dc:lines/fund/vlan", 10),
        "claims-dc:lines.fund.vlan",
        "unknown key for a vpn line",
    ),
    (
        "dx line with a bad connection",
        _set(
            "claims-dc:lines/lgwan",
            {"type": "dx", "connectionId": "dx-1", "vlan": 5, "bgpAsn": 65010},
        ),
        "claims-dc:lines.lgwan.connectionId",
        "'dx-1'",
    ),
    (
        "dx line with a bad VLAN",
        _set(
            "claims-dc:lines/lgwan",
            {"type": "dx", "connectionId": "dxcon-abc123", "vlan": 4095, "bgpAsn": 65010},
        ),
        "claims-dc:lines.lgwan.vlan",
        "4095",
    ),
    (
        "fund line shared with LGWAN",
        _set("claims-dc:lines/fund/customerGatewayIp", "203.0.113.10"),
        "claims-dc:lines.fund",
        "must be separate from LGWAN",
    ),
    (
        "backup retention zero",
        _set("claims-dc:backup/retentionDays", 0),
        "claims-dc:backup.retentionDays",
        "0",
    ),
    (
        "backup versions expire while locked",
        _set("claims-dc:backup/noncurrentExpireDays", 10),
        "claims-dc:backup.noncurrentExpireDays",
        "at least retentionDays (35)",
    ),
    (
        "backup cold too early",
        _set("claims-dc:backup/coldAfterDays", 7),
        "claims-dc:backup.coldAfterDays",
        "7",
    ),
    (
        "backup replica abroad",
        _set("claims-dc:backup/replicaRegion", "us-east-1"),
        "claims-dc:backup.replicaRegion",
        "'us-east-1'",
    ),
    (
        "backup replica in the same region",
        _set("claims-dc:backup/replicaRegion", "ap-northeast-1"),
        "claims-dc:backup.replicaRegion",
        "other Japanese region",
    ),
    (
        "log retention CloudWatch refuses",
        _set("claims-dc:logs/retentionDays", 100),
        "claims-dc:logs.retentionDays",
        "100",
    ),
    ("backup missing", _delete("claims-dc:backup"), "claims-dc:backup", "None"),
    (
        "endpoint services not a list",
        _set("claims-dc:endpointServices", "com.example.relay"),
        "claims-dc:endpointServices",
        "'com.example.relay'",
    ),
    (
        "endpoint service without a reason",
        _set("claims-dc:endpointServices", [{"service": "com.example.relay", "why": ""}]),
        "claims-dc:endpointServices[0].why",
        "''",
    ),
    (
        "endpoint service exception for an AWS service",
        _set(
            "claims-dc:endpointServices",
            [{"service": "com.amazonaws.ap-northeast-1.s3", "why": "not needed at all"}],
        ),
        "claims-dc:endpointServices[0].service",
        "needs no exception",
    ),
    (
        "endpoint service name with spaces",
        _set("claims-dc:endpointServices", [{"service": "a relay", "why": "the fund's relay"}]),
        "claims-dc:endpointServices[0].service",
        "'a relay'",
    ),
    (
        "rotation of an unknown kind",
        _set("claims-dc:rotation/everyDays", {"passwords": 30}),
        "claims-dc:rotation.everyDays.passwords",
        "unknown kind",
    ),
    (
        "rotation interval not a number of days",
        _set("claims-dc:rotation/everyDays", {"host-keys": "yearly"}),
        "claims-dc:rotation.everyDays.host-keys",
        "'yearly'",
    ),
    (
        "notice period over 90 days",
        _set("claims-dc:rotation/noticeDays", 120),
        "claims-dc:rotation.noticeDays",
        "120",
    ),
    (
        "LGWAN serving two zones",
        _append_flow({"from": "lgwan", "to": "intake", "port": 443, "why": "x"}),
        "claims-dc:flows",
        "must serve exactly one data-center zone",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key", "value"),
    [pytest.param(m, k, v, id=case) for case, m, k, v in REJECTIONS],
)
def test_rejection_names_key_and_value(
    lab_raw: dict[str, Any], mutate: Mutation, key: str, value: str
) -> None:
    mutate(lab_raw)
    with pytest.raises(ConfigError) as excinfo:
        _parse(lab_raw)
    matching = [line for line in excinfo.value.problems if f": {key} = " in line]
    assert matching, f"no problem names {key}: {excinfo.value.problems}"
    assert any(value in line for line in matching), matching
    assert all(line.startswith("Pulumi.lab.yaml: ") for line in excinfo.value.problems)


def test_rotation_calendar_and_the_keys_a_partner_pins(lab_raw: dict[str, Any]) -> None:
    lab = load_stack("lab", REPO)
    assert lab.rotation.every_days["db-login"] == 90 and lab.rotation.notice_days == 14
    # The fund logs in to the intake zone over SSH: it pins intake-1's host key, and only that.
    assert lab.host_key_pinned_by("intake-1") == ["fund"]
    assert [h for h in lab.hosts if lab.host_key_pinned_by(h)] == ["intake-1"]
    omuta = load_stack("omuta-prod", REPO)
    assert omuta.rotation.every_days["sftp-key"] == 730 and omuta.rotation.notice_days == 21
    assert omuta.rotation.every_days["host-keys"] == 365  # left out: the default
    del lab_raw["claims-dc:rotation"]
    assert _parse(lab_raw).rotation.every_days["tls"] == 60  # optional


@pytest.mark.parametrize(("days", "refused"), [(60, False), (61, True), (365, True)])
def test_a_tls_calendar_must_rotate_before_the_certificate_warns(
    lab_raw: dict[str, Any], days: int, refused: bool
) -> None:
    """The certificate lives 90 days and the board warns 30 days ahead: a calendar of 365
    days would let the served certificate expire while the calendar says not-due."""
    lab_raw["claims-dc:rotation"] = {"everyDays": {"tls": days}}
    if not refused:
        assert _parse(lab_raw).rotation.every_days["tls"] == days
        return
    with pytest.raises(ConfigError) as excinfo:
        _parse(lab_raw)
    assert any("claims-dc:rotation.everyDays.tls" in p and "at least every 60 days" in p
               for p in excinfo.value.problems), excinfo.value.problems  # fmt: skip


def test_every_problem_is_reported_at_once(lab_raw: dict[str, Any]) -> None:
    lab_raw["claims-dc:municipality"]["name"] = ""
    lab_raw["claims-dc:flows"][0]["port"] = 0
    lab_raw["claims-dc:hosts"]["db-1"]["address"] = "10.9.9.9"
    with pytest.raises(ConfigError) as excinfo:
        _parse(lab_raw)
    assert len(excinfo.value.problems) == 3


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad_name = tmp_path / "lab.yaml"
    bad_name.write_text("config: {}\n")
    with pytest.raises(ConfigError, match=re.escape("Pulumi.<stack>.yaml")):
        load_file(bad_name)
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape("Pulumi.broken.yaml: not valid YAML")):
        load_file(broken)
    empty = tmp_path / "Pulumi.empty.yaml"
    empty.write_text("encryptionsalt: x\n")
    with pytest.raises(ConfigError, match="needs a top-level 'config:' mapping"):
        load_file(empty)
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(tmp_path / "Pulumi.missing.yaml")


def test_a_copy_with_another_policy_loads(tmp_path: Path, lab_raw: dict[str, Any]) -> None:
    lab_raw["claims-dc:flows"].append(
        {"from": "lgwan", "to": "app", "port": 8443, "why": "a second web port"}
    )
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump({"config": lab_raw}, allow_unicode=True))
    config = load_file(path)
    assert config.is_allowed("lgwan", "app", 8443)


def test_an_accepted_endpoint_service_is_kept_with_its_reason(lab_raw: dict[str, Any]) -> None:
    name = "com.amazonaws.vpce.ap-northeast-1.vpce-svc-0123456789abcdef0"
    lab_raw["claims-dc:endpointServices"] = [{"service": name, "why": "the fund's SFTP relay"}]
    assert _parse(lab_raw).endpoint_exceptions == {name: "the fund's SFTP relay"}
