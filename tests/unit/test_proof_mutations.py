"""Mutation testing of the proof: each mutation of the correct lab stack must flip a verdict.

Mutations come in two kinds: through the program's own inputs (a changed stack config,
proved against the original flow policy), or by adding resources to what the program declares.
Each names the verdict it must flip and the resource its counterexample must name.
"""

from __future__ import annotations

import ipaddress
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


@dataclass(frozen=True)
class At:
    """What a mutation needs to know of the stack it lands in (resource names are the same)."""

    stack: str
    app_net: str  # the app zone's first subnet, where mutations put their hosts
    lgwan: str
    fund: str

    def app(self, host: int) -> str:
        return str(ipaddress.ip_network(self.app_net).network_address + host)


LAB_AT = At("lab", "10.231.10.0/25", "10.232.1.0/24", "10.233.1.0/24")
OMUTA_AT = At("omuta-prod", "10.80.10.0/25", "172.20.40.0/24", "172.30.1.0/28")
AT = {a.stack: a for a in (LAB_AT, OMUTA_AT)}

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
        private_ip=extra.pop("private_ip", LAB_AT.app(50)),
        vpc_security_group_ids=["hosts-app-sg-id"],
        metadata_options={"http_tokens": "required"},
        **extra,
    )


def igw_and_default_route(at: At) -> None:
    aws.ec2.InternetGateway("mut-igw", vpc_id=VPC)
    aws.ec2.Route(
        "mut-default",
        route_table_id=APP_RT,
        destination_cidr_block="0.0.0.0/0",
        gateway_id="mut-igw-id",
    )


def nat_gateway(at: At) -> None:
    aws.ec2.NatGateway("mut-nat", subnet_id=APP_SUBNET)
    aws.ec2.Route(
        "mut-nat-route",
        route_table_id=APP_RT,
        destination_cidr_block="0.0.0.0/0",
        nat_gateway_id="mut-nat-id",
    )


def egress_only_v6(at: At) -> None:
    aws.ec2.EgressOnlyInternetGateway("mut-eigw", vpc_id=VPC)
    aws.ec2.Route(
        "mut-v6-route",
        route_table_id=APP_RT,
        destination_ipv6_cidr_block="::/0",
        egress_only_gateway_id="mut-eigw-id",
    )


def public_subnet(at: At) -> None:
    aws.ec2.Subnet(
        "mut-public-subnet", vpc_id=VPC, cidr_block="10.231.60.0/24", map_public_ip_on_launch=True
    )


def public_instance(at: At) -> None:
    _instance("mut-public-host", associate_public_ip_address=True)


def eip_on_interface(at: At) -> None:
    aws.ec2.NetworkInterface(
        "mut-eni",
        subnet_id=APP_SUBNET,
        private_ips=["10.231.10.51"],
        security_groups=["hosts-app-sg-id"],
    )
    aws.ec2.Eip("mut-eip", network_interface="mut-eni-id")


def sg_open_to_world(at: At) -> None:
    aws.vpc.SecurityGroupIngressRule(
        "mut-open-ssh",
        security_group_id="hosts-app-sg-id",
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=22,
        to_port=22,
    )


def sg_egress_everything(at: At) -> None:
    aws.vpc.SecurityGroupEgressRule(
        "mut-egress-all",
        security_group_id="hosts-db-sg-id",
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="-1",
    )


def endpoint_sg_open(at: At) -> None:
    aws.vpc.SecurityGroupIngressRule(
        "mut-endpoints-open",
        security_group_id="segment-endpoints-sg-id",
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
    )


def nacl_allow_all(at: At) -> None:
    aws.ec2.NetworkAclRule(
        "mut-nacl-all",
        network_acl_id="segment-db-nacl-id",
        rule_number=1,
        egress=False,
        protocol="-1",
        rule_action="allow",
        cidr_block="0.0.0.0/0",
    )


def peering_to_internet_vpc(at: At) -> None:
    aws.ec2.Vpc("mut-other-vpc", cidr_block="172.31.0.0/16")
    aws.ec2.InternetGateway("mut-other-igw", vpc_id="mut-other-vpc-id")
    aws.ec2.VpcPeeringConnection("mut-pcx", vpc_id=VPC, peer_vpc_id="mut-other-vpc-id")
    aws.ec2.Route(
        "mut-pcx-route",
        route_table_id=APP_RT,
        destination_cidr_block="172.31.0.0/16",
        vpc_peering_connection_id="mut-pcx-id",
    )


