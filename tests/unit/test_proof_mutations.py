"""Mutation testing of the proof: each mutation of the correct lab stack must flip a verdict.

Mutations come in two kinds: through the program's own inputs (a changed stack config,
proved against the original flow policy), or by adding resources to what the program declares.
Each names the verdict it must flip and the resource its counterexample must name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi_aws as aws
import pytest
import yaml

import infra.check
import infra.program
import infra.proof.model
import infra.proof.verdicts
from infra.config import StackConfig, load_stack
from infra.offline import evaluate
from infra.proof import model_of
from infra.proof.verdicts import HOLDS, prove

REPO = Path(__file__).resolve().parents[2]
LAB = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text(encoding="utf-8"))

# Mock ids are "<name>-id": the program's own resources, addressed the way the engine would.
VPC, APP_RT, INTAKE_RT = "segment-vpc-id", "segment-app-rt-id", "segment-intake-rt-id"
APP_SUBNET = "segment-app-ap-northeast-1a-id"
LGWAN, FUND = "10.232.1.0/24", "10.233.1.0/24"


def _instance(name: str, **extra: Any) -> None:
    aws.ec2.Instance(
        name,
        ami="ami-x",
        instance_type="t3.micro",
        subnet_id=APP_SUBNET,
        private_ip=extra.pop("private_ip", "10.231.10.50"),
        vpc_security_group_ids=["hosts-app-sg-id"],
        metadata_options={"http_tokens": "required"},
        **extra,
    )


def igw_and_default_route() -> None:
    aws.ec2.InternetGateway("mut-igw", vpc_id=VPC)
    aws.ec2.Route(
        "mut-default",
        route_table_id=APP_RT,
        destination_cidr_block="0.0.0.0/0",
        gateway_id="mut-igw-id",
    )


def nat_gateway() -> None:
    aws.ec2.NatGateway("mut-nat", subnet_id=APP_SUBNET)
    aws.ec2.Route(
        "mut-nat-route",
        route_table_id=APP_RT,
        destination_cidr_block="0.0.0.0/0",
        nat_gateway_id="mut-nat-id",
    )


def egress_only_v6() -> None:
    aws.ec2.EgressOnlyInternetGateway("mut-eigw", vpc_id=VPC)
    aws.ec2.Route(
        "mut-v6-route",
        route_table_id=APP_RT,
        destination_ipv6_cidr_block="::/0",
        egress_only_gateway_id="mut-eigw-id",
    )


def public_subnet() -> None:
    aws.ec2.Subnet(
        "mut-public-subnet", vpc_id=VPC, cidr_block="10.231.60.0/24", map_public_ip_on_launch=True
    )


def public_instance() -> None:
    _instance("mut-public-host", associate_public_ip_address=True)


def eip_on_interface() -> None:
    aws.ec2.NetworkInterface(
        "mut-eni",
        subnet_id=APP_SUBNET,
        private_ips=["10.231.10.51"],
        security_groups=["hosts-app-sg-id"],
    )
    aws.ec2.Eip("mut-eip", network_interface="mut-eni-id")


def sg_open_to_world() -> None:
    aws.vpc.SecurityGroupIngressRule(
        "mut-open-ssh",
        security_group_id="hosts-app-sg-id",
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=22,
        to_port=22,
    )


def sg_egress_everything() -> None:
    aws.vpc.SecurityGroupEgressRule(
        "mut-egress-all",
        security_group_id="hosts-db-sg-id",
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="-1",
    )


def endpoint_sg_open() -> None:
    aws.vpc.SecurityGroupIngressRule(
        "mut-endpoints-open",
        security_group_id="segment-endpoints-sg-id",
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
    )


def nacl_allow_all() -> None:
    aws.ec2.NetworkAclRule(
        "mut-nacl-all",
        network_acl_id="segment-db-nacl-id",
        rule_number=1,
        egress=False,
        protocol="-1",
        rule_action="allow",
        cidr_block="0.0.0.0/0",
    )


def peering_to_internet_vpc() -> None:
    aws.ec2.Vpc("mut-other-vpc", cidr_block="172.31.0.0/16")
    aws.ec2.InternetGateway("mut-other-igw", vpc_id="mut-other-vpc-id")
    aws.ec2.VpcPeeringConnection("mut-pcx", vpc_id=VPC, peer_vpc_id="mut-other-vpc-id")
    aws.ec2.Route(
        "mut-pcx-route",
        route_table_id=APP_RT,
        destination_cidr_block="172.31.0.0/16",
        vpc_peering_connection_id="mut-pcx-id",
    )


def peering_outside_model() -> None:
    aws.ec2.VpcPeeringConnection("mut-pcx-out", vpc_id=VPC, peer_vpc_id="vpc-0123456789abcdef0")
    aws.ec2.Route(
        "mut-pcx-out-route",
        route_table_id=APP_RT,
        destination_cidr_block="172.30.0.0/16",
        vpc_peering_connection_id="mut-pcx-out-id",
    )


def tgw_route_to_internet_vpc() -> None:
    aws.ec2.Vpc("mut-inet-vpc", cidr_block="172.29.0.0/16")
    aws.ec2.InternetGateway("mut-inet-igw", vpc_id="mut-inet-vpc-id")
    aws.ec2.Subnet("mut-inet-subnet", vpc_id="mut-inet-vpc-id", cidr_block="172.29.1.0/24")
    aws.ec2transitgateway.VpcAttachment(
        "mut-inet-att",
        transit_gateway_id="lgwan-tgw-id",
        vpc_id="mut-inet-vpc-id",
        subnet_ids=["mut-inet-subnet-id"],
        transit_gateway_default_route_table_association=False,
        transit_gateway_default_route_table_propagation=False,
    )
    aws.ec2transitgateway.Route(
        "mut-tgw-default",
        destination_cidr_block="0.0.0.0/0",
        transit_gateway_attachment_id="mut-inet-att-id",
        transit_gateway_route_table_id="lgwan-vpc-side-id",
    )


def vgw_propagation_everywhere() -> None:
    aws.ec2.VpnGateway("mut-vgw", vpc_id=VPC)
    for zone in ("app", "db", "intake", "mgmt", "endpoints"):
        aws.ec2.VpnGatewayRoutePropagation(
            f"mut-prop-{zone}", vpn_gateway_id="mut-vgw-id", route_table_id=f"segment-{zone}-rt-id"
        )


def intake_route_to_lgwan() -> None:
    aws.ec2.Route(
        "mut-intake-to-lgwan",
        route_table_id=INTAKE_RT,
        destination_cidr_block=LGWAN,
        transit_gateway_id="lgwan-tgw-id",
    )


def app_default_to_lgwan_tgw() -> None:
    aws.ec2.Route(
        "mut-app-default-tgw",
        route_table_id=APP_RT,
        destination_cidr_block="0.0.0.0/0",
        transit_gateway_id="lgwan-tgw-id",
    )


def fund_line_can_address_db() -> None:
    aws.ec2transitgateway.Route(
        "mut-fund-to-db",
        destination_cidr_block="10.231.20.0/24",
        transit_gateway_attachment_id="fund-vpc-attachment-id",
        transit_gateway_route_table_id="fund-line-side-id",
    )


def cloudhub_joins_the_lines() -> None:
    aws.ec2.VpnGateway("mut-hub", vpc_id=VPC)
    for side, ip, cidr in (("l", "203.0.113.10", LGWAN), ("f", "203.0.113.20", FUND)):
        aws.ec2.CustomerGateway(f"mut-cgw-{side}", bgp_asn="65000", ip_address=ip, type="ipsec.1")
        aws.ec2.VpnConnection(
            f"mut-hub-vpn-{side}",
            customer_gateway_id=f"mut-cgw-{side}-id",
            vpn_gateway_id="mut-hub-id",
            type="ipsec.1",
            static_routes_only=True,
        )
        aws.ec2.VpnConnectionRoute(
            f"mut-hub-route-{side}",
            destination_cidr_block=cidr,
            vpn_connection_id=f"mut-hub-vpn-{side}-id",
        )


def transit_through_the_data_center() -> None:
    aws.ec2transitgateway.Route(
        "mut-lgwan-to-fund",
        destination_cidr_block=FUND,
        transit_gateway_attachment_id="lgwan-vpc-attachment-id",
        transit_gateway_route_table_id="lgwan-line-side-id",
    )
    aws.ec2.Route(
        "mut-app-to-fund",
        route_table_id=APP_RT,
        destination_cidr_block=FUND,
        transit_gateway_id="fund-tgw-id",
    )


def relay_instance() -> None:
    _instance("mut-relay", source_dest_check=False, private_ip="10.231.10.52")


def unknown_traffic_type() -> None:
    aws.ec2.CarrierGateway("mut-carrier", vpc_id=VPC)


def _flows(mutate: Callable[[list[dict[str, Any]]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(config: dict[str, Any]) -> None:
        mutate(config["claims-dc:flows"])

    return apply


def _add_flow(flow: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return _flows(lambda flows: flows.append({**flow, "why": "mutation"}))


def _drop_lgwan(flows: list[dict[str, Any]]) -> None:
    flows[:] = [f for f in flows if f["from"] != "lgwan"]
    flows.append({"from": "lgwan", "to": "app", "port": 8443, "why": "keeps the line's zone"})


def _fund_port(flows: list[dict[str, Any]]) -> None:
    next(f for f in flows if f["from"] == "fund")["port"] = 2222


def tgw_route_to_a_peering_attachment() -> None:
    # An attachment type the model does not read: a route to it must not end the walk.
    aws.ec2transitgateway.PeeringAttachment(
        "mut-tgw-peer",
        transit_gateway_id="lgwan-tgw-id",
        peer_transit_gateway_id="tgw-0123456789abcdef0",
        peer_region="ap-northeast-3",
        peer_account_id="123456789012",
    )
    aws.ec2transitgateway.Route(
        "mut-tgw-to-peer",
        destination_cidr_block="0.0.0.0/0",
        transit_gateway_attachment_id="mut-tgw-peer-id",
        transit_gateway_route_table_id="lgwan-vpc-side-id",
    )


@dataclass
class Mutation:
    name: str
    verdict: str
    offender: str  # text the counterexample must contain
    resources: Callable[[], None] | None = None
    config: Callable[[dict[str, Any]], None] | None = None
    status: str = "VIOLATED"


MUTATIONS = [
    Mutation("internet gateway and a default route", "closed", "mut-igw", igw_and_default_route),
    Mutation("NAT gateway", "closed", "mut-nat", nat_gateway),
    Mutation("egress-only gateway with ::/0", "closed", "mut-eigw", egress_only_v6),
    Mutation("map_public_ip_on_launch", "closed", "mut-public-subnet", public_subnet),
    Mutation("associate_public_ip_address", "closed", "mut-public-host", public_instance),
    Mutation("EIP on an interface", "closed", "mut-eip", eip_on_interface),
    Mutation("security group rule from 0.0.0.0/0", "closed", "mut-open-ssh", sg_open_to_world),
    Mutation(
        "security group egress to everything", "closed", "mut-egress-all", sg_egress_everything
    ),
    Mutation("endpoint security group open", "closed", "mut-endpoints-open", endpoint_sg_open),
    Mutation("NACL allowing everything", "closed", "mut-nacl-all", nacl_allow_all),
    Mutation(
        "peering to a VPC with an internet gateway", "closed", "mut-pcx", peering_to_internet_vpc
    ),
    Mutation("peering to a VPC outside the model", "closed", "mut-pcx-out", peering_outside_model),
    Mutation(
        "transit gateway route towards an internet VPC",
        "closed",
        "mut-inet-att",
        tgw_route_to_internet_vpc,
    ),
    Mutation(
        "VGW route propagation to every table", "closed", "mut-vgw", vgw_propagation_everywhere
    ),
    Mutation(
        "route from the intake table to the LGWAN CIDR",
        "policy",
        "mut-intake-to-lgwan",
        intake_route_to_lgwan,
    ),
    Mutation(
        "default route to the LGWAN transit gateway",
        "policy",
        "mut-app-default-tgw",
        app_default_to_lgwan_tgw,
    ),
    Mutation(
        "the fund's line can address db", "policy", "fund-line-side", fund_line_can_address_db
    ),
    Mutation(
        "app-to-intake SSH the policy does not list",
        "policy",
        "hosts-intake-sg",
        config=_add_flow({"from": "app", "to": "intake", "port": 22}),
    ),
    Mutation(
        "mgmt-to-db PostgreSQL the policy does not list",
        "policy",
        "hosts-db-sg",
        config=_add_flow({"from": "mgmt", "to": "db", "port": 5432}),
    ),
    Mutation("the caseworkers' flow removed", "policy", "lgwan", config=_flows(_drop_lgwan)),
    Mutation("the fund delivers on another port", "policy", "fund", config=_flows(_fund_port)),
    Mutation(
        "one VGW for both lines (VPN CloudHub)", "separated", "mut-hub", cloudhub_joins_the_lines
    ),
    Mutation(
        "LGWAN to the fund through the data center",
        "separated",
        "mut-app-to-fund",
        transit_through_the_data_center,
    ),
    Mutation(
        "an instance that forwards packets",
        "separated",
        "mut-relay",
        relay_instance,
        status="UNKNOWN",
    ),
    Mutation(
        "transit gateway route to an attachment type the model does not know",
        "closed",
        "mut-tgw-to-peer",
        tgw_route_to_a_peering_attachment,
        status="UNKNOWN",
    ),
    Mutation(
        "a traffic-carrying type the model does not know",
        "closed",
        "mut-carrier",
        unknown_traffic_type,
        status="UNKNOWN",
    ),
]


def _run_mutation(m: Mutation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    original_config: StackConfig = load_stack("lab", REPO)
    stack_file = REPO / "Pulumi.lab.yaml"
    if m.config is not None:
        document = copy.deepcopy(LAB)
        m.config(document["config"])
        stack_file = tmp_path / "Pulumi.lab.yaml"
        stack_file.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    if m.resources is not None:
        original_run = infra.program.run
        extra = m.resources

        def mutated(config: StackConfig) -> None:
            original_run(config)
            extra()

        monkeypatch.setattr(infra.program, "run", mutated)
    ev = evaluate(stack_file)
    # Always judged against the policy the privacy council approved: the original one.
    return prove(model_of(ev), original_config)


def test_the_correct_stack_holds() -> None:
    proof = prove(model_of(evaluate(REPO / "Pulumi.lab.yaml")), load_stack("lab", REPO))
    assert [v.status for v in proof.verdicts] == [HOLDS, HOLDS, HOLDS]


@pytest.mark.parametrize("m", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_mutation_flips_its_verdict(
    m: Mutation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proof = _run_mutation(m, tmp_path, monkeypatch)
    verdict = next(v for v in proof.verdicts if v.id == m.verdict)
    assert verdict.status == m.status, (m.name, [(v.id, v.status) for v in proof.verdicts])
    evidence = " | ".join(f"{c.summary} :: {' / '.join(c.hops)}" for c in verdict.counterexamples)
    assert m.offender in evidence, evidence


def test_there_are_enough_mutations() -> None:
    assert len(MUTATIONS) >= 20
    assert {m.verdict for m in MUTATIONS} == {"closed", "policy", "separated"}


def test_a_resource_the_model_fails_to_read_makes_the_verdicts_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: Any, r: Any) -> None:
        if r.name == "segment-app-rt":
            raise KeyError("routes")

    monkeypatch.setattr(infra.proof.model._Builder, "_route_table", broken)
    proof = prove(model_of(evaluate(REPO / "Pulumi.lab.yaml")), load_stack("lab", REPO))
    assert HOLDS not in [v.status for v in proof.verdicts]  # UNKNOWN, or VIOLATED without it
    assert any("segment-app-rt" in u and "KeyError" in u for u in proof.unknown)


def test_a_proof_that_fails_halfway_is_unknown_and_the_check_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: Any) -> None:
        raise KeyError("mut-attachment")

    monkeypatch.setattr(infra.proof.verdicts, "_separated", broken)
    proof = prove(model_of(evaluate(REPO / "Pulumi.lab.yaml")), load_stack("lab", REPO))
    assert [v.status for v in proof.verdicts] == [HOLDS, HOLDS, "UNKNOWN"]
    why = proof.verdicts[2].counterexamples[0]
    assert "KeyError" in why.summary and "mut-attachment" in why.summary
    assert why.hops and why.hops[0].startswith("at ")
    assert infra.check.main(["--stack", "lab"]) == 1
    out = capsys.readouterr()
    assert "proof separated UNKNOWN" in out.out and "the proof failed: KeyError" in out.out
    assert "Traceback" not in out.out + out.err
