"""site.yml on the lab: converges fresh hosts, changes nothing the second time, and leaves
hosts whose services, files, sshd, pg_hba and firewalls are what the roles promise."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra

from infra.config import StackConfig
from lab import lab
from lab import podman as pm
from lab.plan import LabPlan
from lab.probes import observe, start_policy_listeners, stop_policy_listeners
from ops.rotation.db_login import in_use
from tests.lab.conftest import SiteRuns, changed_tasks

pytestmark = pytest.mark.lab


def test_check_mode_on_fresh_hosts_runs_without_error(site_runs: SiteRuns) -> None:
    run = site_runs.check_fresh
    assert run.ok, run.stdout[-4000:] + run.stderr[-2000:]
    # It did look at every data-center host, and foresaw changes on each.
    assert set(run.recap) == {"app-1", "db-1", "intake-1", "bastion-1"}
    assert all(n > 0 for n in run.changed().values()), run.summary()


def test_converge_from_fresh(site_runs: SiteRuns) -> None:
    run = site_runs.converge
    assert run.ok, run.stdout[-4000:] + run.stderr[-2000:]
    assert all(n > 0 for n in run.changed().values()), run.summary()


def test_second_run_changes_nothing(converged: SiteRuns) -> None:
    run = converged.rerun
    assert run.ok, run.stdout[-3000:]
    assert run.changed() == dict.fromkeys(run.recap, 0), run.summary()


# What check mode may foresee on converged hosts whose database passwords were replaced by
# canaries (conftest.canary_check): the files that hold them, and the restart they cause.
PASSWORD_TASKS = {
    "claim_app : Write the login's password file",
    "claim_app : Write the owner's password file (root only)",
    "claim_app : Restart the web application",
}


def test_check_mode_after_converge_foresees_only_the_changed_passwords(
    converged: SiteRuns,
) -> None:
    run = converged.check_converged
    assert run.ok, run.stdout[-3000:]
    changed = changed_tasks(run.stdout)
    assert {t for t, _ in changed} <= PASSWORD_TASKS, sorted(changed)
    assert ("claim_app : Write the login's password file", "app-1") in changed
    assert sum(run.changed().values()) == len(changed), run.summary()
    assert run.changed()["bastion-1"] == 0 and run.changed()["db-1"] == 0


# --- the hosts, as testinfra sees them over SSH -------------------------------------------


@pytest.fixture(scope="module")
def hosts(converged: SiteRuns) -> dict[str, Any]:
    ssh_config = converged.inventory.parent / "ssh_config"
    return {
        name: testinfra.get_host(f"ssh://{name}", ssh_config=str(ssh_config), sudo=True)
        for name in ("app-1", "db-1", "intake-1", "bastion-1")
    }


@pytest.mark.parametrize(
    ("name", "services"),
    [
        ("app-1", ["ssh", "nftables", "nginx", "claimapp-web"]),
        ("db-1", ["ssh", "nftables", "postgresql@15-main"]),
        ("intake-1", ["ssh", "nftables", "claimapp-intake.path"]),
        ("bastion-1", ["ssh", "nftables"]),
    ],
)
def test_services_run_and_start_at_boot(
    hosts: dict[str, Any], name: str, services: list[str]
) -> None:
    for service in services:
        unit = hosts[name].service(service)
        assert unit.is_enabled, f"{name}: {service} not enabled"
        assert unit.is_running or service == "nftables", f"{name}: {service} not running"
    # nftables is a oneshot that loads the ruleset; what matters is that the table is there.
    assert hosts[name].run("nft list table inet claims_dc_host").rc == 0
    assert hosts[name].run("systemctl --failed --no-legend").stdout.strip() == ""


def _listening(host: Any) -> set[str]:
    return {line.split()[3] for line in host.check_output("ss -Htln").splitlines() if line.strip()}


def test_listening_sockets_are_exactly_the_services(hosts: dict[str, Any]) -> None:
    assert _listening(hosts["app-1"]) == {"0.0.0.0:22", "10.231.10.10:443", "127.0.0.1:8000"}
    assert _listening(hosts["db-1"]) == {"0.0.0.0:22", "10.231.20.10:5432", "127.0.0.1:5432"}
    assert _listening(hosts["intake-1"]) == {"0.0.0.0:22"}
    assert _listening(hosts["bastion-1"]) == {"0.0.0.0:22"}


@pytest.mark.parametrize(
    ("name", "path", "user", "group", "mode"),
    [
        ("app-1", "/etc/claimapp/db-password", "claimapp", "claimapp", 0o600),
        ("app-1", "/etc/claimapp/owner.pgpass", "root", "root", 0o600),
        ("app-1", "/usr/local/sbin/claimapp-owner", "root", "root", 0o700),
        ("app-1", "/etc/claimapp/claimapp.toml", "root", "claimapp", 0o640),
        ("app-1", "/etc/nginx/tls/claimapp.key", "root", "root", 0o600),
        ("db-1", "/etc/postgresql/15/main/tls/server.key", "postgres", "postgres", 0o600),
        ("db-1", "/etc/postgresql/15/main/pg_hba.conf", "postgres", "postgres", 0o640),
        ("intake-1", "/etc/claimapp/db-password", "claimapp", "claimapp", 0o600),
        ("intake-1", "/srv/sftp/fund", "root", "root", 0o755),
        ("intake-1", "/srv/sftp/fund/incoming", "fund", "claimapp", 0o2770),
        ("intake-1", "/etc/ssh/authorized_keys/fund", "root", "root", 0o644),
        ("bastion-1", "/etc/ssh/sshd_config", "root", "root", 0o600),
        ("bastion-1", "/etc/sudoers.d/claims-dc-operators", "root", "root", 0o440),
        ("bastion-1", "/etc/nftables.conf", "root", "root", 0o600),
    ],
)
def test_file_modes(
    hosts: dict[str, Any], name: str, path: str, user: str, group: str, mode: int
) -> None:
    f = hosts[name].file(path)
    assert f.exists, f"{name}:{path} missing"
    assert (f.user, f.group, f.mode) == (user, group, mode), f"{name}:{path}"


def test_no_host_keeps_the_owner_password_but_the_owner_host(hosts: dict[str, Any]) -> None:
    for name in ("db-1", "intake-1", "bastion-1"):
        assert not hosts[name].file("/etc/claimapp/owner.pgpass").exists


@pytest.mark.parametrize("name", ["app-1", "db-1", "intake-1", "bastion-1"])
def test_sshd_effective_config(hosts: dict[str, Any], name: str) -> None:
    lines = [line.split(" ", 1) for line in hosts[name].check_output("sshd -T").splitlines()]
    effective = dict(lines)
    # sshd -T prints one line per AllowGroups entry.
    effective["allowgroups"] = " ".join(v for k, v in lines if k == "allowgroups")
    assert effective["permitrootlogin"] == "no"
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["authenticationmethods"] == "publickey"
    assert effective["allowtcpforwarding"] == "no"
    assert effective["x11forwarding"] == "no"
    # the operators, the access review's service account (its key runs the probe only) and, on
    # the intake host, the fund's SFTP-only group
    want_groups = "operators claims-dc-review" + (" sftp-fund" if name == "intake-1" else "")
    assert effective["allowgroups"] == want_groups


def test_sshd_refuses_passwords_and_root(lab_up: Any) -> None:
    sdir = Path(lab_up.state_dir)
    for user, extra in (("opsadmin", ["-o", "PubkeyAuthentication=no"]), ("root", [])):
        proc = subprocess.run(
            ["ssh", "-F", str(sdir / "ssh_config"), "-o", "BatchMode=yes", *extra,
             f"{user}@db-1", "true"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert proc.returncode == 255 and "Permission denied" in proc.stderr, proc.stderr


def test_pg_hba_admits_only_the_application_hosts_over_tls(hosts: dict[str, Any]) -> None:
    rules = hosts["db-1"].check_output(
        "runuser -u postgres -- psql -XtA -F'|' -c "
        "\"SELECT type, array_to_string(database, ','), array_to_string(user_name, ','), "
        "coalesce(address, ''), auth_method FROM pg_hba_file_rules ORDER BY line_number\""
    )
    assert rules.splitlines() == [
        "local|all|postgres||peer",
        "local|replication|postgres||peer",
        "local|all|all||reject",
        "hostssl|claims|+claims_app|10.231.10.10|scram-sha-256",
        "hostssl|claims|+claims_app|10.231.30.10|scram-sha-256",
        "hostssl|claims|claims_owner|10.231.10.10|scram-sha-256",
        "host|all|all|0.0.0.0|reject",
        "host|all|all|::|reject",
    ]
    settings = hosts["db-1"].check_output(
        "runuser -u postgres -- psql -XtA -c \"SELECT name || '=' || setting FROM pg_settings "
        "WHERE name IN ('ssl', 'password_encryption', 'ssl_min_protocol_version') ORDER BY 1\""
    )
    assert settings.splitlines() == [
        "password_encryption=scram-sha-256",
        "ssl=on",
        "ssl_min_protocol_version=TLSv1.2",
    ]


def test_the_application_role_is_not_owner_or_superuser(
    hosts: dict[str, Any], converged: SiteRuns
) -> None:
    out = hosts["db-1"].check_output(
        "runuser -u postgres -- psql -XtA -F'|' -c \"SELECT rolname, rolsuper, rolcreaterole, "
        "rolcreatedb, rolcanlogin, pg_has_role(oid, 'claims_app', 'MEMBER') "
        "FROM pg_roles WHERE rolname LIKE 'claims%' ORDER BY 1\""
    )
    # The application's grants are claims_app's, which cannot log in; the application logs
    # in as one of its two logins (the one a key rotation left in use), the other disabled.
    serving = in_use(converged.inventory.parent / "secrets")
    assert out.splitlines() == [
        "claims_app|f|f|f|f|t",
        f"claims_app_a|f|f|f|{'t' if serving == 'claims_app_a' else 'f'}|t",
        f"claims_app_b|f|f|f|{'t' if serving == 'claims_app_b' else 'f'}|t",
        "claims_owner|f|f|f|t|f",
    ]
    owner = hosts["db-1"].check_output(
        "runuser -u postgres -- psql -XtA -c "
        "\"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'claims'\""
    )
    assert owner.strip() == "claims_owner"


def test_the_release_came_from_the_verified_bundle(hosts: dict[str, Any]) -> None:
    from ops.bundle import version

    current = hosts["app-1"].file("/opt/claimapp/current")
    assert current.is_symlink and current.linked_to == f"/opt/claimapp/releases/{version()}"
    # No package index is configured or reachable: pip could only have used the wheelhouse.
    freeze = hosts["app-1"].check_output("/opt/claimapp/current/bin/pip freeze")
    assert f"claimapp=={version()}" in freeze


def test_no_update_job_can_reach_out(hosts: dict[str, Any]) -> None:
    for name in ("app-1", "bastion-1"):
        h = hosts[name]
        assert h.run("systemctl is-enabled apt-daily.timer").stdout.strip() == "masked"
        assert h.run("systemctl is-enabled apt-daily-upgrade.timer").stdout.strip() == "masked"
        sources = h.file("/etc/apt/sources.list").content_string
        assert "http" not in sources


def test_the_journal_persists(hosts: dict[str, Any]) -> None:
    assert hosts["db-1"].file("/var/log/journal").is_directory
    assert hosts["db-1"].run("ls /var/log/journal/*/system.journal").rc == 0


# --- each host's own firewall, with the router out of the way -------------------------------


@pytest.fixture
def router_open(lab_config: StackConfig, lab_plan: LabPlan, converged: SiteRuns) -> Iterator[None]:
    """The router forwards everything for the duration of one test, as a misconfigured network
    would; the policy's ruleset goes back afterwards whatever happens."""
    pm.exec_in(
        lab_plan.router,
        ["nft", "insert", "rule", "inet", "claims_dc_router", "forward", "accept"],
    )
    try:
        yield
    finally:
        lab.apply_router_rules(lab_config, lab_plan)