def peering_outside_model(at: At) -> None:
    aws.ec2.VpcPeeringConnection("mut-pcx-out", vpc_id=VPC, peer_vpc_id="vpc-0123456789abcdef0")
    aws.ec2.Route(
        "mut-pcx-out-route",
        route_table_id=APP_RT,
        destination_cidr_block="172.30.0.0/16",
        vpc_peering_connection_id="mut-pcx-out-id",
    )


def tgw_route_to_internet_vpc(at: At) -> None:
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


def vgw_propagation_everywhere(at: At) -> None:
    aws.ec2.VpnGateway("mut-vgw", vpc_id=VPC)
    for zone in ("app", "db", "intake", "mgmt", "endpoints"):
        aws.ec2.VpnGatewayRoutePropagation(
            f"mut-prop-{zone}", vpn_gateway_id="mut-vgw-id", route_table_id=f"segment-{zone}-rt-id"
        )


def intake_route_to_lgwan(at: At) -> None:
    aws.ec2.Route(
        "mut-intake-to-lgwan",
        route_table_id=INTAKE_RT,
        destination_cidr_block=LGWAN,
        transit_gateway_id="lgwan-tgw-id",
    )


def app_default_to_lgwan_tgw(at: At) -> None:
    aws.ec2.Route(
        "mut-app-default-tgw",
        route_table_id=APP_RT,
        destination_cidr_block="0.0.0.0/0",
        transit_gateway_id="lgwan-tgw-id",
    )


def fund_line_can_address_db(at: At) -> None:
    aws.ec2transitgateway.Route(
        "mut-fund-to-db",
        destination_cidr_block="10.231.20.0/24",
        transit_gateway_attachment_id="fund-vpc-attachment-id",
        transit_gateway_route_table_id="fund-line-side-id",
    )


def cloudhub_joins_the_lines(at: At) -> None:
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


def transit_through_the_data_center(at: At) -> None:
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


def relay_instance(at: At) -> None:
    _instance("mut-relay", source_dest_check=False, private_ip=at.app(52))


def unknown_traffic_type(at: At) -> None:
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


def tgw_route_to_a_peering_attachment(at: At) -> None:
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


# --- endpoints: only the region's AWS services are known ground --------------------------------
PARTNER = "com.amazonaws.vpce.ap-northeast-1.vpce-svc-0123456789abcdef0"
ENDPOINT_SUBNET = "segment-endpoints-ap-northeast-1a-id"


def _endpoint(name: str, service: str, kind: str, **extra: Any) -> None:
    aws.ec2.VpcEndpoint(name, vpc_id=VPC, service_name=service, vpc_endpoint_type=kind, **extra)


def partner_interface_endpoint(at: At) -> None:
    _endpoint("mut-partner", PARTNER, "Interface", subnet_ids=[ENDPOINT_SUBNET],
              security_group_ids=["segment-endpoints-sg-id"])  # fmt: skip


def marketplace_interface_endpoint(at: At) -> None:
    _endpoint("mut-marketplace", "aws.api.ap-northeast-1.partner-relay", "Interface",
              subnet_ids=[ENDPOINT_SUBNET])  # fmt: skip


def gwlb_endpoint(at: At) -> None:
    _endpoint("mut-gwlbe", PARTNER, "GatewayLoadBalancer", subnet_ids=[ENDPOINT_SUBNET])


def gwlb_endpoint_as_default_route(at: At) -> None:
    gwlb_endpoint(at)
    aws.ec2.Route("mut-via-gwlbe", route_table_id=APP_RT, destination_cidr_block="0.0.0.0/0",
                  vpc_endpoint_id="mut-gwlbe-id")  # fmt: skip


def s3_of_another_region(at: At) -> None:
    _endpoint("mut-s3-virginia", "com.amazonaws.us-east-1.s3", "Gateway",
              route_table_ids=[APP_RT])  # fmt: skip


def interface_endpoint_of_another_region(at: At) -> None:
    _endpoint("mut-kms-virginia", "com.amazonaws.us-east-1.kms", "Interface",
              subnet_ids=[ENDPOINT_SUBNET])  # fmt: skip


def aws_endpoint_as_a_route_target(at: At) -> None:
    aws.ec2.Route("mut-via-kms", route_table_id=APP_RT, destination_cidr_block="0.0.0.0/0",
                  vpc_endpoint_id="segment-kms-id")  # fmt: skip


