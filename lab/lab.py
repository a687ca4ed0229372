"""Bring the lab up, take it down, and say how it is.

`up` is idempotent: it creates what is missing, repairs what is wrong (a stopped host, a host on
the wrong address or image, lost routes or router rules) and leaves what is right alone. `down`
removes exactly what `up` made: the containers and networks carrying the lab's label, the moto
server it started, the control node's guard table, and the lab's state directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.config import StackConfig, load_stack
from lab import image, pki, review
from lab import podman as pm
from lab.apply import ApplyRecord, apply_once
from lab.image import OPERATOR_USER
from lab.plan import (
    AWS_PLACEHOLDER_CONFIG,
    MOTO_PORT,
    NFT_ROUTER_TABLE,
    LabHost,
    LabPlan,
    aws_placeholder_config,
    build_plan,
    host_guard_ruleset,
    inventory_layer,
    operators_yaml,
    router_ruleset,
)
from ops.inventory.generate import write_inventory
from ops.inventory.operators import load_operators
from ops.inventory.outputs import load_outputs
from ops.vault.environment import init as vault_init
from ops.vault.keyring import KeyringSettings, kms_client

REPO = Path(__file__).resolve().parents[1]
LAB_ROOT = REPO / ".lab"
BOOT_TIMEOUT = 90.0


def progress(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def state_dir(stack: str) -> Path:
    return LAB_ROOT / stack


def operator_dir(stack: str) -> Path:
    """The lab operator's own SSH key pair: the operator's, as ~/.ssh is, not the inventory's."""
    return LAB_ROOT / f"{stack}.operator"


# What the lab keeps sealed by its vault, or made with what is sealed: a vault whose KMS key
# died with its moto server cannot be opened again, so a new server starts these afresh.
SEALED_STATE = ("vault", "secrets", "pki", "ssh-ca", "rotation")
VAULT_KEY_ALIAS = "alias/claims-dc-pulumi-secrets"  # the runbook's key (ops.statebackend)


def _moto_alive(plan: LabPlan, sdir: Path) -> bool:
    pid_file = sdir / "moto.pid"
    mine = int(pid_file.read_text()) if pid_file.exists() else None
    return mine in _moto_pids(plan) and _port_open(str(plan.moto_address), MOTO_PORT)


def moto_url(plan: LabPlan) -> str:
    return f"http://{plan.moto_address}:{MOTO_PORT}"


