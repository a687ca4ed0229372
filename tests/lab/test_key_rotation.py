"""Key rotation on the lab: every secret rotated through the phase machine, the new
credential tried and working, the old one tried and refused; faults injected (an sshd config
that fails validation, a host stopped mid-rotation, a database refusing the switch) with
nobody losing access and the ledger saying whether the rotation rolled back or resumed; the
fund's old key refused by sshd itself when its window ends; and no secret in the rotation's
output at -vvv --diff."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from infra.config import StackConfig
from lab import podman as pm
from lab.fleet import published
from lab.plan import LabPlan
from lab.rotation import (
    OPERATOR_ACCOUNT,
    OPERATOR_IDENTITY,
    Round,
    ensure_automation_key,
    ensure_user_ca,
    fund_adds_known_host,
    fund_known_fingerprints,
    fund_login,
    fund_logs_in,
    fund_makes_new_key,
    fund_switches,
    operator_cert_key,
    rotate_everything,
)
from ops.awsapi import Endpoint
from ops.playbook import BIN, run_playbook
from ops.rotation.aws_keys import identity, read_profiles
from ops.rotation.db_login import db_login_rotation, in_use
from ops.rotation.driver import Site
from ops.rotation.host_keys import KnownHosts, host_key_rotation
from ops.rotation.ledger import PHASES, Ledger
from ops.rotation.machine import Outcome, pending, rotate
from ops.rotation.reach import proxy_options, served_host_key
from ops.rotation.sftp_key import sftp_key_rotation
from ops.rotation.sshca import Certificate, UserCA, fingerprint, line_fingerprint, trusted
from ops.rotation.steps import Steps
from ops.rotation.user_ca import try_login
from ops.vault.client import vault_args
from ops.vault.scan import plaintext_secrets
from ops.vault.sealed import is_sealed, read_secret_text
from tests.lab.conftest import SiteRuns

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Before:
    """What the credentials were before everything was rotated (kept in memory only)."""

    host_keys: dict[str, str]
    db_login: str
    db_password: str
    tls_serial: int
    aws_pair: dict[str, str]
    old_ca_cert: Certificate
    secrets: list[str] = field(default_factory=list)  # values that must appear nowhere


@dataclass
class Rotated:
    site: Site
    plan: LabPlan
    before: Before
    first: list[Outcome]
    second: list[Outcome]
    output: str  # the driver's own stdout and stderr, and Ansible's -vvv --diff log


def _aws_pair(state: Path) -> dict[str, str]:
    return dict(read_profiles(state / "secrets" / "aws-credentials")["l0001"])


def _tls_serial(plan: LabPlan) -> int:
    """The serial the web host serves, from the LGWAN terminal over a fresh TLS connection."""
    app = plan.first("app")
    proc = pm.exec_in(
        plan.first("terminal").container,
        [
            "sh",
            "-c",
            f"openssl s_client -connect {app.address}:443 -servername {app.name} "
            "-verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial",
        ],
    )
    return int(proc.stdout.strip().removeprefix("serial="), 16)


APP_DB_CHECK = ["runuser", "-u", "claimapp", "--", "/opt/claimapp/current/bin/python", "-m",
                "claimapp.db", "check"]  # fmt: skip


def _db_check_as(plan: LabPlan, login: str, password: str) -> subprocess.CompletedProcess[str]:
    """The application host asks the database to admit `login` with `password`."""
    return pm.exec_in(plan.first("app").container, [*APP_DB_CHECK, "--as-login", login],
                      input_text=password + "\n", check=False)  # fmt: skip


def _app_session(plan: LabPlan) -> dict[str, Any]:
    """Who the application's own settings log in as, over a fresh connection."""
    return dict(json.loads(pm.exec_in(plan.first("app").container, APP_DB_CHECK).stdout))


