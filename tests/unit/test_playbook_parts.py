"""The parts of the Ansible install that can be checked without hosts: the SCRAM filter
against a real PostgreSQL, the host firewall template against the flow policy, the bundle's
signature and digests, and the playbook recap parser."""

from __future__ import annotations

import hashlib
import importlib.util
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from infra.config import load_stack
from ops import bundle
from ops.inventory.generate import stack_vars
from ops.inventory.operators import Operator
from ops.inventory.outputs import load_outputs
from ops.playbook import parse_recap
from tests.conftest import render_template
from tests.support.inventory import write_outputs

REPO = Path(__file__).resolve().parents[2]


def _filters() -> Any:
    spec = importlib.util.spec_from_file_location(
        "claims_dc_filters", REPO / "playbooks" / "filter_plugins" / "claims_dc.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- SCRAM verifiers -------------------------------------------------------------------------


def test_scram_verifier_is_accepted_by_postgresql(postgres: dict[str, str]) -> None:
    scram = _filters().scram_sha256
    owner_dsn = postgres["owner"]
    password = conninfo_to_dict(owner_dsn)["password"]
    assert isinstance(password, str)
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        # A verifier of another password: the real one no longer logs in (the check fires).
        wrong = scram("not-" + password, secrets.token_hex(16))
        conn.execute(f"ALTER ROLE claims_owner PASSWORD '{wrong}'")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(owner_dsn).close()
        # The verifier of the real password, with a new salt: it logs in again.
        right = scram(password, secrets.token_hex(16))
        conn.execute(f"ALTER ROLE claims_owner PASSWORD '{right}'")
    psycopg.connect(owner_dsn).close()


def test_scram_verifier_is_deterministic_and_refuses_a_short_salt() -> None:
    scram = _filters().scram_sha256
    salt = "00" * 16
    assert scram("pencil", salt) == scram("pencil", salt)
    assert scram("pencil", salt) != scram("pencil", "01" * 16)
    assert scram("pencil", salt).startswith("SCRAM-SHA-256$4096:AAAAAAAAAAAAAAAAAAAAAA==$")
    with pytest.raises(ValueError, match="16 bytes"):
        scram("pencil", "00" * 8)


# --- the host firewall template --------------------------------------------------------------


def _stack_vars(tmp: Path) -> dict[str, Any]:
    config = load_stack("lab", REPO)
    outputs = load_outputs(write_outputs(config, tmp / "outputs.json"), config)
    operator = Operator("opsadmin", "L0001", "L0001", ("ssh-ed25519 AAAA",))
    return stack_vars(config, outputs, [operator], operator, tmp)


def _render_firewall(zone: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        inv = _stack_vars(Path(tmp))
    role = REPO / "playbooks" / "roles" / "firewall"
    values = {
        "inventory_hostname": f"{zone}-host",
        "firewall_zone": zone,
        "firewall_zones": inv["claims_dc_zones"],
        "firewall_flows": inv["claims_dc_flows"],
        "firewall_admin_sources": [],
        "firewall_admin_port": 22,
        "firewall_log_rate": "10/minute",
    }
    return render_template(role / "templates" / "nftables.conf.j2", values)


@pytest.mark.parametrize("zone", ["app", "db", "intake", "mgmt", "endpoints"])
def test_firewall_rules_are_exactly_the_zones_flows(zone: str) -> None:
    config = load_stack("lab", REPO)
    text = _render_firewall(zone)
    accepts = {
        line.split(" comment ")[0].strip()
        for line in text.splitlines()
        if "ct state new accept" in line
    }
    want = set()
    for src, dst, port, _ in sorted(config.allowed()):
        if dst == zone:
            want.add(f"ip saddr {config.zones[src].cidr} tcp dport {port} ct state new accept")
        if src == zone:
            want.add(f"ip daddr {config.zones[dst].cidr} tcp dport {port} ct state new accept")
    assert want, f"the policy gives zone {zone} no flow at all"
    assert accepts == want
    assert "policy drop;" in text.split("chain input")[1].split("}")[0]
    assert "policy drop;" in text.split("chain output")[1].split("}")[0]


def test_firewall_for_the_database_refuses_the_terminal_zone() -> None:
    text = _render_firewall("db")
    assert "10.232.1.0/24" not in text  # lgwan never reaches the database
    assert "tcp dport 5432" in text


@pytest.mark.skipif(shutil.which("nft") is None, reason="no nft")
def test_firewall_ruleset_passes_nft_check(tmp_path: Path) -> None:
    path = tmp_path / "nftables.conf"
    path.write_text(_render_firewall("app"))
    proc = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # ...and the check does fire on a broken ruleset.
    path.write_text(_render_firewall("app").replace("policy drop;", "policy sometimes;", 1))
    assert subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True).returncode != 0


def test_the_inventory_carries_the_flow_policy(tmp_path: Path) -> None:
    inv = _stack_vars(tmp_path)
    assert inv["claims_dc_zones"]["db"] == "10.231.20.0/24"
    sftp = [f for f in inv["claims_dc_flows"] if f["service"] == "sftp"]
    assert sftp == [
        {
            "from": ["fund"],
            "to": ["intake"],
            "port": 22,
            "protocol": "tcp",
            "service": "sftp",
            "why": "the fund delivers claim files",
        }
    ]


# --- the bundle --------------------------------------------------------------------------------


def _fake_bundle(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "a-1.0-py3-none-any.whl").write_bytes(b"wheel a")
    (out / "requirements.txt").write_text("a==1.0 --hash=sha256:00\n")
    sums = [
        f"{hashlib.sha256((out / n).read_bytes()).hexdigest()}  {n}"
        for n in ("a-1.0-py3-none-any.whl", "requirements.txt")
    ]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    key = bundle.ensure_signing_key(tmp_path / "keys" / "signing")
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", bundle.NAMESPACE, "SHA256SUMS"],
        cwd=out,
        check=True,
        capture_output=True,
    )
    return out, bundle.allowed_signers(key)


