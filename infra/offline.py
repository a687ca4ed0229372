"""Evaluate the Pulumi program offline, under Pulumi's own mocks (no CLI, no cloud).

The Pulumi CLI and its provider plugins cannot be installed on the lab machines, so the program
is checked here the way Pulumi's unit tests do it: `pulumi.runtime.set_mocks`, the stack's config
handed over exactly as the engine would hand it, and every resource the program declares
recorded with its inputs. The mocks are strict: an invoke they do not know fails the evaluation
instead of quietly returning nothing.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from infra.config import PROJECT, StackConfig, from_pulumi
from infra.policy.rules import Res

MOCK_ACCOUNT = "123456789012"


# The data sources the program may call, and what they answer under mocks.
KNOWN_INVOKES: dict[str, dict[str, Any]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": {
        "accountId": MOCK_ACCOUNT, "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/mock",
        "userId": "MOCK", "id": MOCK_ACCOUNT,
    },
    "aws:ec2/getAmi:getAmi": {
        "id": "ami-0debian12mock", "name": "debian-12-amd64-mock", "architecture": "x86_64",
    },
    # Sample S3 ranges of ap-northeast-1; the real list comes from AWS at deploy time.
    "aws:ec2/getPrefixList:getPrefixList": {
        "id": "pl-61a54008", "prefixListId": "pl-61a54008", "name": "com.amazonaws.s3",
        "cidrBlocks": ["3.5.152.0/21", "52.219.0.0/20", "52.219.136.0/22"],
    },
    "aws:ec2transitgateway/getDirectConnectGatewayAttachment:getDirectConnectGatewayAttachment": {
        "id": "tgw-attach-dx-mock",
    },
}  # fmt: skip


class UnknownInvokeError(RuntimeError):
    """The program called a data source the mocks were not taught: add it on purpose."""


@dataclass
class DeclaredResource:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None = None
    protect: bool = False
    ignore_changes: tuple[str, ...] = ()
    outputs: dict[str, Any] = field(default_factory=dict)  # what the provider computed

    @property
    def component(self) -> str:
        """The component that declared it: children are named `<component>-...`."""
        return self.name.split("-", 1)[0]


@dataclass
class Evaluation:
    config: StackConfig
    outputs: dict[str, Any]
    resources: list[DeclaredResource] = field(default_factory=list)
    invokes: list[str] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_token]

    def bucket_settings(self, type_token: str) -> dict[str, DeclaredResource]:
        """A bucket-level setting (lock, lifecycle, ...) keyed by the name of the bucket
        resource it configures: under the mocks a resource's ID is its name with -id."""
        return {
            str(r.inputs.get("bucket", "")).removesuffix("-id"): r for r in self.of_type(type_token)
        }

    def policy_view(self) -> list[Res]:
        """The recorded resources as the policy rules see them. Under mocks every resource's
        id is `<name>-id`, so a property holding that id refers to that resource."""
        ids = {f"{r.name}-id": r.name for r in self.resources}
        view = []
        for r in self.resources:
            if r.type.startswith("claims-dc:"):
                continue  # components carry no properties of their own
            refs: dict[str, frozenset[str]] = {}
            for key, value in r.inputs.items():
                values = value if isinstance(value, list) else [value]
                names = frozenset(ids[v] for v in values if isinstance(v, str) and v in ids)
                if names:
                    refs[key] = names
            view.append(Res(r.type, r.name, r.inputs, refs))
        return view