def _ssh_with_only(
    key_line: str, host: str, address: str, tmp: Path, via: Path | None
) -> subprocess.CompletedProcess[str]:
    known = tmp / f"known-{host}"
    known.write_text(f"{host},{address} {key_line}\n")
    return subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            *proxy_options(via, address),
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlPath=none",
            "-o",
            "ConnectTimeout=10",
            f"nobody@{address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def rotated(converged: SiteRuns, lab_plan: LabPlan) -> Iterator[Rotated]:
    inventory = converged.inventory
    state = inventory.parent
    site = Site.read(inventory)
    ensure_user_ca(inventory)
    ensure_automation_key(state, lab_plan.endpoint_url, str(state / "pki" / "ca.crt"))
    known = KnownHosts(state / "known_hosts")
    login = in_use(state / "secrets")
    ca_dir = state / "ssh-ca"
    old_ca = next(
        UserCA(ca_dir, p.stem)
        for p in ca_dir.glob("user-ca-*.pub")
        if fingerprint(p) in trusted(ca_dir)
    )
    cert_key = operator_cert_key(state)
    old_cert = old_ca.issue(cert_key, OPERATOR_IDENTITY, [OPERATOR_ACCOUNT], "+2h")
    kept = cert_key.parent / "before-cert"  # the operator's, not the inventory's
    for src, dst in ((cert_key.with_suffix(""), kept), (old_cert.path, Path(f"{kept}-cert.pub"))):
        dst.write_bytes(src.read_bytes())
        dst.chmod(0o600)
    aws = _aws_pair(state)
    before = Before(
        host_keys={h: known.keys(h)[0] for h in site.hosts},
        db_login=login,
        db_password=read_secret_text(state / "secrets" / f"db-{login}").strip(),
        tls_serial=_tls_serial(lab_plan),
        aws_pair=aws,
        old_ca_cert=Certificate.read(Path(f"{kept}-cert.pub")),
    )
    log = state / "rotation" / "ansible.log"
    start = log.stat().st_size if log.exists() else 0
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        # A run that stops after the first pass (everything published, nothing confirmed)...
        first = Round(
            lab_plan, inventory, lab_plan.endpoint_url, str(state / "pki" / "ca.crt"),
            ansible_args=("-vvv", "--diff"),
        ).to_published()  # fmt: skip
        # ...and a demo run again: the stand-ins are prepared anew (the fund's key on record
        # stays the one the rotation published), and the same round resumes, not restarts.
        stand_ins = run_playbook(inventory, "lab_stand_ins.yml")
        assert stand_ins.ok, stand_ins.stdout[-2000:]
        resumed, second = rotate_everything(
            lab_plan,
            inventory,
            lab_plan.endpoint_url,
            str(state / "pki" / "ca.crt"),
            ansible_args=("-vvv", "--diff"),
        )
    assert [o.rotation for o in resumed if o.outcome == "ok"] == [
        o.rotation for o in first if o.outcome == "ok"
    ]
    with log.open() as f:
        f.seek(start)
        output = captured.getvalue() + f.read()
    new_login = in_use(state / "secrets")
    before.secrets = [
        before.db_password,
        read_secret_text(state / "secrets" / f"db-{new_login}").strip(),
        aws["aws_secret_access_key"],
        _aws_pair(state)["aws_secret_access_key"],
    ]
    yield Rotated(site, lab_plan, before, first, second, output)


def test_everything_is_rotated_through_every_phase_and_the_ledger_says_so(rotated: Rotated) -> None:
    assert all(o.outcome in ("ok", "checked") for o in rotated.first + rotated.second), [
        (o.secret, o.outcome, o.error) for o in rotated.first + rotated.second
    ]
    secrets = {o.secret for o in rotated.second if o.outcome == "ok"}
    assert secrets == {
        "ssh-user-ca",
        "db-login:claims_app",
        "tls:app-1",
        "aws-key:l0001",
        "sftp-key:fund",
        *(f"host-key:{h}" for h in rotated.site.hosts),
    }
    assert all(o.reached == "published" for o in rotated.first if o.outcome == "ok")
    entries = Ledger(rotated.site.state / "rotation" / "ledger.jsonl").entries()
    for o in rotated.second:
        if o.outcome != "ok":
            continue
        phases = [e.phase for e in entries if e.rotation == o.rotation and e.outcome == "ok"]
        assert phases == list(PHASES), (o.secret, phases)  # resumed, not restarted
        assert o.resumed_from == "published"


