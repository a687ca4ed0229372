"""claims-dc state: the vendor's Pulumi state backend and secrets key, made once.

Pulumi's self-managed backend must exist before `pulumi login`, so it cannot be declared by
the stacks it serves. This makes it, idempotently, with boto3:

- a KMS key (automatic rotation on) under an alias, for the `awskms` secrets provider of every
  stack and for the bucket's encryption;
- an S3 bucket in Tokyo or Osaka: versioning on (a bad `pulumi up` can be undone from an older
  checkpoint), SSE-KMS with that key by default, every public access blocked, owner-enforced
  object ownership, and a policy that refuses requests without TLS.

It then prints the two commands that use them. `check` reads the same settings back and exits
1 if any is missing, without changing anything.

exit codes: 0 ok; 1 a setting missing (check) or an AWS failure; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.config import ALLOWED_REGIONS
from ops.cli import run_tool

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
ALIAS = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")
TIMEOUTS = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3})


class UsageError(Exception):
    pass


@dataclass
class BackendState:
    bucket: str
    region: str
    key_alias: str
    key_arn: str = ""
    problems: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def backend_url(self) -> str:
        return f"s3://{self.bucket}?region={self.region}&awssdk=v2"

    @property
    def secrets_provider(self) -> str:
        return f"awskms://{self.key_alias}?region={self.region}"


def _tls_only_policy(bucket: str) -> str:
    arn = f"arn:aws:s3:::{bucket}"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyWithoutTLS", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })  # fmt: skip


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _key(kms: Any, state: BackendState, create: bool) -> None:
    try:
        meta = kms.describe_key(KeyId=state.key_alias)["KeyMetadata"]
    except ClientError as e:
        if _code(e) != "NotFoundException":
            raise
        if not create:
            state.problems.append(f"KMS alias {state.key_alias} does not exist")
            return
        meta = kms.create_key(
            Description="claims-dc: Pulumi state and stack secrets",
            KeyUsage="ENCRYPT_DECRYPT",
            Tags=[{"TagKey": "claims-dc", "TagValue": "pulumi-state"}],
        )["KeyMetadata"]
        kms.create_alias(AliasName=state.key_alias, TargetKeyId=meta["KeyId"])
        state.changed.append(f"created KMS key {meta['Arn']} as {state.key_alias}")
    state.key_arn = str(meta["Arn"])
    if not kms.get_key_rotation_status(KeyId=meta["KeyId"])["KeyRotationEnabled"]:
        if create:
            kms.enable_key_rotation(KeyId=meta["KeyId"])
            state.changed.append("turned on the key's automatic rotation")
        else:
            state.problems.append(f"{state.key_alias}: automatic key rotation is off")


def _bucket(s3: Any, state: BackendState, create: bool) -> None:
    try:
        s3.head_bucket(Bucket=state.bucket)
    except ClientError as e:
        if _code(e) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        if not create:
            state.problems.append(f"bucket {state.bucket} does not exist")
            return
        s3.create_bucket(
            Bucket=state.bucket,
            CreateBucketConfiguration={"LocationConstraint": state.region},
            ObjectOwnership="BucketOwnerEnforced",
        )
        state.changed.append(f"created bucket {state.bucket} in {state.region}")
    where = s3.get_bucket_location(Bucket=state.bucket).get("LocationConstraint")
    if where != state.region:
        state.problems.append(f"bucket {state.bucket} is in {where}, not {state.region}")
        return
    want: dict[str, tuple[Any, Any, str]] = {
        "versioning": (
            lambda: s3.get_bucket_versioning(Bucket=state.bucket).get("Status") == "Enabled",
            lambda: s3.put_bucket_versioning(
                Bucket=state.bucket, VersioningConfiguration={"Status": "Enabled"}),
            "versioning is off",
        ),
        "encryption": (
            lambda: _encrypted_with(s3, state),
            lambda: s3.put_bucket_encryption(Bucket=state.bucket,
                ServerSideEncryptionConfiguration={"Rules": [{
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": state.key_arn},
                    "BucketKeyEnabled": True}]}),
            "default encryption is not SSE-KMS with the state key",
        ),
        "public access block": (
            lambda: _public_access_blocked(s3, state.bucket),
            lambda: s3.put_public_access_block(Bucket=state.bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True, "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True, "RestrictPublicBuckets": True}),
            "public access is not blocked",
        ),
        "TLS-only policy": (
            lambda: _tls_only(s3, state.bucket),
            lambda: s3.put_bucket_policy(Bucket=state.bucket,
                                         Policy=_tls_only_policy(state.bucket)),
            "the bucket policy does not refuse requests without TLS",
        ),
    }  # fmt: skip
    for name, (holds, apply, problem) in want.items():
        if holds():
            continue
        if create:
            apply()
            state.changed.append(f"set {name}")
        else:
            state.problems.append(f"bucket {state.bucket}: {problem}")


def _encrypted_with(s3: Any, state: BackendState) -> bool:
    try:
        rules = s3.get_bucket_encryption(Bucket=state.bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"]  # fmt: skip
    except ClientError:
        return False
    return any(
        r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") == "aws:kms"
        and r["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID") == state.key_arn
        for r in rules
    )


def _public_access_blocked(s3: Any, bucket: str) -> bool:
    try:
        conf = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError:
        return False
    flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    return all(conf.get(k) for k in flags)


def _tls_only(s3: Any, bucket: str) -> bool:
    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError:
        return False
    for st in policy.get("Statement", []):
        cond = (st.get("Condition") or {}).get("Bool", {})
        if st.get("Effect") == "Deny" and str(cond.get("aws:SecureTransport")).lower() == "false":
            return True
    return False


def ensure(
    bucket: str, region: str, key_alias: str, *, create: bool, session: Any = None,
    endpoint_url: str | None = None,
) -> BackendState:  # fmt: skip
    if region not in ALLOWED_REGIONS:
        raise UsageError(f"--region {region!r}: state stays in {' or '.join(ALLOWED_REGIONS)}")
    if not BUCKET.match(bucket):
        raise UsageError(f"--bucket {bucket!r} is not an S3 bucket name")
    if not ALIAS.match(key_alias):
        raise UsageError(f"--key-alias {key_alias!r} must look like alias/NAME")
    session = session or boto3.session.Session(region_name=region)
    kms = session.client("kms", region_name=region, endpoint_url=endpoint_url, config=TIMEOUTS)
    s3 = session.client("s3", region_name=region, endpoint_url=endpoint_url, config=TIMEOUTS)
    state = BackendState(bucket, region, key_alias)
    _key(kms, state, create)
    if state.key_arn:
        _bucket(s3, state, create)
    return state


PROG = "claims-dc state"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0],
        epilog="examples:\n"
               "  claims-dc state ensure --bucket claims-dc-pulumi-state\n"
               "  claims-dc state check --bucket claims-dc-pulumi-state --json\n\n"
               "exit codes: 0 ok; 1 a setting missing (check) or an AWS failure; 2 usage;\n"
               "4 an unexpected failure (named)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("action", choices=("ensure", "check"))
    parser.add_argument("--bucket", required=True, help="the state bucket's name")
    parser.add_argument("--region", default="ap-northeast-1", help="Tokyo (default) or Osaka")
    parser.add_argument("--key-alias", default="alias/claims-dc-pulumi-secrets")
    parser.add_argument("--endpoint-url", help="an S3/KMS-compatible endpoint instead of AWS")
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_tool(PROG, build_parser(), _command, argv)


def _command(args: argparse.Namespace) -> int:
    try:
        state = ensure(args.bucket, args.region, args.key_alias, create=args.action == "ensure",
                       endpoint_url=args.endpoint_url)  # fmt: skip
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as e:
        print(f"{PROG}: AWS refused or did not answer: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**asdict(state), "backend_url": state.backend_url,
                          "secrets_provider": state.secrets_provider}, indent=2))  # fmt: skip
    else:
        for line in state.changed:
            print(f"{PROG}: {line}", file=sys.stderr)
        for line in state.problems:
            print(f"MISSING {line}")
        if not state.problems:
            print(f"pulumi login '{state.backend_url}'")
            print(f"pulumi stack init <stack> --secrets-provider '{state.secrets_provider}'")
    return 1 if state.problems else 0


if __name__ == "__main__":
    sys.exit(main())