# --- references the program does not declare -------------------------------------------------
def route_to_undeclared_prefix_list(at: At) -> None:
    aws.ec2.Route("mut-pl-route", route_table_id=APP_RT, destination_prefix_list_id="pl-0abc1234",
                  transit_gateway_id="lgwan-tgw-id")  # fmt: skip


def sg_rule_on_undeclared_prefix_list(at: At) -> None:
    aws.vpc.SecurityGroupIngressRule("mut-sg-pl", security_group_id="hosts-app-sg-id",
                                     prefix_list_id="pl-0abc1234", ip_protocol="tcp",
                                     from_port=443, to_port=443)  # fmt: skip


def sg_rule_on_undeclared_group(at: At) -> None:
    aws.vpc.SecurityGroupIngressRule("mut-sg-ref", security_group_id="hosts-db-sg-id",
                                     referenced_security_group_id="sg-0123456789abcdef0",
                                     ip_protocol="tcp", from_port=5432, to_port=5432)  # fmt: skip


def instance_in_undeclared_group(at: At) -> None:
    aws.ec2.Instance("mut-stranger-sg", ami="ami-x", instance_type="t3.micro",
                     subnet_id=APP_SUBNET, private_ip=at.app(53),
                     vpc_security_group_ids=["sg-0123456789abcdef0"],
                     metadata_options={"http_tokens": "required"})  # fmt: skip


def route_to_undeclared_nat(at: At) -> None:
    aws.ec2.Route("mut-nat-by-id", route_table_id=APP_RT, destination_cidr_block=at.lgwan,
                  nat_gateway_id="nat-0123456789abcdef0")  # fmt: skip


def route_to_undeclared_transit_gateway(at: At) -> None:
    aws.ec2.Route("mut-tgw-by-id", route_table_id=APP_RT, destination_cidr_block=at.lgwan,
                  transit_gateway_id="tgw-0123456789abcdef0")  # fmt: skip


def rule_on_undeclared_nacl(at: At) -> None:
    aws.ec2.NetworkAclRule("mut-nacl-by-id", network_acl_id="acl-0123456789abcdef0",
                           rule_number=5, egress=False, protocol="tcp", rule_action="allow",
                           cidr_block=at.lgwan, from_port=22, to_port=22)  # fmt: skip


def route_to_an_appliance_interface(at: At) -> None:
    aws.ec2.NetworkInterface("mut-appliance", subnet_id=APP_SUBNET, private_ips=[at.app(54)],
                             security_groups=["hosts-app-sg-id"])  # fmt: skip
    aws.ec2.Route("mut-via-appliance", route_table_id=APP_RT, destination_cidr_block=at.lgwan,
                  network_interface_id="mut-appliance-id")  # fmt: skip


def subnet_moved_to_undeclared_table(at: At) -> None:
    aws.ec2.RouteTableAssociation("mut-assoc-by-id", subnet_id=APP_SUBNET,
                                  route_table_id="rtb-0123456789abcdef0")  # fmt: skip


def tgw_route_to_undeclared_attachment(at: At) -> None:
    aws.ec2transitgateway.Route("mut-tgw-att-by-id", destination_cidr_block="10.99.0.0/16",
                                transit_gateway_attachment_id="tgw-attach-0123456789abcdef0",
                                transit_gateway_route_table_id="lgwan-vpc-side-id")  # fmt: skip


def tgw_connect_attachment(at: At) -> None:
    aws.ec2transitgateway.Connect("mut-tgw-connect", transit_gateway_id="fund-tgw-id",
                                  transport_attachment_id="fund-vpc-attachment-id")  # fmt: skip
    aws.ec2transitgateway.Route("mut-to-connect", destination_cidr_block="10.98.0.0/16",
                                transit_gateway_attachment_id="mut-tgw-connect-id",
                                transit_gateway_route_table_id="fund-vpc-side-id")  # fmt: skip


# --- the latent scan: every route that is not local, a line for its zone, or an endpoint ------
def peering_to_a_quiet_vpc(at: At) -> None:
    aws.ec2.Vpc("mut-quiet-vpc", cidr_block="172.28.0.0/16")
    aws.ec2.VpcPeeringConnection("mut-quiet-pcx", vpc_id=VPC, peer_vpc_id="mut-quiet-vpc-id")
    aws.ec2.Route("mut-quiet-route", route_table_id=APP_RT, destination_cidr_block="172.28.0.0/16",
                  vpc_peering_connection_id="mut-quiet-pcx-id")  # fmt: skip