def test_the_rotation_told_the_fleet_board_when_each_secret_was_rotated(
    rotated: Rotated, lab_config: StackConfig, lab_endpoint: Endpoint
) -> None:
    status = published(lab_endpoint, lab_config, "operations", "control", "rotation")
    by_secret = {s["secret"]: s for s in status.body["secrets"]}
    recently = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    for o in rotated.second:
        if o.outcome == "ok":
            last = by_secret[o.secret]["last_rotated"]
            assert last and dt.datetime.fromisoformat(last) > recently, (o.secret, last)
    names = {c["name"] for c in status.body["certificates"]}
    assert {"internal-ca", "tls:app-1"} <= names


def test_every_host_presents_its_new_key_and_the_old_one_is_refused(
    rotated: Rotated, tmp_path: Path
) -> None:
    for host, address in rotated.site.hosts.items():
        old = rotated.before.host_keys[host]
        now = served_host_key(rotated.site.ssh_config, address)
        assert now != old
        assert KnownHosts(rotated.site.state / "known_hosts").keys(host) == [now]
        proc = _ssh_with_only(old, host, address, tmp_path, rotated.site.ssh_config)
        assert "Host key verification failed" in proc.stderr, proc.stderr


def test_the_application_uses_its_other_login_and_the_old_one_is_refused(rotated: Rotated) -> None:
    plan = rotated.plan
    now = _app_session(plan)
    assert now["session_user"] != rotated.before.db_login and now["current_user"] == "claims_app"
    refused = _db_check_as(plan, rotated.before.db_login, rotated.before.db_password)
    # NOLOGIN with no password: the server refuses at authentication, naming the login.
    assert refused.returncode == 1, refused.stdout
    assert f'password authentication failed for user "{rotated.before.db_login}"' in refused.stderr


def test_a_certificate_of_the_retired_ca_is_refused_and_one_of_the_new_ca_works(
    rotated: Rotated,
) -> None:
    state = rotated.site.state
    known = state / "known_hosts"
    addresses = list(rotated.site.hosts.values())
    old = rotated.before.old_ca_cert
    assert not any(
        try_login(old, a, known, OPERATOR_ACCOUNT, rotated.site.ssh_config) for a in addresses
    )
    new = Certificate.read(operator_cert_key(state).with_name("operator_cert_ed25519-cert.pub"))
    assert new.serial != old.serial
    assert all(
        try_login(new, a, known, OPERATOR_ACCOUNT, rotated.site.ssh_config) for a in addresses
    )


def test_the_web_host_serves_a_new_certificate_that_chains_to_the_internal_ca(
    rotated: Rotated,
) -> None:
    served = _tls_serial(rotated.plan)  # verified by the terminal against the lab CA
    pki = rotated.site.state / "pki"
    assert served != rotated.before.tls_serial
    assert served == x509.load_pem_x509_certificate((pki / "app-1.crt").read_bytes()).serial_number
    previous = x509.load_pem_x509_certificate((pki / "app-1.prev.crt").read_bytes())
    assert previous.serial_number == rotated.before.tls_serial  # kept for rollback


def test_the_old_aws_key_no_longer_signs_in(rotated: Rotated) -> None:
    endpoint = rotated.site.aws()
    now = _aws_pair(rotated.site.state)
    assert now["aws_access_key_id"] != rotated.before.aws_pair["aws_access_key_id"]
    assert identity(endpoint, now).endswith(":user/l0001")
    assert not identity(endpoint, rotated.before.aws_pair).endswith(":user/l0001")


def test_the_funds_old_key_is_refused_and_its_new_one_works(rotated: Rotated) -> None:
    assert fund_logs_in(rotated.plan)
    assert not fund_logs_in(rotated.plan, "id_ed25519.old")