def test_host_firewalls_alone_enforce_the_flow_policy(
    router_open: None, lab_config: StackConfig, lab_plan: LabPlan
) -> None:
    ports = [22, 443, 5432, 8080]
    start_policy_listeners(lab_plan, ports)
    try:
        observed = observe(lab_plan, ports)
    finally:
        stop_policy_listeners(lab_plan)
    firewalled = {h for h, cfg in lab_config.hosts.items() if not cfg.stand_in}
    bad = []
    checked = 0
    for (src, dst, port), outcome in sorted(observed.items()):
        if src not in firewalled and dst not in firewalled:
            continue  # two outside parties: only the network separates them
        checked += 1
        allowed = lab_config.is_allowed(
            lab_config.hosts[src].zone, lab_config.hosts[dst].zone, port
        )
        if allowed != (outcome == "open"):
            bad.append(
                f"{src} -> {dst}:{port}: {outcome}, policy {'allows' if allowed else 'denies'}"
            )
        if not allowed and outcome not in ("EHOSTUNREACH", "EPERM", "EACCES"):
            bad.append(f"{src} -> {dst}:{port}: {outcome}, not refused by a firewall")
    assert checked > 100
    assert bad == []


def test_the_router_is_back_after_the_open_test(lab_plan: LabPlan) -> None:
    ruleset = pm.exec_in(lab_plan.router, ["nft", "list", "chain", "inet", "claims_dc_router",
                                           "forward"]).stdout  # fmt: skip
    assert "\n\t\taccept\n" not in ruleset