def lgwan_prefix_through_the_fund_gateway(at: At) -> None:
    aws.ec2.Route("mut-lgwan-via-fund", route_table_id=APP_RT, destination_cidr_block=at.lgwan,
                  transit_gateway_id="fund-tgw-id")  # fmt: skip


def route_to_a_spare_vgw(at: At) -> None:
    aws.ec2.VpnGateway("mut-spare-vgw", vpc_id=VPC)
    aws.ec2.Route("mut-via-spare-vgw", route_table_id=APP_RT, destination_cidr_block="10.97.0.0/16",
                  gateway_id="mut-spare-vgw-id")  # fmt: skip


def tgw_line_side_wider_than_the_vpc(at: At) -> None:
    aws.ec2transitgateway.Route("mut-line-wide", destination_cidr_block="10.0.0.0/8",
                                transit_gateway_attachment_id="lgwan-vpc-attachment-id",
                                transit_gateway_route_table_id="lgwan-line-side-id")  # fmt: skip


def carrier_gateway_route(at: At) -> None:
    aws.ec2.Route("mut-carrier-route", route_table_id=APP_RT, destination_cidr_block="10.96.0.0/16",
                  carrier_gateway_id="cagw-0123456789abcdef0")  # fmt: skip


# --- a default route split into parts ---------------------------------------------------------
def split_default_to_the_lgwan_line(at: At) -> None:
    for i, half in enumerate(("0.0.0.0/1", "128.0.0.0/1")):
        aws.ec2.Route(f"mut-half-{i}", route_table_id=APP_RT, destination_cidr_block=half,
                      transit_gateway_id="lgwan-tgw-id")  # fmt: skip


def split_default_to_the_fund_line(at: At) -> None:
    for i, quarter in enumerate(("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2")):
        aws.ec2.Route(f"mut-quarter-{i}", route_table_id=INTAKE_RT, destination_cidr_block=quarter,
                      transit_gateway_id="fund-tgw-id")  # fmt: skip


def split_default_on_the_line_attachment(at: At) -> None:
    for i, half in enumerate(("0.0.0.0/1", "128.0.0.0/1")):
        aws.ec2transitgateway.Route(f"mut-tgw-half-{i}", destination_cidr_block=half,
                                    transit_gateway_attachment_id="fund-vpc-attachment-id",
                                    transit_gateway_route_table_id="fund-line-side-id")  # fmt: skip


# --- IPv6 and every address an interface has --------------------------------------------------
def ipv6_subnet_with_a_host(at: At) -> None:
    aws.ec2.Subnet("mut-v6-subnet", vpc_id=VPC, cidr_block="10.231.61.0/24"
                   if at.stack == "lab" else "10.80.61.0/24",
                   ipv6_cidr_block="2001:db8:1:1::/64",
                   assign_ipv6_address_on_creation=True)  # fmt: skip
    aws.ec2.Instance("mut-v6-host", ami="ami-x", instance_type="t3.micro",
                     subnet_id="mut-v6-subnet-id", vpc_security_group_ids=["hosts-app-sg-id"],
                     metadata_options={"http_tokens": "required"})  # fmt: skip


def ipv6_default_to_the_line(at: At) -> None:
    aws.ec2.Route("mut-v6-default", route_table_id=APP_RT, destination_ipv6_cidr_block="::/0",
                  transit_gateway_id="lgwan-tgw-id")  # fmt: skip


def _lgwan_ssh_group(name: str) -> None:
    aws.ec2.SecurityGroup(name, vpc_id=VPC, ingress=[{"protocol": "tcp", "from_port": 22,
                          "to_port": 22, "cidr_blocks": [LGWAN_OF[name]]}])  # fmt: skip


LGWAN_OF: dict[str, str] = {}


def interface_numbered_by_aws(at: At) -> None:
    LGWAN_OF["mut-ssh-from-lgwan"] = at.lgwan
    _lgwan_ssh_group("mut-ssh-from-lgwan")
    aws.ec2.NetworkInterface("mut-counted-eni", subnet_id=APP_SUBNET, private_ips_count=2,
                             security_groups=["mut-ssh-from-lgwan-id"])  # fmt: skip


def instance_numbered_by_aws(at: At) -> None:
    LGWAN_OF["mut-ssh-from-lgwan-2"] = at.lgwan
    _lgwan_ssh_group("mut-ssh-from-lgwan-2")
    aws.ec2.Instance("mut-unnumbered", ami="ami-x", instance_type="t3.micro",
                     subnet_id=APP_SUBNET, vpc_security_group_ids=["mut-ssh-from-lgwan-2-id"],
                     metadata_options={"http_tokens": "required"})  # fmt: skip