def test_an_intact_signed_bundle_verifies(tmp_path: Path) -> None:
    out, signers = _fake_bundle(tmp_path)
    assert bundle.verify(out, signers) == []
    assert (tmp_path / "keys" / "signing").stat().st_mode & 0o777 == 0o600


def test_a_tampered_wheel_is_refused(tmp_path: Path) -> None:
    out, signers = _fake_bundle(tmp_path)
    (out / "a-1.0-py3-none-any.whl").write_bytes(b"wheel a, with something added")
    assert bundle.verify(out, signers) == ["a-1.0-py3-none-any.whl: changed since it was signed"]


def test_an_unlisted_wheel_is_refused(tmp_path: Path) -> None:
    out, signers = _fake_bundle(tmp_path)
    (out / "b-1.0-py3-none-any.whl").write_bytes(b"smuggled")
    assert bundle.verify(out, signers) == [
        "b-1.0-py3-none-any.whl: a wheel not listed in SHA256SUMS"
    ]


def test_a_bundle_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    out, _ = _fake_bundle(tmp_path)
    other = bundle.ensure_signing_key(tmp_path / "other" / "signing")
    problems = bundle.verify(out, bundle.allowed_signers(other))
    assert len(problems) == 1 and "signature does not verify" in problems[0]


def test_a_rewritten_manifest_is_refused(tmp_path: Path) -> None:
    out, signers = _fake_bundle(tmp_path)
    (out / "a-1.0-py3-none-any.whl").write_bytes(b"evil")
    digest = hashlib.sha256(b"evil").hexdigest()
    sums = (out / "SHA256SUMS").read_text().splitlines()
    sums[0] = f"{digest}  a-1.0-py3-none-any.whl"
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    problems = bundle.verify(out, signers)
    assert len(problems) == 1 and "signature does not verify" in problems[0]


def test_the_version_follows_the_sources() -> None:
    assert bundle.version() == f"{bundle.BASE_VERSION}+src.{bundle.source_digest()}"


# --- the playbook recap --------------------------------------------------------------------------


def test_parse_recap() -> None:
    out = (
        "TASK [x]\nok: [a]\n\nPLAY RECAP *****\n"
        "app-1   : ok=5    changed=2    unreachable=0    failed=0    skipped=1    rescued=0"
        "    ignored=0   \n"
        "db-1    : ok=3    changed=0    unreachable=1    failed=0    skipped=0    rescued=0"
        "    ignored=0\n"
    )
    recap = parse_recap(out)
    assert recap["app-1"]["changed"] == 2
    assert recap["db-1"]["unreachable"] == 1


def test_role_defaults_parse() -> None:
    for defaults in (REPO / "playbooks" / "roles").glob("*/defaults/main.yml"):
        assert isinstance(yaml.safe_load(defaults.read_text()), dict), defaults


# --- the backup role ----------------------------------------------------------------------------


ROLES = REPO / "playbooks" / "roles"


def _backup_values(**extra: Any) -> dict[str, Any]:
    import yaml

    values = yaml.safe_load((ROLES / "backup" / "defaults" / "main.yml").read_text())
    db_vars = yaml.safe_load((REPO / "playbooks" / "group_vars" / "role_db.yml").read_text())
    values.update(
        inventory_hostname="db-1",
        backup_repository_url="s3://claims-dc-999997-lab-backup-123456789012/db",
        backup_endpoint_url="https://10.231.50.10",
        backup_ca_cert="-----BEGIN CERTIFICATE-----",
        backup_kms_key_id="arn:aws:kms:ap-northeast-1:123456789012:key/k",
        backup_sources=db_vars["backup_sources"],
    )
    values.update(extra)
    return values


def test_the_backup_settings_render_to_what_the_tool_accepts() -> None:
    import tomllib

    from ops.backuplib import settings

    text = render_template(ROLES / "backup" / "templates" / "backup.toml.j2", _backup_values())
    s = settings.from_dict(tomllib.loads(text), "backup.toml")
    assert s.url.endswith("/db") and s.kms_key_id and s.ca_bundle == "/etc/claims-dc/backup/ca.crt"
    assert [(x.name, x.kind) for x in s.sources] == [
        ("claims-db", "postgres"),
        ("postgresql-config", "files"),
    ]
    assert s.sources[0].run_as == "postgres" and s.lock_days == 35


def test_the_backup_unit_is_sandboxed_and_hooks_its_failure() -> None:
    unit = render_template(
        ROLES / "backup" / "templates" / "claims-dc-backup.service.j2", _backup_values()
    )
    for line in (
        "OnFailure=claims-dc-backup-failed.service",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/claims-dc-backup",
        "ExecStart=/usr/local/sbin/claims-dc-backup --quiet run",
        "ExecStart=/usr/local/sbin/claims-dc-backup --quiet verify --read-data --subset 5%",
    ):
        assert line in unit.splitlines()
    timer = render_template(
        ROLES / "backup" / "templates" / "claims-dc-backup.timer.j2", _backup_values()
    )
    assert "Persistent=true" in timer and "RandomizedDelaySec=30min" in timer


def test_lab_placeholder_credentials_only_when_asked() -> None:
    wrapper = ROLES / "backup" / "templates" / "claims-dc-backup.sh.j2"
    assert "AWS_CONFIG_FILE" not in render_template(wrapper, _backup_values())
    assert "AWS_CONFIG_FILE" in render_template(
        wrapper, _backup_values(backup_aws_placeholder_credentials=True)
    )