def test_the_fund_key_is_refused_from_outside_the_fund_zone(
    converged: SiteRuns, lab_plan: LabPlan
) -> None:
    """The bastion may reach the intake host's SSH (mgmt -> intake), but the fund's own key,
    presented from there, is refused: authorized_keys admits it from the fund's zone only."""
    key = pm.exec_in(lab_plan.host("sender-1").container, ["cat", "/home/fund/.ssh/id_ed25519"])
    bastion = lab_plan.host("bastion-1").container
    pm.exec_in(bastion, ["sh", "-c", "umask 077; cat > /tmp/fund_key"], input_text=key.stdout)
    try:
        proc = pm.exec_in(
            bastion,
            ["ssh", "-i", "/tmp/fund_key", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "fund@10.231.30.10", "true"],
            check=False, timeout=30,
        )  # fmt: skip
    finally:
        pm.exec_in(bastion, ["rm", "-f", "/tmp/fund_key"])
    assert proc.returncode == 255 and "Permission denied" in proc.stderr, proc.stderr


@pytest.mark.parametrize("unit", ["claimapp-web.service", "claimapp-intake.service"])
def test_the_application_units_are_sandboxed(hosts: dict[str, Any], unit: str) -> None:
    host = hosts["app-1" if "web" in unit else "intake-1"]
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {unit} -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome "
            "-p PrivateTmp -p PrivateDevices -p CapabilityBoundingSet"
        ).splitlines()
    )
    assert props == {
        "User": "claimapp",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
    }
