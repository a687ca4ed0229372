"""Write one environment's inventory directory from its config, outputs and operators.

    DIR/inventory.yml            hosts (private IP, instance ID, zone, role) and their groups:
                                 zone_<zone>, role_<role>, datacenter, stand_ins
    DIR/group_vars/all/00-stack.yml the flow policy, bucket, keys, region, endpoints, operators
    DIR/group_vars/all/<layer>   an environment's own layer, each variable with its reason
    DIR/ssh_config               how the operator reaches every host
    DIR/known_hosts              the hosts' keys (kept; never written from an unverified scan)

Every data-center host is reached through the bastion (ProxyJump); the bastion itself is
reached one of two ways (`connect`): `ssm`, the production road, through AWS Systems Manager
Session Manager port forwarding (no inbound port, no public address); `bastion`, on its own
address, for a control node that has a network path to it alone (the lab's stand-in for the
Session Manager leg). `direct` is for a control node inside the management network (the
bastion itself), which reaches every host on its own address.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from infra.config import DATACENTER_ZONES, StackConfig
from ops.inventory import InventoryError
from ops.inventory.operators import Operator
from ops.inventory.outputs import StackOutputs

GENERATED = "# Written by `claims-dc inventory`"
Connect = Literal["ssm", "bastion", "direct"]
CONNECT_MODES: tuple[Connect, ...] = ("ssm", "bastion", "direct")
# The shared session to the bastion (ssh's %C: a hash of the connection), beside the inventory.
CONTROL_SOCKETS = "cm-%C"


@dataclass(frozen=True)
class Layer:
    """Variables and hosts one kind of environment adds, each variable with a one-line reason.

    Written to group_vars/all/<name>.yml after the generated variables; the roles never read a
    variable named after an environment, so a layer sets the same inputs production sets."""

    name: str
    title: str
    variables: dict[str, tuple[Any, str]]
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def inventory(config: StackConfig, outputs: StackOutputs, layer: Layer | None) -> dict[str, Any]:
    deployed = [name for name, h in config.hosts.items() if not h.stand_in]
    hosts: dict[str, Any] = {
        name: {
            "ansible_host": outputs.private_ips[name],
            "claims_dc_instance_id": outputs.instance_ids[name],
            "claims_dc_zone": config.hosts[name].zone,
            "claims_dc_role": config.hosts[name].role,
            # Outside parties that pin this host's SSH host key (a new one is announced first).
            "claims_dc_host_key_pinned_by": config.host_key_pinned_by(name),
        }
        for name in deployed
    }
    extra = dict(layer.hosts) if layer else {}
    clash = sorted(set(extra) & set(hosts))
    if clash:
        raise InventoryError([f"layer {layer.name if layer else ''}: hosts {clash} are deployed "
                              "hosts; a layer may only add hosts"])  # fmt: skip
    hosts.update(extra)
    every = list(hosts)
    children: dict[str, Any] = {}
    for zone in config.zones:
        members = [h for h in every if hosts[h].get("claims_dc_zone") == zone]
        if members:
            children[f"zone_{zone}"] = {"hosts": dict.fromkeys(members)}
    for role in sorted({str(hosts[h].get("claims_dc_role")) for h in every}):
        members = [h for h in every if hosts[h].get("claims_dc_role") == role]
        children[f"role_{role}"] = {"hosts": dict.fromkeys(members)}
    children["datacenter"] = {"hosts": dict.fromkeys(deployed)}
    groups = dict(layer.groups) if layer else {}
    children["stand_ins"] = {"hosts": dict.fromkeys(groups.pop("stand_ins", []))}
    for group, members in groups.items():
        children[group] = {"hosts": dict.fromkeys(members)}
    return {"all": {"hosts": hosts, "children": children}}


def stack_vars(
    config: StackConfig,
    outputs: StackOutputs,
    operators: list[Operator],
    operator: Operator,
    out_dir: Path,
) -> dict[str, Any]:
    return {
        "ansible_user": operator.name,
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": f"-F {out_dir / 'ssh_config'}",
        "claims_dc_stack": config.stack,
        "claims_dc_datacenter_zones": list(DATACENTER_ZONES),
        "claims_dc_aws_region": config.region,
        # Empty: the AWS SDKs use the services' own names, which the VPC's private DNS resolves
        # to the interface endpoints (S3 through its gateway endpoint).
        "claims_dc_aws_endpoint_url": "",
        "claims_dc_aws_endpoints": {
            service: names[0]
            for service, names in sorted(outputs.endpoint_dns_names.items())
            if names
        },
        "claims_dc_backup_bucket": outputs.backup_bucket,
        "claims_dc_status_bucket": outputs.status_bucket,
        "claims_dc_break_glass_roles": outputs.break_glass_roles,
        "claims_dc_backup_kms_key_id": outputs.storage_key_arn,
        "claims_dc_backup_lock_days": config.backup.retention_days,
        # Key rotation's calendar and a partner's notice period (ops/rotation/calendar.py).
        "claims_dc_rotation_every_days": dict(config.rotation.every_days),
        "claims_dc_rotation_notice_days": config.rotation.notice_days,
        "base_operators": [
            {"name": o.name, "comment": o.comment, "public_keys": list(o.public_keys)}
            for o in operators
        ],
        # The flow policy, for the host firewalls: the same zones and flows as the Pulumi
        # program, never a second copy.
        "claims_dc_zones": {z.name: str(z.cidr) for z in config.zones.values()},
        "claims_dc_flows": [
            {
                "from": list(f.sources),
                "to": list(f.destinations),
                "port": f.port,
                "protocol": f.protocol,
                "service": f.service or "",
                "why": f.why,
            }
            for f in config.flows
        ],
    }


def ssh_config(
    config: StackConfig,
    outputs: StackOutputs,
    operator: Operator,
    out_dir: Path,
    *,
    connect: Connect,
    identity: Path | None,
    extra_hosts: dict[str, str] | None = None,
) -> str:
    """OpenSSH client configuration: strict host keys from DIR/known_hosts, key only."""
    deployed = [n for n, h in config.hosts.items() if not h.stand_in]
    bastions = [n for n in deployed if config.hosts[n].role == "bastion"]
    if connect != "direct" and not bastions:
        raise InventoryError([f"{config.source}: no host with role 'bastion'; the {connect} "
                              "way in needs one"])  # fmt: skip
    bastion = bastions[0] if bastions else ""
    common = [
        f"    User {operator.name}",
        f"    UserKnownHostsFile {out_dir / 'known_hosts'}",
        "    StrictHostKeyChecking yes",
        "    PasswordAuthentication no",
        "    KbdInteractiveAuthentication no",
        "    ConnectTimeout 10",
        "    ServerAliveInterval 15",
        "    ServerAliveCountMax 3",
    ]
    if identity is not None:
        common += [f"    IdentityFile {identity}", "    IdentitiesOnly yes"]
    blocks = [f"{GENERATED} from {config.source}; regenerated on every run.\n# Way in: {connect}."]
    for name in deployed:
        address = outputs.private_ips[name]
        lines = [f"Host {name} {address}", f"    HostName {address}"]
        if connect == "ssm" and name == bastion:
            # Session Manager carries the SSH connection over the SSM endpoints: no inbound
            # port, no public address. HostKeyAlias keeps known_hosts keyed by the name.
            lines += [
                f"    HostKeyAlias {name}",
                "    ProxyCommand aws ssm start-session --target "
                f"{outputs.instance_ids[name]} --document-name AWS-StartSSHSession "
                f"--parameters portNumber=%p --region {outputs.region}",
            ]
        if connect != "direct" and name == bastion:
            # Every hop through the bastion shares one session to it, so a fresh connection to
            # a host behind it costs that host's handshake alone. A command line that asks for
            # no multiplexing (a fresh connection to the bastion itself) still gets none.
            lines += [
                "    ControlMaster auto",
                f"    ControlPath {out_dir / CONTROL_SOCKETS}",
                "    ControlPersist 60s",
            ]
        elif connect != "direct" and name != bastion:
            lines.append(f"    ProxyJump {bastion}")
        blocks.append("\n".join(lines + common))
    for name, address in (extra_hosts or {}).items():
        blocks.append("\n".join([f"Host {name} {address}", f"    HostName {address}", *common]))
    return "\n\n".join(blocks) + "\n"


def _layer_text(layer: Layer, source: str) -> str:
    lines = [f"{GENERATED} from {source}: {layer.title}", "---"]
    for name, (value, reason) in layer.variables.items():
        if "\n" in reason:
            raise InventoryError([f"layer {layer.name}: the reason for {name} is not one line"])
        lines.append(f"# {reason}")
        lines.append(_dump({name: value}).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` whole, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_inventory(
    config: StackConfig,
    outputs: StackOutputs,
    operators: list[Operator],
    out_dir: Path,
    *,
    operator_name: str | None = None,
    connect: Connect = "ssm",
    identity: Path | None = None,
    layer: Layer | None = None,
) -> list[Path]:
    """Write the inventory directory; returns the files written. Files this generator wrote
    before and did not write now (a layer no longer asked for) are removed."""
    if connect not in CONNECT_MODES:
        raise InventoryError([f"connect {connect!r}: use one of {', '.join(CONNECT_MODES)}"])
    by_name = {o.name: o for o in operators}
    if operator_name is not None and operator_name not in by_name:
        raise InventoryError([f"--as {operator_name!r}: not in the operators file "
                              f"({', '.join(by_name)})"])  # fmt: skip
    operator = by_name[operator_name] if operator_name else operators[0]
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out_dir, 0o700)
    group_vars = out_dir / "group_vars" / "all"
    group_vars.mkdir(parents=True, exist_ok=True)
    source = f"{config.source} and {outputs.source}"
    header = f"{GENERATED} from {source}; regenerated on every run.\n"
    hosts = inventory(config, outputs, layer)
    extra_ssh = {
        n: str(v.get("ansible_host", n)) for n, v in (layer.hosts if layer else {}).items()
    }
    files = {
        out_dir / "inventory.yml": header + _dump(hosts),
        group_vars / "00-stack.yml": header + "---\n"
        + _dump(stack_vars(config, outputs, operators, operator, out_dir)),
        out_dir / "ssh_config": ssh_config(
            config, outputs, operator, out_dir, connect=connect, identity=identity,
            extra_hosts=extra_ssh,
        ),
    }  # fmt: skip
    if layer is not None:
        files[group_vars / f"{layer.name}.yml"] = _layer_text(layer, source)
    for stale in group_vars.glob("*.yml"):
        if stale not in files and stale.read_text(encoding="utf-8").startswith(GENERATED):
            stale.unlink()
    for path, text in files.items():
        _write(path, text)
    known_hosts = out_dir / "known_hosts"
    if not known_hosts.exists():
        _write(known_hosts, "")
    return [*files, known_hosts]