def test_the_fund_was_told_of_the_intake_hosts_new_key_and_kept_delivering(
    rotated: Rotated,
) -> None:
    """The intake host's key waited at `published` for the fund; the fund's client learnt the
    announced key on a delivery (UpdateHostKeys), the fund confirmed, and after the switch its
    client holds the new key alone: it never failed a login."""
    intake = rotated.plan.first("intake")
    first = next(o for o in rotated.first if o.secret == f"host-key:{intake.name}")
    assert first.reached == "published" and "announced to fund" in first.note
    state = rotated.site.state
    sent = sorted((state / "rotation" / "notices" / "sent").glob(f"host-key-{intake.name}-*.txt"))
    assert sent, "the notice to the fund was not kept"
    notice = sent[-1].read_text(encoding="utf-8")
    served = served_host_key(rotated.site.ssh_config, str(intake.address))
    assert line_fingerprint(served) in notice and "御中" in notice and "Subject:" in notice
    switched = [e for e in Ledger(state / "rotation" / "ledger.jsonl").entries()
                if e.secret == f"host-key:{intake.name}" and e.phase == "switched"]  # fmt: skip
    assert "confirmation of fund" in switched[-1].note
    assert fund_known_fingerprints(rotated.plan) == {line_fingerprint(served)}
    assert fund_logs_in(rotated.plan)


def test_no_secret_appears_in_the_rotations_output_at_vvv_diff(rotated: Rotated) -> None:
    out = rotated.output
    # It is -vvv output, of every step: at -vvv each result carries the module's arguments.
    assert "TASK [key_rotation" in out and '"module_args"' in out
    assert "PRIVATE KEY" not in out
    for value in rotated.before.secrets:
        assert len(value) >= 20 and value not in out
    ledger = (rotated.site.state / "rotation" / "ledger.jsonl").read_text()
    assert "PRIVATE KEY" not in ledger
    assert not any(value in ledger for value in rotated.before.secrets)


def test_no_plaintext_secret_is_left_beside_the_inventory(rotated: Rotated) -> None:
    """After site.yml and a full rotation: every secret in the inventory directory is sealed,
    and no value of one (the retired ones included) is anywhere in plaintext."""
    state = rotated.site.state
    assert plaintext_secrets(state) == []
    sealed = [p for p in state.rglob("*") if p.is_file() and is_sealed(p)]
    names = {p.relative_to(state).as_posix() for p in sealed}
    assert {"secrets/aws-credentials", "pki/ca.key", "pki/app-1.key"} <= names, names
    assert any(n.startswith("ssh-ca/user-ca-") for n in names) and len(sealed) >= 10
    plain = [p.read_bytes() for p in state.rglob("*") if p.is_file() and p not in sealed]
    assert not [v for v in rotated.before.secrets for data in plain if v.encode() in data]
    # The scan fires on a secret left in plaintext, and names the file, not the value.
    probe = state / "rotation" / "left-behind.txt"
    probe.write_text(rotated.before.secrets[1] + "\n")
    try:
        found = plaintext_secrets(state)
    finally:
        probe.unlink()
    assert [str(f) for f in found] == [
        f"{probe}: a value of the sealed db-{in_use(state / 'secrets')} in plaintext"
    ]


# Faults. Each leaves the lab as it found it.


def _parts(rotated: Rotated) -> tuple[Ledger, Steps, KnownHosts]:
    state = rotated.site.state
    return (
        Ledger(state / "rotation" / "ledger.jsonl"),
        Steps(rotated.site.inventory, state / "rotation" / "ansible.log"),
        KnownHosts(state / "known_hosts"),
    )


def test_an_sshd_config_that_fails_validation_rolls_the_host_key_back(rotated: Rotated) -> None:
    ledger, steps, known = _parts(rotated)
    app = rotated.plan.first("app")
    before = served_host_key(rotated.site.ssh_config, str(app.address))
    pm.exec_in(app.container, ["sh", "-c", "echo 'NoSuchDirective yes' >> /etc/ssh/sshd_config"])
    try:
        rotation, _ = host_key_rotation(app.name, str(app.address), steps, known,
                                        rotated.site.state / "rotation", ledger,
                                        rotated.site.ssh_config)  # fmt: skip
        out = rotate(rotation, ledger)
    finally:
        pm.exec_in(app.container, ["sed", "-i", "/NoSuchDirective/d", "/etc/ssh/sshd_config"])
    assert out.outcome == "rolled-back" and "NoSuchDirective" in out.error, out.error
    last = ledger.last(f"host-key:{app.name}")
    assert last is not None and last.outcome == "rolled-back" and "switched failed" in last.note
    assert served_host_key(rotated.site.ssh_config, str(app.address)) == before and known.keys(
        app.name
    ) == [before]
    assert _ansible_ping(rotated, app.name)  # nobody lost access