def eni_with_an_ipv6_address(at: At) -> None:
    aws.ec2.Subnet("mut-v6-subnet-2", vpc_id=VPC, cidr_block=at.app(0).rsplit(".", 2)[0]
                   + ".62.0/24", ipv6_cidr_block="2001:db8:1:2::/64")  # fmt: skip
    aws.ec2.NetworkInterface("mut-v6-eni", subnet_id="mut-v6-subnet-2-id",
                             ipv6_addresses=["2001:db8:1:2::10"],
                             security_groups=["hosts-app-sg-id"])  # fmt: skip


# --- public addresses and foreign compute -----------------------------------------------------
def eip_association_alone(at: At) -> None:
    aws.ec2.EipAssociation("mut-eip-assoc", allocation_id="eipalloc-0123456789abcdef0",
                           instance_id="hosts-app-1-id")  # fmt: skip


def lambda_in_the_app_subnet(at: At) -> None:
    aws.lambda_.Function("mut-lambda", role="arn:aws:iam::123456789012:role/x",
                         runtime="python3.11", handler="h.main", s3_bucket="b", s3_key="k",
                         vpc_config={"subnet_ids": [APP_SUBNET],
                                     "security_group_ids": ["hosts-app-sg-id"]})  # fmt: skip


def client_vpn_into_mgmt(at: At) -> None:
    aws.ec2clientvpn.Endpoint("mut-cvpn", client_cidr_block="10.100.0.0/22",
                              server_certificate_arn="arn:aws:acm:ap-northeast-1:1:certificate/x",
                              authentication_options=[{"type": "certificate-authentication",
                              "root_certificate_chain_arn": "arn:aws:acm:x"}],
                              connection_log_options={"enabled": False})  # fmt: skip
    aws.ec2clientvpn.NetworkAssociation("mut-cvpn-assoc", client_vpn_endpoint_id="mut-cvpn-id",
                                        subnet_id="segment-mgmt-ap-northeast-1a-id")  # fmt: skip


