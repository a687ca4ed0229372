"""Lab apply: the Pulumi program itself creates the lab stack's resources in the moto server.

No second, hand-written copy of the environment: the program runs under a mocks class whose
`new_resource` makes the real API call (boto3 against the lab's AWS endpoint) and hands back the
real ID and state, so every dependent resource gets real IDs too. Types the lab deliberately does
not create are listed in SKIPPED with the reason; any other type fails the apply, so a resource
added to the program is never silently left out of the lab.

Idempotent per moto process: moto keeps its state in memory, so a record of what was created
(and under which moto process) is kept in the lab's state directory and reused while that
process lives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pulumi

from infra.config import StackConfig
from infra.offline import engine_config, run_program

# The lab router stands in for the lines; they have no counterpart in moto's API that the lab
# could use, and creating half of them would only mislead.
LINE = "a line: the lab router stands in for LGWAN and the fund's line"
SKIPPED: dict[str, str] = {
    "aws:ec2transitgateway/transitGateway:TransitGateway": LINE,
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": LINE,
    "aws:ec2transitgateway/routeTable:RouteTable": LINE,
    "aws:ec2transitgateway/routeTableAssociation:RouteTableAssociation": LINE,
    "aws:ec2transitgateway/route:Route": LINE,
    "aws:ec2/customerGateway:CustomerGateway": LINE,
    "aws:ec2/vpnConnection:VpnConnection": LINE,
    "aws:directconnect/gateway:Gateway": LINE,
    "aws:directconnect/gatewayAssociation:GatewayAssociation": LINE,
    "aws:directconnect/transitVirtualInterface:TransitVirtualInterface": LINE,
    "aws:ec2/route:Route": "a route to a line's transit gateway, which the lab does not create",
    "pulumi:providers:aws": "a provider, not a resource",
}
LAB_IMAGE_NAME = "debian-12-amd64-claims-dc-lab"


class UnsupportedTypeError(RuntimeError):
    """The program declares a type the lab apply neither creates nor knowingly skips."""


@dataclass
class ApplyRecord:
    created: dict[str, str] = field(default_factory=dict)  # "type name" -> id
    skipped: dict[str, str] = field(default_factory=dict)  # "type name" -> reason
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The program's stack outputs, as `pulumi stack output --json` prints them.
    stack_outputs: dict[str, Any] = field(default_factory=dict)


def _tags(inputs: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    tags = inputs.get("tags") or {}
    if not tags:
        return []
    return [{"ResourceType": resource_type,
             "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]  # fmt: skip


# Request context that moto does not fill in: a Deny conditioned on one of them always applies.
MOTO_UNSUPPLIED_KEYS = ("aws:sourcevpce", "aws:securetransport", "aws:principalarn")


def unsupplied_condition_keys(policy: str) -> list[str]:
    found = set()
    for st in json.loads(policy).get("Statement", []):
        if st.get("Effect") != "Deny":
            continue
        for operator in (st.get("Condition") or {}).values():
            found |= {k for k in operator if k.lower() in MOTO_UNSUPPLIED_KEYS}
    return sorted(found)


class MotoApplyMocks(pulumi.runtime.Mocks):
    def __init__(
        self, session: boto3.session.Session, endpoint_url: str, verify: str | bool, region: str
    ) -> None:
        self.region = region
        self._clients: dict[str, Any] = {}
        self._session, self._endpoint, self._verify = session, endpoint_url, verify
        self.record = ApplyRecord()
        self.handlers: dict[str, Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]] = {
            "aws:kms/key:Key": self._kms_key,
            "aws:kms/alias:Alias": self._kms_alias,
            "aws:iam/role:Role": self._iam_role,
            "aws:iam/rolePolicy:RolePolicy": self._iam_role_policy,
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment": self._iam_attachment,
            "aws:iam/instanceProfile:InstanceProfile": self._iam_profile,
            "aws:ec2/vpc:Vpc": self._vpc,
            "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": self._default_sg,
            "aws:ec2/subnet:Subnet": self._subnet,
            "aws:ec2/routeTable:RouteTable": self._route_table,
            "aws:ec2/routeTableAssociation:RouteTableAssociation": self._rt_association,
            "aws:ec2/networkAcl:NetworkAcl": self._nacl,
            "aws:ec2/networkAclRule:NetworkAclRule": self._nacl_rule,
            "aws:ec2/securityGroup:SecurityGroup": self._security_group,
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": self._sg_ingress,
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": self._sg_egress,
            "aws:ec2/vpcEndpoint:VpcEndpoint": self._vpc_endpoint,
            "aws:ec2/instance:Instance": self._instance,
            "aws:ec2/flowLog:FlowLog": self._flow_log,
            "aws:cloudwatch/logGroup:LogGroup": self._log_group,
            "aws:cloudtrail/trail:Trail": self._trail,
            "aws:s3/bucket:Bucket": self._bucket,
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": self._s3_pab,
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls": self._s3_ownership,
            "aws:s3/bucketVersioning:BucketVersioning": self._s3_versioning,
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": self._s3_lock,
            "aws:s3/bucketServerSideEncryptionConfiguration:"
            "BucketServerSideEncryptionConfiguration": self._s3_encryption,
            "aws:s3/bucketPolicy:BucketPolicy": self._s3_policy,
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": self._s3_lifecycle,
        }

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, endpoint_url=self._endpoint, verify=self._verify, region_name=self.region
            )
        return self._clients[service]

    # --- the Mocks interface -----------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        key = f"{args.typ} {args.name}"
        inputs = dict(args.inputs)
        if args.typ.startswith("claims-dc:"):
            return f"{args.name}-component", {}
        if args.typ in SKIPPED:
            self.record.skipped[key] = SKIPPED[args.typ]
            return f"{args.name}-not-in-lab", inputs
        handler = self.handlers.get(args.typ)
        if handler is None:
            raise UnsupportedTypeError(
                f"{key}: the lab apply cannot create {args.typ}; teach lab/apply.py to "
                "create it or add it to SKIPPED with the reason"
            )
        resource_id, outputs = handler(args.name, inputs)
        self.record.created[key] = resource_id
        self.record.outputs[key] = outputs
        return resource_id, {**inputs, **outputs}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":  # noqa: S105
            ident = self.client("sts").get_caller_identity()
            return {"accountId": ident["Account"], "arn": ident["Arn"], "userId": ident["UserId"],
                    "id": ident["Account"]}, []  # fmt: skip
        if args.token == "aws:ec2/getAmi:getAmi":  # noqa: S105
            return {"id": self._lab_image(), "name": LAB_IMAGE_NAME}, []
        if args.token == "aws:ec2/getPrefixList:getPrefixList":  # noqa: S105
            name = args.args.get("name")
            found = self.client("ec2").describe_prefix_lists(
                Filters=[{"Name": "prefix-list-name", "Values": [name]}]
            )["PrefixLists"]
            # moto names the list but holds no CIDRs for it: the lab gets no S3 NACL rules.
            return {"id": found[0]["PrefixListId"], "prefixListId": found[0]["PrefixListId"],
                    "name": name, "cidrBlocks": found[0].get("Cidrs", [])}, []  # fmt: skip
        raise UnsupportedTypeError(f"invoke {args.token} is not known to the lab apply")

    # --- handlers: each makes the real call and returns (id, computed outputs) ---------------

    def _kms_key(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        meta = self.client("kms").create_key(
            Description=i.get("description", name), Policy=i.get("policy"),
            Tags=[{"TagKey": k, "TagValue": v} for k, v in (i.get("tags") or {}).items()],
        )["KeyMetadata"]  # fmt: skip
        if i.get("enableKeyRotation"):
            self.client("kms").enable_key_rotation(KeyId=meta["KeyId"])
        return meta["KeyId"], {"arn": meta["Arn"], "keyId": meta["KeyId"]}

    def _kms_alias(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.client("kms").create_alias(AliasName=i["name"], TargetKeyId=i["targetKeyId"])
        return str(i["name"]), {}

    def _iam_role(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        role_name = i.get("name") or name
        role = self.client("iam").create_role(
            RoleName=role_name, AssumeRolePolicyDocument=i["assumeRolePolicy"],
            MaxSessionDuration=int(i.get("maxSessionDuration") or 3600),
            Tags=[{"Key": k, "Value": v} for k, v in (i.get("tags") or {}).items()],
        )["Role"]  # fmt: skip
        return role_name, {"arn": role["Arn"], "name": role_name}

    def _iam_role_policy(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.client("iam").put_role_policy(
            RoleName=i["role"], PolicyName=name, PolicyDocument=i["policy"]
        )
        return f"{i['role']}:{name}", {"name": name}

    def _iam_attachment(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.client("iam").attach_role_policy(RoleName=i["role"], PolicyArn=i["policyArn"])
        return f"{i['role']}/{i['policyArn']}", {}

    def _iam_profile(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = self.client("iam")
        profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=i["role"])
        return name, {"arn": profile["Arn"], "name": name}

    def _vpc(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock=i["cidrBlock"],
                             TagSpecifications=_tags(i, "vpc"))["Vpc"]  # fmt: skip
        for attr in ("enableDnsSupport", "enableDnsHostnames"):
            if attr in i:
                ec2.modify_vpc_attribute(VpcId=vpc["VpcId"], **{attr[0].upper() + attr[1:]: {
                    "Value": bool(i[attr])}})  # fmt: skip
        return vpc["VpcId"], {"arn": f"arn:aws:ec2:{self.region}::vpc/{vpc['VpcId']}"}

    def _strip_group(self, group_id: str) -> None:
        ec2 = self.client("ec2")
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        if group["IpPermissions"]:
            ec2.revoke_security_group_ingress(
                GroupId=group_id, IpPermissions=group["IpPermissions"]
            )
        if group["IpPermissionsEgress"]:
            ec2.revoke_security_group_egress(
                GroupId=group_id, IpPermissions=group["IpPermissionsEgress"]
            )

    def _default_sg(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        groups = self.client("ec2").describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [i["vpcId"]]},
            {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]  # fmt: skip
        group_id = groups[0]["GroupId"]
        self._strip_group(group_id)  # the program declares it with no rules at all
        return group_id, {}

    def _subnet(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        subnet = self.client("ec2").create_subnet(
            VpcId=i["vpcId"], CidrBlock=i["cidrBlock"], AvailabilityZone=i["availabilityZone"],
            TagSpecifications=_tags(i, "subnet"))["Subnet"]  # fmt: skip
        return subnet["SubnetId"], {}

    def _route_table(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        table = self.client("ec2").create_route_table(
            VpcId=i["vpcId"], TagSpecifications=_tags(i, "route-table")
        )["RouteTable"]
        return table["RouteTableId"], {}

    def _rt_association(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        assoc = self.client("ec2").associate_route_table(
            SubnetId=i["subnetId"], RouteTableId=i["routeTableId"]
        )
        return assoc["AssociationId"], {}

    def _nacl(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.client("ec2")
        acl = ec2.create_network_acl(VpcId=i["vpcId"], TagSpecifications=_tags(i, "network-acl"))[
            "NetworkAcl"
        ]
        for subnet in i.get("subnetIds") or []:
            current = ec2.describe_network_acls(
                Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
            )["NetworkAcls"]
            for assoc in (a for c in current for a in c["Associations"] if a["SubnetId"] == subnet):
                ec2.replace_network_acl_association(
                    AssociationId=assoc["NetworkAclAssociationId"], NetworkAclId=acl["NetworkAclId"]
                )
        return acl["NetworkAclId"], {}

    def _nacl_rule(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.client("ec2").create_network_acl_entry(
            NetworkAclId=i["networkAclId"], RuleNumber=int(i["ruleNumber"]),
            Protocol=str(i["protocol"]), RuleAction=i["ruleAction"], Egress=bool(i["egress"]),
            CidrBlock=i["cidrBlock"],
            PortRange={"From": int(i["fromPort"]), "To": int(i["toPort"])},
        )  # fmt: skip
        return f"{i['networkAclId']}-{int(i['ruleNumber'])}-{bool(i['egress'])}", {}

    def _security_group(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        group_id = self.client("ec2").create_security_group(
            GroupName=name, Description=i.get("description") or name, VpcId=i["vpcId"],
            TagSpecifications=_tags(i, "security-group"))["GroupId"]  # fmt: skip
        # AWS adds an allow-all egress rule to every new group; the program declares none.
        self._strip_group(group_id)
        return group_id, {}

    def _permission(self, i: dict[str, Any]) -> dict[str, Any]:
        perm: dict[str, Any] = {"IpProtocol": i["ipProtocol"], "FromPort": int(i["fromPort"]),
                                "ToPort": int(i["toPort"])}  # fmt: skip
        if i.get("cidrIpv4"):
            perm["IpRanges"] = [{"CidrIp": i["cidrIpv4"], "Description": i.get("description", "")}]
        if i.get("prefixListId"):
            perm["PrefixListIds"] = [{"PrefixListId": i["prefixListId"]}]
        return perm

    def _sg_ingress(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        out = self.client("ec2").authorize_security_group_ingress(
            GroupId=i["securityGroupId"], IpPermissions=[self._permission(i)]
        )
        return str(out["SecurityGroupRules"][0]["SecurityGroupRuleId"]), {}

    def _sg_egress(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        out = self.client("ec2").authorize_security_group_egress(
            GroupId=i["securityGroupId"], IpPermissions=[self._permission(i)]
        )
        return str(out["SecurityGroupRules"][0]["SecurityGroupRuleId"]), {}

    def _vpc_endpoint(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.client("ec2")
        kwargs: dict[str, Any] = {"VpcId": i["vpcId"], "ServiceName": i["serviceName"],
                                  "VpcEndpointType": i["vpcEndpointType"]}  # fmt: skip
        if i.get("routeTableIds"):
            kwargs["RouteTableIds"] = i["routeTableIds"]
        if i.get("subnetIds"):
            kwargs["SubnetIds"] = i["subnetIds"]
        if i.get("securityGroupIds"):
            kwargs["SecurityGroupIds"] = i["securityGroupIds"]
        if "privateDnsEnabled" in i:
            kwargs["PrivateDnsEnabled"] = bool(i["privateDnsEnabled"])
        ep = ec2.create_vpc_endpoint(**kwargs)["VpcEndpoint"]
        outputs: dict[str, Any] = {"dnsEntries": [
            {"dnsName": d.get("DnsName"), "hostedZoneId": d.get("HostedZoneId")}
            for d in ep.get("DnsEntries") or []]}  # fmt: skip
        if i["vpcEndpointType"] == "Gateway":
            lists = ec2.describe_prefix_lists(
                Filters=[{"Name": "prefix-list-name", "Values": [i["serviceName"]]}]
            )["PrefixLists"]
            outputs["prefixListId"] = lists[0]["PrefixListId"]
        return ep["VpcEndpointId"], outputs

    def _lab_image(self) -> str:
        ec2 = self.client("ec2")
        found = ec2.describe_images(Filters=[{"Name": "name", "Values": [LAB_IMAGE_NAME]}])
        if found["Images"]:
            return str(found["Images"][0]["ImageId"])
        return str(
            ec2.register_image(
                Name=LAB_IMAGE_NAME, Architecture="x86_64", RootDeviceName="/dev/xvda"
            )["ImageId"]
        )

    def _instance(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        meta = i.get("metadataOptions") or {}
        root = i.get("rootBlockDevice") or {}
        ebs: dict[str, Any] = {"Encrypted": bool(root.get("encrypted")),
                               "VolumeSize": int(root.get("volumeSize") or 8),
                               "VolumeType": root.get("volumeType") or "gp3"}  # fmt: skip
        if root.get("kmsKeyId"):
            ebs["KmsKeyId"] = root["kmsKeyId"]
        instance = self.client("ec2").run_instances(
            ImageId=i["ami"], MinCount=1, MaxCount=1, InstanceType=i["instanceType"],
            SubnetId=i["subnetId"], PrivateIpAddress=i["privateIp"],
            SecurityGroupIds=i.get("vpcSecurityGroupIds") or [],
            IamInstanceProfile={"Name": i["iamInstanceProfile"]},
            MetadataOptions={"HttpTokens": meta.get("httpTokens", "optional"),
                             "HttpPutResponseHopLimit": int(meta.get("httpPutResponseHopLimit", 1)),
                             "HttpEndpoint": meta.get("httpEndpoint", "enabled")},
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": ebs}],
            UserData=i.get("userData", ""),
            DisableApiTermination=bool(i.get("disableApiTermination")),
            TagSpecifications=_tags(i, "instance"),
        )["Instances"][0]  # fmt: skip
        return instance["InstanceId"], {"privateIp": instance["PrivateIpAddress"]}

    def _log_group(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        logs = self.client("logs")
        kwargs: dict[str, Any] = {"logGroupName": i["name"]}
        if i.get("kmsKeyId"):
            kwargs["kmsKeyId"] = i["kmsKeyId"]
        logs.create_log_group(**kwargs)
        logs.put_retention_policy(logGroupName=i["name"], retentionInDays=int(i["retentionInDays"]))
        arn = f"arn:aws:logs:{self.region}:{self._account()}:log-group:{i['name']}"
        return str(i["name"]), {"arn": arn}

    def _flow_log(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        out = self.client("ec2").create_flow_logs(
            ResourceIds=[i["vpcId"]], ResourceType="VPC", TrafficType=i["trafficType"],
            LogDestinationType=i["logDestinationType"], LogDestination=i["logDestination"],
            DeliverLogsPermissionArn=i["iamRoleArn"])  # fmt: skip
        if out.get("Unsuccessful"):
            raise RuntimeError(f"flow log {name}: {out['Unsuccessful']}")
        return str(out["FlowLogIds"][0]), {}

    def _trail(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        trail = self.client("cloudtrail").create_trail(
            Name=i["name"], S3BucketName=i["s3BucketName"],
            EnableLogFileValidation=bool(i.get("enableLogFileValidation")),
            IsMultiRegionTrail=bool(i.get("isMultiRegionTrail")),
            IncludeGlobalServiceEvents=bool(i.get("includeGlobalServiceEvents")),
            KmsKeyId=i.get("kmsKeyId"))  # fmt: skip
        return str(trail["TrailARN"]), {"arn": trail["TrailARN"]}

    def _bucket(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bucket = i["bucket"]
        self.client("s3").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.region},
            ObjectLockEnabledForBucket=bool(i.get("objectLockEnabled")))  # fmt: skip
        return str(bucket), {"arn": f"arn:aws:s3:::{bucket}", "bucket": bucket}

    def _s3_pab(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        s3 = self.client("s3")
        s3.put_public_access_block(Bucket=i["bucket"], PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(i.get("blockPublicAcls")),
            "BlockPublicPolicy": bool(i.get("blockPublicPolicy")),
            "IgnorePublicAcls": bool(i.get("ignorePublicAcls")),
            "RestrictPublicBuckets": bool(i.get("restrictPublicBuckets"))})  # fmt: skip
        return str(i["bucket"]), {}

    def _s3_ownership(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.client("s3").put_bucket_ownership_controls(Bucket=i["bucket"], OwnershipControls={
            "Rules": [{"ObjectOwnership": i["rule"]["objectOwnership"]}]})  # fmt: skip
        return str(i["bucket"]), {}

    def _s3_versioning(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.client("s3").put_bucket_versioning(Bucket=i["bucket"], VersioningConfiguration={
            "Status": i["versioningConfiguration"]["status"]})  # fmt: skip
        return str(i["bucket"]), {}

    def _s3_lock(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        retention = i["rule"]["defaultRetention"]
        self.client("s3").put_object_lock_configuration(Bucket=i["bucket"],
            ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {
                "Mode": retention["mode"], "Days": int(retention["days"])}}})  # fmt: skip
        return str(i["bucket"]), {}

    def _s3_encryption(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rules = [{"ApplyServerSideEncryptionByDefault": {
                      "SSEAlgorithm": r["applyServerSideEncryptionByDefault"]["sseAlgorithm"],
                      "KMSMasterKeyID": r["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]},
                  "BucketKeyEnabled": bool(r.get("bucketKeyEnabled"))}
                 for r in i["rules"]]  # fmt: skip
        self.client("s3").put_bucket_encryption(
            Bucket=i["bucket"], ServerSideEncryptionConfiguration={"Rules": rules}
        )
        return str(i["bucket"]), {}

    def _s3_policy(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        unsupplied = unsupplied_condition_keys(i["policy"])
        if unsupplied:
            # moto evaluates bucket policies but supplies none of these keys, so each such Deny
            # would refuse every request, the data center's included. Recorded, not hidden.
            self.record.skipped[f"aws:s3/bucketPolicy:BucketPolicy {name}"] = (
                f"a Deny conditioned on {', '.join(unsupplied)}, which moto never supplies; in "
                "the lab the router and host firewalls admit only the endpoint host to the AWS "
                "API and nginx terminates TLS there (the policy itself is checked by the "
                "policy pack and the unit tests)"
            )
            return f"{i['bucket']}-policy-not-in-lab", {}
        self.client("s3").put_bucket_policy(Bucket=i["bucket"], Policy=i["policy"])
        return str(i["bucket"]), {}

    def _s3_lifecycle(self, name: str, i: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rules = []
        for r in i["rules"]:
            rule: dict[str, Any] = {"ID": r["id"], "Status": r["status"], "Filter": {}}
            if r.get("transitions"):
                rule["Transitions"] = [{"Days": int(t["days"]), "StorageClass": t["storageClass"]}
                                       for t in r["transitions"]]  # fmt: skip
            if r.get("noncurrentVersionTransitions"):
                rule["NoncurrentVersionTransitions"] = [
                    {"NoncurrentDays": int(t["noncurrentDays"]), "StorageClass": t["storageClass"]}
                    for t in r["noncurrentVersionTransitions"]]  # fmt: skip
            if r.get("noncurrentVersionExpiration"):
                rule["NoncurrentVersionExpiration"] = {
                    "NoncurrentDays": int(r["noncurrentVersionExpiration"]["noncurrentDays"])
                }
            if r.get("abortIncompleteMultipartUpload"):
                rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(
                    r["abortIncompleteMultipartUpload"]["daysAfterInitiation"])}  # fmt: skip
            rules.append(rule)
        self.client("s3").put_bucket_lifecycle_configuration(
            Bucket=i["bucket"], LifecycleConfiguration={"Rules": rules}
        )
        return str(i["bucket"]), {}

    def _account(self) -> str:
        return str(self.client("sts").get_caller_identity()["Account"])


def apply(
    stack_file: Path, endpoint_url: str, verify: str | bool
) -> tuple[StackConfig, ApplyRecord]:
    """Run the program for `stack_file`, creating its resources at `endpoint_url`."""
    region = engine_config(stack_file).get("aws:region", "")
    # The lab's API accepts any credentials; these are placeholders, not secrets.
    session = boto3.session.Session(
        aws_access_key_id="lab",
        aws_secret_access_key="lab",  # noqa: S106
        region_name=region,
    )
    mocks = MotoApplyMocks(session, endpoint_url, verify, region)
    config = run_program(stack_file, mocks, exports=mocks.record.stack_outputs)
    return config, mocks.record


def apply_once(
    stack_file: Path, endpoint_url: str, verify: str | bool, record_path: Path, moto_pid: int
) -> tuple[ApplyRecord, bool]:
    """Apply unless this moto process already holds the stack; returns (record, applied now)."""
    if record_path.exists():
        saved = json.loads(record_path.read_text())
        if saved.get("moto_pid") == moto_pid:
            record = ApplyRecord(saved["created"], saved["skipped"], saved["outputs"],
                                 saved.get("stack_outputs") or {})  # fmt: skip
            return record, False
    _, record = apply(stack_file, endpoint_url, verify)
    record_path.write_text(json.dumps({"moto_pid": moto_pid, "created": record.created,
                                       "skipped": record.skipped, "outputs": record.outputs,
                                       "stack_outputs": record.stack_outputs},
                                      indent=2, default=str) + "\n")  # fmt: skip
    return record, True