def _rotate_cli(rotated: Rotated, *args: str) -> dict[str, Any]:
    """The operator's command, as documented, with --json after the subcommand."""
    proc = subprocess.run(
        [sys.executable, "-m", "ops.rotation", "-i", str(rotated.site.inventory), "rotate",
         *args, "--json"],
        capture_output=True, text=True, timeout=1800, check=False, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    result = dict(json.loads(proc.stdout))
    result["returncode"] = proc.returncode
    return result


def _by_secret(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["secret"]: o for o in result["outcomes"]}


def test_a_resume_continues_only_what_stopped(rotated: Rotated) -> None:
    """`rotate host-keys db-login` taken to published, db-1 stopped, the same command run again
    (db-1's key and the login stop, the others finish), then once more: only db-1's key and
    the login move; the finished host keys are not rotated a second time, and the intake
    host's waits for the fund throughout. (Three hosts, one of each case: --limit.)"""
    site, plan = rotated.site, rotated.plan
    db, intake, app = plan.first("db"), plan.first("intake"), plan.first("app")
    limit = ("--limit", f"{db.name},{intake.name},{app.name}")
    published = _rotate_cli(rotated, "host-keys", "db-login", *limit, "--early", "--until",
                            "published")  # fmt: skip
    assert {o["reached"] for o in published["outcomes"]} == {"published"}, published
    pm.exec_in(db.container, ["systemctl", "stop", "ssh"])  # db-1 unreachable for operators
    try:
        stopped = _by_secret(_rotate_cli(rotated, "host-keys", "db-login", *limit))
    finally:
        pm.exec_in(db.container, ["systemctl", "start", "ssh"])
    assert stopped[f"host-key:{db.name}"]["outcome"] == "interrupted"
    assert stopped["db-login:claims_app"]["outcome"] == "interrupted"
    finished = [app.name]
    assert all(stopped[f"host-key:{h}"]["reached"] == "retired" for h in finished), stopped
    waiting = stopped[f"host-key:{intake.name}"]
    assert waiting["outcome"] == "ok" and waiting["reached"] == "published"
    assert "--partner-confirmed fund" in waiting["note"]
    served = {h: served_host_key(site.ssh_config, a) for h, a in site.hosts.items()}
    again = _rotate_cli(rotated, "host-keys", "db-login", *limit)
    resumed = _by_secret(again)
    assert set(resumed) == set(stopped)  # --limit: bastion-1 is not touched at all
    assert again["returncode"] == 0
    for secret in (f"host-key:{db.name}", "db-login:claims_app"):
        assert resumed[secret]["outcome"] == "ok" and resumed[secret]["reached"] == "retired"
        assert resumed[secret]["rotation"] == stopped[secret]["rotation"]  # the same rotation
    for h in finished:
        assert resumed[f"host-key:{h}"]["outcome"] == "not-due", resumed[f"host-key:{h}"]
        assert served_host_key(site.ssh_config, site.hosts[h]) == served[h]  # untouched
    assert resumed[f"host-key:{intake.name}"]["reached"] == "published"
    assert served_host_key(site.ssh_config, str(intake.address)) == served[intake.name]
    assert KnownHosts(site.state / "known_hosts").keys(db.name) == [
        served_host_key(site.ssh_config, str(db.address))
    ]


def test_an_intake_key_switched_before_the_fund_knows_it_fails_the_delivery_clearly(
    rotated: Rotated,
) -> None:
    """Forced early (--switch-now) while the fund has not seen the announced key: its next
    delivery fails with OpenSSH's own "Host key verification failed", as the tool warned;
    once the fund adds the line the notice gives, it delivers again."""
    plan, state = rotated.plan, rotated.site.state
    intake = plan.first("intake")
    secret = f"host-key:{intake.name}"
    if pending(Ledger(state / "rotation" / "ledger.jsonl"), secret) is None:
        _rotate_cli(rotated, "host-keys", "--limit", intake.name, "--early", "--until",
                    "published")  # fmt: skip
    forced = _by_secret(_rotate_cli(rotated, "host-keys", "--limit", intake.name,
                                    "--switch-now"))[secret]  # fmt: skip
    assert forced["outcome"] == "ok" and forced["reached"] == "retired", forced
    last = Ledger(state / "rotation" / "ledger.jsonl").entries()
    note = next(e.note for e in reversed(last) if e.secret == secret and e.phase == "switched")
    assert "--switch-now" in note and "Host key verification failed" in note
    refused = fund_login(plan)
    assert refused.returncode != 0 and "Host key verification failed" in refused.stderr
    sent = sorted((state / "rotation" / "notices" / "sent").glob(f"host-key-{intake.name}-*.txt"))
    line = next(ln.strip() for ln in sent[-1].read_text(encoding="utf-8").splitlines()
                if ln.strip().startswith(f"{intake.name},"))  # fmt: skip
    fund_adds_known_host(plan, line)  # what the notice asks the fund to do by hand
    assert fund_login(plan).returncode == 0


def test_a_database_refusing_the_switch_rolls_the_login_back(rotated: Rotated) -> None:
    ledger, steps, _ = _parts(rotated)
    secrets = rotated.site.state / "secrets"
    db = rotated.plan.first("db")
    serving = in_use(secrets)
    published = rotate(db_login_rotation(steps, secrets, ledger), ledger, until="published")
    assert published.outcome == "ok"
    # The database refuses the new login from here on (a DBA's change the rotation did not
    # expect); the switch asks before it moves the application.
    pm.exec_in(
        db.container,
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-Xq",
            "-c",
            f'ALTER ROLE "{published.new}" NOLOGIN',
        ],
    )
    out = rotate(db_login_rotation(steps, secrets, ledger), ledger)
    assert out.outcome == "rolled-back" and "switched failed" in out.error, out.error
    assert in_use(secrets) == serving and not (secrets / f"db-{published.new}").exists()
    now = _app_session(rotated.plan)
    assert now["session_user"] == serving  # the application never moved
    last = ledger.last("db-login:claims_app")
    assert last is not None and last.outcome == "rolled-back"