@dataclass
class Mutation:
    name: str
    verdict: str
    offender: str  # text the counterexample must contain
    resources: Callable[[At], None] | None = None
    config: Callable[[dict[str, Any]], None] | None = None
    status: str = "VIOLATED"
    stack: str = "lab"


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
    Mutation("interface endpoint to a PrivateLink service", "closed", "mut-partner",
             partner_interface_endpoint, status="UNKNOWN"),
    Mutation("interface endpoint to a partner service", "closed", "mut-marketplace",
             marketplace_interface_endpoint, status="UNKNOWN", stack="omuta-prod"),
    Mutation("Gateway Load Balancer endpoint", "closed", "mut-gwlbe", gwlb_endpoint,
             status="UNKNOWN"),
    Mutation("default route through a GWLB endpoint", "closed", "mut-via-gwlbe",
             gwlb_endpoint_as_default_route, stack="omuta-prod"),
    Mutation("gateway endpoint to another region's S3", "closed", "mut-s3-virginia",
             s3_of_another_region),
    Mutation("interface endpoint to another region's KMS", "closed", "mut-kms-virginia",
             interface_endpoint_of_another_region, status="UNKNOWN", stack="omuta-prod"),
    Mutation("an AWS interface endpoint as a default route's target", "closed", "mut-via-kms",
             aws_endpoint_as_a_route_target),
    Mutation("route to a prefix list the program does not declare", "closed", "pl-0abc1234",
             route_to_undeclared_prefix_list),
    Mutation("security group rule on an undeclared prefix list", "closed", "mut-sg-pl",
             sg_rule_on_undeclared_prefix_list, status="UNKNOWN", stack="omuta-prod"),
    Mutation("security group rule on an undeclared group", "policy", "mut-sg-ref",
             sg_rule_on_undeclared_group, status="UNKNOWN"),
    Mutation("instance in an undeclared security group", "closed", "mut-stranger-sg",
             instance_in_undeclared_group, status="UNKNOWN", stack="omuta-prod"),
    Mutation("route to a NAT gateway by a bare id", "closed", "nat-0123456789abcdef0",
             route_to_undeclared_nat),
    Mutation("route to a transit gateway by a bare id", "closed", "mut-tgw-by-id",
             route_to_undeclared_transit_gateway, stack="omuta-prod"),
    Mutation("NACL rule on an undeclared NACL", "separated", "mut-nacl-by-id",
             rule_on_undeclared_nacl, status="UNKNOWN"),
    Mutation("route to an appliance's network interface", "closed", "mut-via-appliance",
             route_to_an_appliance_interface, stack="omuta-prod"),
    Mutation("subnet moved to an undeclared route table", "policy", "mut-assoc-by-id",
             subnet_moved_to_undeclared_table, status="UNKNOWN"),
    Mutation("transit gateway route to an undeclared attachment", "separated",
             "mut-tgw-att-by-id", tgw_route_to_undeclared_attachment, status="UNKNOWN",
             stack="omuta-prod"),
    Mutation("transit gateway Connect attachment", "closed", "mut-tgw-connect",
             tgw_connect_attachment, status="UNKNOWN"),
    Mutation("peering to a VPC without an internet gateway", "closed", "mut-quiet-route",
             peering_to_a_quiet_vpc, stack="omuta-prod"),
    Mutation("LGWAN's prefix through the fund's gateway", "closed", "mut-lgwan-via-fund",
             lgwan_prefix_through_the_fund_gateway),
    Mutation("route to a VGW that carries no line", "closed", "mut-via-spare-vgw",
             route_to_a_spare_vgw, stack="omuta-prod"),
    Mutation("line side addresses more than the VPC", "closed", "mut-line-wide",
             tgw_line_side_wider_than_the_vpc, stack="omuta-prod"),
    Mutation("route to a carrier gateway", "closed", "mut-carrier-route", carrier_gateway_route),
    Mutation("default route split in halves to the LGWAN line", "closed", "mut-half-1",
             split_default_to_the_lgwan_line),
    Mutation("default route split in quarters to the fund's line", "closed", "mut-quarter-2",
             split_default_to_the_fund_line, stack="omuta-prod"),
    Mutation("transit gateway default split in halves", "closed", "mut-tgw-half-0",
             split_default_on_the_line_attachment),
    Mutation("IPv6 subnet numbering its hosts", "closed", "mut-v6-host", ipv6_subnet_with_a_host),
    Mutation("IPv6 default route to the line", "closed", "mut-v6-default",
             ipv6_default_to_the_line, stack="omuta-prod"),
    Mutation("interface AWS numbers (private_ips_count)", "policy", "mut-ssh-from-lgwan",
             interface_numbered_by_aws),
    Mutation("instance AWS numbers", "policy", "mut-ssh-from-lgwan-2", instance_numbered_by_aws,
             stack="omuta-prod"),
    Mutation("an interface's IPv6 address", "closed", "mut-v6-eni", eni_with_an_ipv6_address,
             stack="omuta-prod"),
    Mutation("EIP association on its own", "closed", "mut-eip-assoc", eip_association_alone),
    Mutation("EIP association on its own (production)", "closed", "mut-eip-assoc",
             eip_association_alone, stack="omuta-prod"),
    Mutation("Lambda function in the app subnet", "closed", "mut-lambda",
             lambda_in_the_app_subnet, status="UNKNOWN"),
    Mutation("Client VPN into the management subnet", "closed", "mut-cvpn",
             client_vpn_into_mgmt, status="UNKNOWN", stack="omuta-prod"),
]  # fmt: skip


def _run_mutation(m: Mutation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    original_config: StackConfig = load_stack(m.stack, REPO)
    stack_file = REPO / f"Pulumi.{m.stack}.yaml"
    if m.config is not None:
        document = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
        m.config(document["config"])
        stack_file = tmp_path / stack_file.name
        stack_file.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    if m.resources is not None:
        original_run = infra.program.run
        extra, at = m.resources, AT[m.stack]

        def mutated(config: StackConfig) -> None:
            original_run(config)
            extra(at)

        monkeypatch.setattr(infra.program, "run", mutated)
    ev = evaluate(stack_file)
    # Always judged against the policy the privacy council approved: the original one.
    return prove(model_of(ev), original_config)


@pytest.mark.parametrize("stack", sorted(AT))
def test_the_correct_stack_holds(stack: str) -> None:
    proof = prove(model_of(evaluate(REPO / f"Pulumi.{stack}.yaml")), load_stack(stack, REPO))
    assert [v.status for v in proof.verdicts] == [HOLDS, HOLDS, HOLDS]


@pytest.mark.parametrize("m", MUTATIONS, ids=[f"{m.stack}: {m.name}" for m in MUTATIONS])
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