def _computed(typ: str, name: str, inputs: dict[str, Any], region: str) -> dict[str, Any]:
    """The outputs a real provider would compute, so that dependent inputs are concrete."""
    out: dict[str, Any] = {"arn": f"arn:aws:mock:{region}:{MOCK_ACCOUNT}:{typ}/{name}"}
    if typ == "aws:s3/bucket:Bucket":
        out["arn"] = f"arn:aws:s3:::{inputs.get('bucket', name)}"
        out["bucket"] = inputs.get("bucket", name)
    elif typ == "aws:kms/key:Key":
        out["arn"] = f"arn:aws:kms:{region}:{MOCK_ACCOUNT}:key/{name}"
        out["keyId"] = name
    elif typ == "aws:iam/role:Role":
        out["arn"] = f"arn:aws:iam::{MOCK_ACCOUNT}:role/{inputs.get('name', name)}"
        out["name"] = inputs.get("name", name)
    elif typ == "aws:iam/instanceProfile:InstanceProfile":
        out["name"] = name
    elif typ == "aws:ec2/vpcEndpoint:VpcEndpoint":
        out["prefixListId"] = "pl-61a54008" if inputs.get("vpcEndpointType") == "Gateway" else None
        out["dnsEntries"] = [
            {"dnsName": f"vpce-{name}.{inputs.get('serviceName')}", "hostedZoneId": "Z0MOCK"}
        ]
    elif typ == "aws:ec2/vpnConnection:VpnConnection":
        out["transitGatewayAttachmentId"] = f"tgw-attach-{name}"
    elif typ == "aws:ec2/instance:Instance":
        out["privateIp"] = inputs.get("privateIp")
    return out


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str) -> None:
        self.region = region
        self.resources: list[DeclaredResource] = []
        self.invokes: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        computed = _computed(args.typ, args.name, inputs, self.region)
        self.resources.append(
            DeclaredResource(args.typ, args.name, inputs, args.provider, outputs=computed)
        )
        return f"{args.name}-id", {**computed, **inputs}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        self.invokes.append(args.token)
        if args.token not in KNOWN_INVOKES:
            raise UnknownInvokeError(f"invoke {args.token} is not known to the mocks")
        return dict(KNOWN_INVOKES[args.token]), []


def engine_config(stack_file: Path) -> dict[str, str]:
    """The stack file's config as the engine passes it: structured values as JSON text."""
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    config = document.get("config") or {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


# A program under the mocks allocates hundreds of thousands of short-lived objects (futures,
# outputs); at the default threshold of 700 the collector runs thousands of times per stack and
# takes a quarter of the time. It still runs, less often.
FEW_COLLECTIONS = (100_000, 50, 100)


@contextlib.contextmanager
def _fast_mocks() -> Iterator[None]:
    """What costs time under the mocks and serves only the engine: the collector's frequency,
    and the source position the SDK records for each resource (a walk of the call stack that
    stats every file on it; the engine shows it in diagnostics, the mocks drop it). About 40%
    of a stack's evaluation. Both are put back afterwards."""
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.proto import source_pb2

    before = gc.get_threshold()
    stack_trace = getattr(sdk_resource, "_get_stack_trace", None)
    gc.set_threshold(*FEW_COLLECTIONS)
    if stack_trace is not None:
        sdk_resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if stack_trace is not None:
            sdk_resource._get_stack_trace = stack_trace


def run_program(
    stack_file: Path,
    mocks: pulumi.runtime.Mocks,
    transformation: pulumi.ResourceTransformation | None = None,
    exports: dict[str, Any] | None = None,
) -> StackConfig:
    """Run the Pulumi program for `Pulumi.<stack>.yaml` under `mocks`, with the stack's config
    handed over as the engine would; returns the config the program read. `exports`, if given,
    receives the stack outputs resolved to plain values, as `pulumi stack output --json` prints
    them. Raises ConfigError on a bad config, and whatever the mocks raise."""
    from infra.program import run

    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    pulumi.runtime.set_all_config(engine_config(stack_file))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    holder: dict[str, StackConfig] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> None:
        if transformation is not None:
            pulumi.runtime.register_stack_transformation(transformation)
        holder["config"] = from_pulumi()
        if exports is None:
            run(holder["config"])
            return

        def record(name: str, value: Any) -> None:
            pulumi.Output.from_input(value).apply(lambda v: exports.__setitem__(name, v))

        run(holder["config"], export=record)

    with _fast_mocks():
        program()
    return holder["config"]


def evaluate(stack_file: Path) -> Evaluation:
    """Run the program for `Pulumi.<stack>.yaml` under mocks; raises ConfigError on bad config."""
    from infra.program import outputs

    mocks = RecordingMocks(engine_config(stack_file).get("aws:region", ""))
    options: dict[tuple[str, str], tuple[bool, tuple[str, ...]]] = {}

    def record_options(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        # Mocks never see resource options; this records the ones the safety rules rely on.
        opts = args.opts
        options[(args.type_, args.name)] = (bool(opts.protect), tuple(opts.ignore_changes or ()))
        return None

    config = run_program(stack_file, mocks, record_options)
    for resource in mocks.resources:
        resource.protect, resource.ignore_changes = options.get(
            (resource.type, resource.name), (False, ())
        )
    return Evaluation(config, outputs(config), mocks.resources, mocks.invokes)