def test_the_funds_old_key_is_refused_by_sshd_when_the_window_ends(rotated: Rotated) -> None:
    ledger, steps, _ = _parts(rotated)
    state = rotated.site.state
    plan = rotated.plan
    pm.exec_in(
        plan.first("sender").container,
        ["rm", "-f", "/home/fund/.ssh/id_ed25519.new", "/home/fund/.ssh/id_ed25519.new.pub"],
    )
    sent = fund_makes_new_key(plan, state)
    window = dt.timedelta(hours=2)
    rotation, stop = sftp_key_rotation(
        state, steps, ledger, new_key=sent, window=window, confirmed=False
    )
    assert stop == "published"
    assert rotate(rotation, ledger, until=stop).outcome == "ok"
    assert fund_logs_in(plan) and fund_logs_in(plan, "id_ed25519.new")  # both, in the window
    # The window ends (the end moved to a minute ago); sshd refuses the old key by itself.
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    (state / "fund_sftp.retiring.until").write_text(ended.strftime("%Y%m%d%H%M") + "\n")
    fps = [rotation.new, rotation.old]
    steps.run("sftp-keys", "role_intake", key_rotation_sftp_fingerprints=fps)
    assert not fund_logs_in(plan) and fund_logs_in(plan, "id_ed25519.new")
    # The next run retires it without the fund's confirmation: the window has ended.
    rotation, stop = sftp_key_rotation(
        state, steps, ledger, new_key=None, window=window, confirmed=False
    )
    assert stop == "retired"
    out = rotate(rotation, ledger, until=stop)
    assert out.outcome == "ok" and out.reached == "retired"
    assert not (state / "fund_sftp.retiring.pub").exists()
    fund_switches(plan)  # the fund moves to its new key, for the tests after this one
    assert fund_logs_in(plan)


def _ansible_ping(rotated: Rotated, host: str) -> bool:
    proc = subprocess.run(
        [
            str(BIN / "ansible"),
            "-i",
            str(rotated.site.inventory),
            *vault_args(rotated.site.state),
            host,
            "-m",
            "ansible.builtin.ping",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPath=none"},
    )
    return proc.returncode == 0
