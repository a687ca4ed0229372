"""The stack outputs that the inventory needs, read from `pulumi stack output --json`.

The file comes from outside (a CLI's output, a copy handed over by someone else), so it is
checked like any other input: its size, its encoding, every value the inventory uses, and that
it belongs to the stack it is read for (the same region, exactly the hosts the config deploys,
each at the address the config gives it).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import StackConfig
from ops.inventory import InventoryError

MAX_BYTES = 4 * 1024 * 1024
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
KMS_KEY_ARN = re.compile(r"^arn:aws:kms:(?P<region>[a-z0-9-]+):[0-9]{12}:key/[A-Za-z0-9-]{1,128}$")
DNS_NAME = re.compile(r"^[A-Za-z0-9*.-]{1,253}$")
ROLE_ARN = re.compile(r"^arn:aws:iam::[0-9]{12}:role/(?:[\w+=,.@-]+/)*(?P<name>[\w+=,.@-]{1,64})$")
SECRET_MARK = "[secret]"  # noqa: S105 - what `pulumi stack output --json` prints for a secret output


@dataclass(frozen=True)
class StackOutputs:
    source: str
    region: str
    private_ips: dict[str, str]
    instance_ids: dict[str, str]
    backup_bucket: str
    storage_key_arn: str
    endpoint_dns_names: dict[str, list[str]] = field(default_factory=dict)
    break_glass_roles: list[str] = field(default_factory=list)  # IAM role names
    status_bucket: str = ""  # where the hosts publish their status (empty: not deployed)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise InventoryError([f"{path}: cannot read the stack outputs: {e.strerror}"]) from None
    if len(data) > MAX_BYTES:
        raise InventoryError([f"{path}: larger than {MAX_BYTES} bytes; not stack outputs"])
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise InventoryError([f"{path}: not UTF-8 (byte {e.start})"]) from None
    except json.JSONDecodeError as e:
        raise InventoryError(
            [f"{path}: not JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
             "write it with `pulumi stack output --json`"]
        ) from None  # fmt: skip
    if not isinstance(document, dict):
        raise InventoryError(
            [f"{path}: expected a JSON object of outputs, got {type(document).__name__}"]
        )
    return document


def _text(doc: dict[str, Any], key: str, where: str, problems: list[str]) -> str:
    value = doc.get(key)
    if value is None:
        problems.append(f"{where}: output {key!r} is missing")
        return ""
    if value == SECRET_MARK:
        problems.append(f"{where}: output {key!r} is shown as {SECRET_MARK}; it is not a secret "
                        "and must be exported in plain")  # fmt: skip
        return ""
    if not isinstance(value, str):
        problems.append(f"{where}: output {key!r} must be a string, got {type(value).__name__}")
        return ""
    return value


def _mapping(doc: dict[str, Any], key: str, where: str, problems: list[str]) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        problems.append(f"{where}: output {key!r} is missing")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where}: output {key!r} must be an object, got {type(value).__name__}")
        return {}
    return value


def load_outputs(path: Path, config: StackConfig) -> StackOutputs:
    """The outputs in `path`, checked against `config`; InventoryError names every problem."""
    # Long on purpose: one check per output, in the order of the file, each naming its own problem;
    # a list of checks reads better in one place than as many one-line helpers
    doc = _read(path)
    where = str(path)
    problems: list[str] = []
    region = _text(doc, "region", where, problems)
    if region and region != config.region:
        problems.append(f"{where}: output 'region' is {region!r} but {config.source} deploys to "
                        f"{config.region!r}: outputs of another stack?")  # fmt: skip
    deployed = {name: h for name, h in config.hosts.items() if not h.stand_in}

    ips: dict[str, str] = {}
    raw_ips = _mapping(doc, "privateIps", where, problems)
    raw_ids = _mapping(doc, "instanceIds", where, problems)
    for key, raw in (("privateIps", raw_ips), ("instanceIds", raw_ids)):
        for name in sorted(set(raw) - set(deployed)):
            problems.append(f"{where}: output {key!r} names host {name!r}, which "
                            f"{config.source} does not deploy")  # fmt: skip
    for name, host in deployed.items():
        if not raw_ips:
            break
        value = raw_ips.get(name)
        if not isinstance(value, str):
            problems.append(f"{where}: output 'privateIps' has no address for host {name!r}")
            continue
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            problems.append(f"{where}: output 'privateIps'[{name!r}] = {value!r} is not an "
                            "IPv4 address")  # fmt: skip
            continue
        zone = config.zones[host.zone]
        if address not in zone.cidr:
            problems.append(f"{where}: output 'privateIps'[{name!r}] = {value} is outside zone "
                            f"{host.zone} ({zone.cidr})")  # fmt: skip
        elif address != host.address:
            problems.append(f"{where}: output 'privateIps'[{name!r}] = {value}, but "
                            f"{config.source} gives {name} the address {host.address}")  # fmt: skip
        else:
            ips[name] = value

    ids: dict[str, str] = {}
    for name in deployed:
        if not raw_ids:
            break
        value = raw_ids.get(name)
        if not isinstance(value, str) or not INSTANCE_ID.match(value):
            problems.append(f"{where}: output 'instanceIds'[{name!r}] = {value!r} is not an "
                            "EC2 instance ID (i-...)")  # fmt: skip
            continue
        ids[name] = value

    bucket = _text(doc, "backupBucket", where, problems)
    if bucket and not BUCKET.match(bucket):
        problems.append(f"{where}: output 'backupBucket' = {bucket!r} is not an S3 bucket name")
    key_arn = _text(doc, "storageKeyArn", where, problems)
    match = KMS_KEY_ARN.match(key_arn) if key_arn else None
    if key_arn and match is None:
        problems.append(f"{where}: output 'storageKeyArn' = {key_arn!r} is not a KMS key ARN")
    elif match and match["region"] != config.region:
        problems.append(f"{where}: output 'storageKeyArn' is a key in {match['region']}, not in "
                        f"the stack's region {config.region}")  # fmt: skip

    endpoints: dict[str, list[str]] = {}
    raw_endpoints = doc.get("endpointDnsNames") or {}
    if not isinstance(raw_endpoints, dict):
        problems.append(f"{where}: output 'endpointDnsNames' must be an object")
        raw_endpoints = {}
    for service, names in raw_endpoints.items():
        if not isinstance(names, list) or not all(
            isinstance(n, str) and DNS_NAME.match(n) for n in names
        ):
            problems.append(f"{where}: output 'endpointDnsNames'[{service!r}] must be a list "
                            "of DNS names")  # fmt: skip
            continue
        endpoints[str(service)] = list(names)

    break_glass: list[str] = []
    role_arn = doc.get("backupBreakGlassRoleArn")
    if role_arn is not None:
        match = ROLE_ARN.match(role_arn) if isinstance(role_arn, str) else None
        if match is None:
            problems.append(f"{where}: output 'backupBreakGlassRoleArn' = {str(role_arn)[:80]!r} "
                            "is not an IAM role ARN")  # fmt: skip
        else:
            break_glass.append(match["name"])

    status_bucket = doc.get("statusBucket", "")
    if not isinstance(status_bucket, str) or (status_bucket and not BUCKET.match(status_bucket)):
        problems.append(f"{where}: output 'statusBucket' = {str(status_bucket)[:80]!r} is not "
                        "an S3 bucket name")  # fmt: skip
    if problems:
        raise InventoryError(problems)
    return StackOutputs(where, region, ips, ids, bucket, key_arn, endpoints, break_glass,
                        str(status_bucket))  # fmt: skip