def _ensure_vault(config: StackConfig, plan: LabPlan, sdir: Path) -> None:
    """The inventory's vault as every environment has one (ops.vault), its password wrapped
    by a KMS key of the lab's AWS API, which the control node reaches at moto's own address
    as it reaches AWS's public KMS endpoint in production (not through the hosts' endpoint
    stand-in, whose TLS key is itself sealed)."""
    settings = KeyringSettings(config.stack, VAULT_KEY_ALIAS, config.region, moto_url(plan),
                               "", str(sdir / AWS_PLACEHOLDER_CONFIG))  # fmt: skip
    kms = kms_client(settings)  # as the vault client will reach it
    aliases = {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
    if VAULT_KEY_ALIAS not in aliases:
        key = kms.create_key(Description="claims-dc: the lab's Pulumi secrets and vault key")
        kms.create_alias(AliasName=VAULT_KEY_ALIAS, TargetKeyId=key["KeyMetadata"]["KeyId"])
    vault_init(sdir, settings, sys.executable, REPO)
    pki.seal_keys(sdir)


def _sh(argv: list[str], what: str, *, input_text: str | None = None) -> str:
    proc = subprocess.run(argv, input=input_text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what}: {' '.join(argv)} -> exit {proc.returncode}: {proc.stderr}")
    return proc.stdout


def _write_into(container: str, path: str, content: str, mode: str, owner: str = "root") -> bool:
    """Write a file inside a container, only when its content differs; whether it wrote."""
    current = pm.exec_in(container, ["cat", path], check=False)
    if current.returncode == 0 and current.stdout == content:
        return False
    script = (
        f"umask 077 && cat > {path}.new && chown {owner}:{owner} {path}.new && "
        f"chmod {mode} {path}.new && mv {path}.new {path}"
    )
    pm.podman("exec", "-i", container, "sh", "-c", script, input_bytes=content.encode())
    return True


# --- networks -----------------------------------------------------------------------------


def _ensure_networks(plan: LabPlan) -> None:
    for net in plan.networks:
        info = pm.inspect_network(net.name)
        if info is not None:
            subnets = [s.get("subnet") for s in info.get("subnets", [])]
            if subnets == [str(net.subnet)] and info.get("internal"):
                continue
            progress(f"network {net.name} is {subnets}, want {net.subnet}: recreating")
            for c in pm.container_names(plan.label):
                pm.podman("rm", "-f", "-t", "0", c)
            pm.podman("network", "rm", "-f", net.name)
        pm.podman(
            "network", "create", "--internal", "--disable-dns",
            "--subnet", str(net.subnet), "--gateway", str(net.gateway),
            "--label", plan.label, net.name,
        )  # fmt: skip


def _bridges(plan: LabPlan) -> dict[str, str]:
    out = {}
    for net in plan.networks:
        info = pm.inspect_network(net.name)
        if info is None:
            raise RuntimeError(f"network {net.name} vanished")
        out[net.name] = str(info["network_interface"])
    return out


# --- containers ---------------------------------------------------------------------------


SPEC_LABEL = "claims-dc.spec"


def _container_ok(name: str, image_ref: str, want: dict[str, str], spec: str) -> bool | None:
    """None: absent; False: present but wrong; True: present with the right image and legs."""
    info = pm.inspect_container(name)
    if info is None:
        return None
    if info.get("ImageName") != image_ref:
        return False
    if (info.get("Config", {}).get("Labels") or {}).get(SPEC_LABEL) != spec:
        return False
    if not info.get("State", {}).get("Running"):
        # A stopped container shows no addresses; the spec label already covers its legs, so
        # it is started again, keeping what is on it, rather than made anew.
        return True
    nets = info.get("NetworkSettings", {}).get("Networks") or {}
    have = {n: v.get("IPAddress") for n, v in nets.items()}
    return have == want


def _run_container(
    plan: LabPlan,
    name: str,
    hostname: str,
    image_ref: str,
    legs: dict[str, str],
    extra: list[str],
) -> bool:
    """Run the container unless it runs as specified already; True if it was made now."""
    # Any change to how the container is run (capabilities, sysctls) means a new container.
    spec = hashlib.sha256(json.dumps([hostname, legs, extra]).encode()).hexdigest()[:12]
    status = _container_ok(name, image_ref, legs, spec)
    if status is False:
        progress(f"{name} has the wrong image, address or settings: recreating")
        pm.podman("rm", "-f", "-t", "0", name)
    if status is True:
        info = pm.inspect_container(name) or {}
        if not info.get("State", {}).get("Running"):
            progress(f"{name} was stopped: starting")
            pm.podman("start", name)
        return False
    args = [
        "run",
        "-d",
        "--name",
        name,
        "--hostname",
        hostname,
        "--label",
        plan.label,
        "--label",
        f"{SPEC_LABEL}={spec}",
        "--systemd=always",
        *pm.RUN_ULIMITS,
        "--cap-drop",
        "NET_RAW",
    ]
    for net, addr in legs.items():
        args += ["--network", f"{net}:ip={addr}"]
    pm.podman(*args, *extra, image_ref, "/sbin/init")
    return True


HARDENING_DEFAULTS = REPO / "playbooks" / "roles" / "hardening" / "defaults" / "main.yml"
# A data-center host enforces its own firewall: NET_ADMIN in its own network namespace, as root
# on a VM would have.
DATACENTER_HOST_OPTIONS = ["--cap-add", "NET_ADMIN"]


def hardening_net_sysctls() -> list[tuple[str, str]]:
    """The hardening role's net.ipv4 settings, ip_forward first.

    A container's /proc/sys is read-only, so the role cannot apply kernel settings itself; the
    lab sets the ones a network namespace owns, from the role's own defaults, and the role
    verifies them. A new namespace inherits ip_forward=1 from this machine, and writing
    ip_forward resets the redirect settings, so it goes first.
    """
    defaults = yaml.safe_load(HARDENING_DEFAULTS.read_text(encoding="utf-8"))
    items = [(k, str(v)) for k, v in defaults["hardening_sysctls"].items()
             if k.startswith("net.ipv4.")]  # fmt: skip
    return sorted(items, key=lambda kv: (kv[0] != "net.ipv4.ip_forward", kv[0]))


def ensure_sysctls(host: LabHost) -> None:
    netns = ["nsenter", "-t", str(_pid(host.container)), "-n"]
    for key, value in hardening_net_sysctls():
        _sh([*netns, "sysctl", "-q", "-w", f"{key}={value}"], f"{key} on {host.name}")


def _wait_booted(containers: list[str]) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    pending = list(containers)
    while pending:
        name = pending[0]
        proc = pm.exec_in(name, ["systemctl", "is-system-running"], check=False)
        state = proc.stdout.strip()
        if state == "running":
            pending.pop(0)
            continue
        if state == "degraded":
            failed = pm.exec_in(name, ["systemctl", "--failed", "--no-legend"], check=False)
            raise RuntimeError(f"{name} booted degraded: {failed.stdout.strip()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not finish booting in {BOOT_TIMEOUT:.0f}s: {state!r}")
        time.sleep(0.5)


def _pid(container: str) -> int:
    info = pm.inspect_container(container)
    if info is None or not info.get("State", {}).get("Running"):
        raise RuntimeError(f"{container} is not running")
    return int(info["State"]["Pid"])


def _ensure_routes(host: LabHost) -> None:
    """Set the host's routes from the control node: the hosts themselves hold no NET_ADMIN."""
    netns = ["nsenter", "-t", str(_pid(host.container)), "-n"]
    current = _sh([*netns, "ip", "-4", "route", "show"], f"routes of {host.name}")
    if current.startswith("default") or "\ndefault" in current:
        _sh([*netns, "ip", "-4", "route", "del", "default"], f"default route of {host.name}")
    for dest, via in host.routes:
        _sh(
            [*netns, "ip", "-4", "route", "replace", str(dest), "via", str(via)],
            f"route {dest} on {host.name}",
        )


def _forget_neighbours(plan: LabPlan) -> None:
    """A host made anew keeps its address but not its MAC: the control node and the router
    would send to the old one until their neighbour entries go stale, and a first SSH
    connection times out. Forget the lab's entries so they are learnt again."""
    for net in plan.networks:
        _sh(["ip", "neigh", "flush", "to", str(net.subnet)], f"neighbours of {net.name}")
    pm.exec_in(plan.router, ["ip", "neigh", "flush", "all"])


# --- the router ---------------------------------------------------------------------------


def apply_router_rules(config: StackConfig, plan: LabPlan | None = None) -> str:
    """Load the ruleset generated from `config` into the running router; returns it."""
    plan = plan or build_plan(config)
    rules = router_ruleset(config)
    _write_into(plan.router, "/etc/nftables.conf", rules, "0600")
    pm.exec_in(plan.router, ["nft", "-f", "/etc/nftables.conf"])
    return rules


# --- the AWS endpoints: moto on the control node, TLS at the endpoint stand-in ------------


def _moto_pids(plan: LabPlan) -> list[int]:
    needle = f"-H\0{plan.moto_address}\0-p\0{MOTO_PORT}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"moto_server" in cmdline and needle in cmdline:
            pids.append(int(entry.name))
    return pids


def _port_open(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _stop_moto(plan: LabPlan) -> None:
    for pid in _moto_pids(plan):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _moto_pids(plan) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in _moto_pids(plan):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _ensure_moto(plan: LabPlan, sdir: Path) -> None:
    if _moto_alive(plan, sdir):
        return
    pids = _moto_pids(plan)
    if pids:
        # Started for another checkout's state (or one whose record is gone): its resources
        # are not this state's, so the program's apply would collide with them. Start afresh.
        progress(f"moto server {pids} belongs to another lab state: restarting it")
        _stop_moto(plan)
    moto = Path(sys.executable).parent / "moto_server"
    log = open(sdir / "moto.log", "ab")  # noqa: SIM115 - handed to the detached server
    proc = subprocess.Popen(
        [str(moto), "-H", str(plan.moto_address), "-p", str(MOTO_PORT)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        # The AWS managed policies (AmazonSSMManagedInstanceCore) the program attaches.
        env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
    )
    (sdir / "moto.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 30
    while not _port_open(str(plan.moto_address), MOTO_PORT):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"moto server did not start; see {sdir / 'moto.log'}")
        time.sleep(0.2)


NGINX_SITE = """# claims-dc lab: the AWS endpoints, served as a VPC interface endpoint would.
server {{
    listen {address}:443 ssl;
    server_name {name};
    ssl_certificate /etc/nginx/tls/{name}.crt;
    ssl_certificate_key /etc/nginx/tls/{name}.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    location / {{
        proxy_pass http://{moto}:{port};
        proxy_set_header Host $http_host;
        proxy_http_version 1.1;
    }}
}}
"""


def _ensure_endpoint(plan: LabPlan, sdir: Path) -> None:
    host = plan.endpoint_host()
    cert, key = pki.ensure_server_cert(sdir, host.name, host.address)
    c = host.container
    pm.exec_in(c, ["install", "-d", "-m", "0750", "/etc/nginx/tls"])
    _write_into(c, f"/etc/nginx/tls/{host.name}.crt", cert.read_text(), "0644")
    _write_into(c, f"/etc/nginx/tls/{host.name}.key", pki.read_key(key).decode(), "0600")
    site = NGINX_SITE.format(
        address=host.address, name=host.name, moto=plan.moto_address, port=MOTO_PORT
    )
    _write_into(c, "/etc/nginx/sites-available/aws-endpoints", site, "0644")
    pm.exec_in(c, ["rm", "-f", "/etc/nginx/sites-enabled/default"])
    pm.exec_in(
        c,
        [
            "ln",
            "-sf",
            "/etc/nginx/sites-available/aws-endpoints",
            "/etc/nginx/sites-enabled/aws-endpoints",
        ],
    )
    pm.exec_in(c, ["systemctl", "enable", "--quiet", "nginx"])
    pm.exec_in(c, ["systemctl", "reload-or-restart", "nginx"])


# --- guard on the control node ---


def require_netavark() -> None:
    backend = pm.podman("info", "--format", "{{.Host.NetworkBackend}}").stdout.strip()
    if backend != "netavark":
        raise RuntimeError(
            f"podman's network backend is {backend!r}, not 'netavark': its internal networks "
            "would give the control node no address on the lab bridges, and traffic for lab "
            "addresses would leave the machine. Run lab/setup-host.sh (make setup)."
        )


def check_control_node_routes(plan: LabPlan, bridges: dict[str, str]) -> None:
    """Refuse to go on unless every lab address is routed into its own lab bridge."""
    for host in plan.hosts:
        want = bridges[plan.network(host.zone).name]
        route = _sh(["ip", "-4", "route", "get", str(host.address)], "route check").split()
        dev = route[route.index("dev") + 1] if "dev" in route else None
        if dev != want:
            raise RuntimeError(
                f"the control node routes {host.name} ({host.address}) via {dev!r}, not the "
                f"lab bridge {want!r}: refusing to send it anything ({' '.join(route)})"
            )


def _host_table_exists(plan: LabPlan) -> bool:
    proc = subprocess.run(
        ["nft", "list", "table", "inet", plan.host_table], capture_output=True, check=False
    )
    return proc.returncode == 0


def _ensure_host_guard(plan: LabPlan, bridges: dict[str, str]) -> None:
    ruleset = host_guard_ruleset(plan, bridges)
    # Declaring the table first makes the delete safe; the three lines apply atomically.
    script = f"table inet {plan.host_table}\ndelete table inet {plan.host_table}\n{ruleset}"
    _sh(["nft", "-f", "-"], "control node guard", input_text=script)


# --- up / down / status -------------------------------------------------------------------


@dataclass
class UpReport:
    image: str
    image_build_seconds: float | None
    seconds: float
    state_dir: str
    inventory: str
    endpoint_url: str
    ca_cert: str
    hosts: dict[str, str] = field(default_factory=dict)
    aws: dict[str, Any] = field(default_factory=dict)
    made_now: list[str] = field(default_factory=list)  # hosts whose container this run made


def _aws_summary(record: ApplyRecord, applied_now: bool) -> dict[str, Any]:
    """What the other tools need from the applied stack: bucket, keys, roles."""

    def outputs_of(type_token: str) -> dict[str, dict[str, Any]]:
        prefix = f"{type_token} "
        return {
            k.removeprefix(prefix): v for k, v in record.outputs.items() if k.startswith(prefix)
        }

    buckets = outputs_of("aws:s3/bucket:Bucket")
    keys = outputs_of("aws:kms/key:Key")
    roles = outputs_of("aws:iam/role:Role")
    return {
        "applied_now": applied_now,
        "created": len(record.created),
        "skipped": len(record.skipped),
        "bucket_policies_not_in_lab": {
            k.split(" ", 1)[1]: v
            for k, v in record.skipped.items()
            if k.startswith("aws:s3/bucketPolicy:BucketPolicy ")
        },
        "backup_bucket": buckets.get("backup-bucket", {}).get("bucket"),
        "audit_bucket": buckets.get("audit-bucket", {}).get("bucket"),
        "storage_key_arn": keys.get("keys-storage", {}).get("arn"),
        "logs_key_arn": keys.get("keys-logs", {}).get("arn"),
        "role_arns": {name: out.get("arn") for name, out in roles.items()},
    }


def write_lab_inventory(
    config: StackConfig, plan: LabPlan, sdir: Path, record: ApplyRecord, public_key: str
) -> None:
    """The lab's inventory, by the generator every environment uses: from the stack outputs
    that the lab apply returned and the lab's operators file, plus the lab's layer."""
    outputs_file = sdir / "stack-outputs.json"
    outputs_file.write_text(json.dumps(record.stack_outputs, indent=2, default=str) + "\n")
    (sdir / "operators.yml").write_text(operators_yaml(public_key), encoding="utf-8")
    write_inventory(
        config,
        load_outputs(outputs_file, config),
        load_operators(sdir / "operators.yml"),
        sdir,
        operator_name=OPERATOR_USER,
        # The bastion on its own address stands in for the Session Manager leg; every other
        # data-center host is reached through it, as in production.
        connect="bastion",
        identity=operator_dir(config.stack) / "id_ed25519",
        layer=inventory_layer(config, plan, sdir),
    )


def _make_hosts(config: StackConfig, plan: LabPlan, image_ref: str, sdir: Path) -> list[str]:
    """Every host and the router, booted; the hosts made by this call."""
    progress("hosts and router")
    made_now: list[str] = []
    for host in plan.hosts:
        net = plan.network(host.zone).name
        extra = [] if config.hosts[host.name].stand_in else DATACENTER_HOST_OPTIONS
        if _run_container(plan, host.container, host.name, image_ref, {net: str(host.address)},
                          extra):  # fmt: skip
            made_now.append(host.name)
        if not config.hosts[host.name].stand_in:
            pki.ensure_server_cert(sdir, host.name, host.address)
    _run_container(
        plan, plan.router, "router", image_ref,
        {net: str(addr) for net, addr in plan.router_legs},
        ["--cap-add", "NET_ADMIN",
         "--sysctl", "net.ipv4.ip_forward=1",
         # Strict reverse-path filtering: a zone cannot pose as another zone.
         "--sysctl", "net.ipv4.conf.all.rp_filter=1",
         "--sysctl", "net.ipv4.conf.default.rp_filter=1",
         "--sysctl", "net.ipv4.conf.all.send_redirects=0",
         # Every refused connection gets its ICMP answer at once, not one a second.
         "--sysctl", "net.ipv4.icmp_ratelimit=0"],
    )  # fmt: skip
    _wait_booted([h.container for h in plan.hosts] + [plan.router])
    return made_now


def _wire(config: StackConfig, plan: LabPlan) -> None:
    """The router's rules and every host's routes and kernel settings."""
    progress("router rules and routes")
    bridges = _bridges(plan)
    check_control_node_routes(plan, bridges)
    _ensure_host_guard(plan, bridges)
    apply_router_rules(config, plan)
    pm.exec_in(plan.router, ["systemctl", "enable", "--quiet", "nftables"])
    for host in plan.hosts:
        _ensure_routes(host)
        if not config.hosts[host.name].stand_in:
            ensure_sysctls(host)
    _forget_neighbours(plan)


LAB_CA_FILE = "/usr/local/share/ca-certificates/claims-dc-lab-ca.crt"
LAB_CA_LINK = "/etc/ssl/certs/claims-dc-lab-ca.pem"  # what update-ca-certificates made of it


def _trust_one(host: LabHost, public_key: str, ca_text: str) -> str:
    """The operator's key and the lab CA into one host; its known_hosts line."""
    c = host.container
    _write_into(c, f"/home/{OPERATOR_USER}/.ssh/authorized_keys", public_key + "\n", "0600",
                owner=OPERATOR_USER)  # fmt: skip
    wrote = _write_into(c, LAB_CA_FILE, ca_text, "0644")
    # The trust store is rebuilt only when the CA changed or was never taken in: it takes
    # seconds per host, and a repair of a lab that is up should not pay them again.
    if wrote or pm.exec_in(c, ["test", "-e", LAB_CA_LINK], check=False).returncode != 0:
        pm.exec_in(c, ["update-ca-certificates", "--fresh"], timeout=60)
    hostkey = pm.exec_in(c, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()
    return f"{host.name},{host.address} {hostkey[0]} {hostkey[1]}"


def _trust(plan: LabPlan, sdir: Path, public_key: str, ca_cert: Path) -> None:
    """The operator's key and the lab CA into every host (all at once), and their host keys
    into known_hosts."""
    progress("operator key, host keys, lab CA")
    ca_text = ca_cert.read_text()
    with ThreadPoolExecutor(max_workers=len(plan.hosts)) as pool:
        known = list(pool.map(lambda h: _trust_one(h, public_key, ca_text), plan.hosts))
    (sdir / "known_hosts").write_text("\n".join(known) + "\n")
    # A shared session to a bastion made anew would lead nowhere: the next hop makes a new one.
    for socket_path in sdir.glob("cm-*"):
        socket_path.unlink(missing_ok=True)


def up(config: StackConfig, stack_file: Path | None = None) -> UpReport:
    started = time.monotonic()
    plan = build_plan(config)
    sdir = state_dir(config.stack)
    sdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(sdir, 0o700)
    if not _moto_alive(plan, sdir):
        for name in SEALED_STATE:
            shutil.rmtree(sdir / name, ignore_errors=True)
    require_netavark()
    progress("golden image")
    image_ref, build_seconds = image.ensure()
    if build_seconds is not None:
        progress(f"built {image_ref} in {build_seconds:.0f}s")
    public_key = pki.ensure_operator_key(operator_dir(config.stack))
    ca_cert = pki.ensure_ca(sdir)

    progress("networks")
    _ensure_networks(plan)
    made_now = _make_hosts(config, plan, image_ref, sdir)
    _wire(config, plan)
    _trust(plan, sdir, public_key, ca_cert)

    progress("AWS endpoints")
    _ensure_moto(plan, sdir)
    (sdir / AWS_PLACEHOLDER_CONFIG).write_text(aws_placeholder_config(config))
    progress("the inventory's vault")
    _ensure_vault(config, plan, sdir)
    _ensure_endpoint(plan, sdir)
    progress("the stack's AWS resources, created by the program itself (lab apply)")
    record, applied_now = apply_once(
        stack_file or REPO / f"Pulumi.{config.stack}.yaml",
        plan.endpoint_url,
        str(ca_cert),
        sdir / "aws.json",
        _moto_pids(plan)[0],
    )

    aws_summary = _aws_summary(record, applied_now)
    write_lab_inventory(config, plan, sdir, record, public_key)
    review.write_inputs(sdir, [h for h, spec in config.hosts.items() if not spec.stand_in],
                        operator_dir(config.stack) / "id_ed25519.pub")  # fmt: skip
    report = UpReport(
        image=image_ref,
        image_build_seconds=build_seconds,
        seconds=round(time.monotonic() - started, 1),
        state_dir=str(sdir),
        inventory=str(sdir / "inventory.yml"),
        endpoint_url=plan.endpoint_url,
        ca_cert=str(ca_cert),
        hosts={h.name: str(h.address) for h in plan.hosts},
        aws=aws_summary,
        made_now=made_now,
    )
    (sdir / "lab.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


@dataclass
class DownReport:
    containers: list[str]
    networks: list[str]
    processes: list[int]
    host_table: bool
    images: list[str]


def down(config: StackConfig, *, images: bool = False) -> DownReport:
    plan = build_plan(config)
    containers = pm.container_names(plan.label)
    if containers:
        pm.podman("rm", "-f", "-t", "0", *containers)
    networks = pm.network_names(plan.label)
    if networks:
        pm.podman("network", "rm", "-f", *networks)
    pids = _moto_pids(plan)
    _stop_moto(plan)
    table = _host_table_exists(plan)
    if table:
        _sh(["nft", "delete", "table", "inet", plan.host_table], "control node guard")
    removed_images: list[str] = []
    if images:
        rows = pm.podman_json(
            "images", "--filter", f"label={image.IMAGE_LABEL}", "--format", "json"
        )
        for row in rows:
            pm.podman("rmi", "-f", row["Id"])
            removed_images += row.get("Names") or [row["Id"]]
    shutil.rmtree(state_dir(config.stack), ignore_errors=True)
    shutil.rmtree(operator_dir(config.stack), ignore_errors=True)
    return DownReport(containers, networks, pids, table, removed_images)


@dataclass
class HostStatus:
    name: str
    container: str
    zone: str
    role: str
    address: str
    state: str
    systemd: str
    sshd: str
    memory: str


def status(config: StackConfig) -> dict[str, Any]:
    plan = build_plan(config)
    mem: dict[str, str] = {}
    stats = pm.podman("stats", "--no-stream", "--format", "json", check=False)
    if stats.returncode == 0 and stats.stdout.strip():
        for row in json.loads(stats.stdout):
            mem[row.get("name", "")] = str(row.get("mem_usage", "")).split(" / ")[0]
    rows: list[HostStatus] = []
    entries = [(h.name, h.container, h.zone, h.role, str(h.address)) for h in plan.hosts]
    entries.append(
        ("router", plan.router, "*", "router", ",".join(str(a) for _, a in plan.router_legs))
    )
    for name, container, zone, role, address in entries:
        info = pm.inspect_container(container)
        running = bool(info and info.get("State", {}).get("Running"))
        state = "absent" if info is None else ("running" if running else "stopped")
        systemd = sshd = "-"
        if running:
            systemd = pm.exec_in(
                container, ["systemctl", "is-system-running"], check=False
            ).stdout.strip()
            sshd = pm.exec_in(
                container, ["systemctl", "is-active", "ssh"], check=False
            ).stdout.strip()
        rows.append(
            HostStatus(
                name, container, zone, role, address, state, systemd, sshd, mem.get(container, "-")
            )
        )
    router_rules = "-"
    if any(r.name == "router" and r.state == "running" for r in rows):
        listing = pm.exec_in(
            plan.router, ["nft", "list", "table", "inet", NFT_ROUTER_TABLE], check=False
        )
        router_rules = "loaded" if listing.returncode == 0 else "MISSING"
    moto = _moto_pids(plan)
    guard = _host_table_exists(plan)
    healthy = (
        all(r.state == "running" and r.systemd == "running" for r in rows)
        and all(r.sshd == "active" for r in rows if r.role != "router")
        and router_rules == "loaded"
        and bool(moto)
        and guard
    )
    return {
        "stack": config.stack,
        "healthy": healthy,
        "hosts": [asdict(r) for r in rows],
        "router_rules": router_rules,
        "moto_server": {"pids": moto, "address": f"{plan.moto_address}:{MOTO_PORT}"},
        "endpoint_url": plan.endpoint_url,
        "control_node_guard": guard,
        "state_dir": str(state_dir(config.stack)),
    }


def load(stack: str, config_file: Path | None = None) -> StackConfig:
    if config_file is not None:
        from infra.config import load_file

        return load_file(config_file)
    return load_stack(stack, REPO)
