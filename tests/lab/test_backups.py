"""The daily backup on the lab: the hosts' own timer unit backs up the database, the claim
files and the settings into the lab's Object Lock bucket through the endpoint; the objects
cannot be deleted; a restore drill matches the live database; a failure is seen."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import StackConfig
from lab import backups
from lab import podman as pm
from lab.delivery import db_scalar
from lab.fleet import published
from lab.lab import UpReport
from lab.plan import LabPlan
from ops.awsapi import Endpoint
from ops.playbook import PlaybookRun, run_playbook
from tests.lab.conftest import SiteRuns

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def daily(converged: SiteRuns) -> PlaybookRun:
    run = run_playbook(str(converged.inventory), "daily_backup.yml")
    assert run.ok, run.stdout[-3000:] + run.stderr[-1500:]
    return run


def sh(host: Any, script: str, check: bool = True) -> str:
    return pm.exec_in(host.container, ["bash", "-c", script], check=check).stdout


def test_each_data_host_made_a_snapshot_of_its_sources(
    daily: PlaybookRun, lab_plan: LabPlan, lab_config: StackConfig, lab_endpoint: Endpoint
) -> None:
    want = {
        "db": {"claims-db", "postgresql-config"},
        "intake": {"claim-files", "app-config"},
        "app": {"app-config"},
    }
    for role, sources in want.items():
        host = lab_plan.first(role)
        report = backups.last_report(host)
        assert report["ok"] and {s["name"] for s in report["sources"]} == sources
        assert report["repository"].endswith(f"/{role}")
        assert report["immutability"] == "Object Lock COMPLIANCE"
        assert report["key"]["kind"] == "kms"
        assert all(o["retain_until"] == report["retain_until"] for o in report["objects"])
        # ... and told the fleet board, in its own place of the status bucket.
        status = published(lab_endpoint, lab_config, role, host.name, "backup")
        assert status.body["ok"] and status.body["snapshot"] == report["snapshot"]


def test_the_timer_is_daily_persistent_and_spread(daily: PlaybookRun, lab_plan: LabPlan) -> None:
    host = lab_plan.first("db")
    props = sh(
        host,
        "systemctl show claims-dc-backup.timer -p Persistent -p RandomizedDelayUSec "
        "-p UnitFileState -p ActiveState",
    )
    assert "Persistent=yes" in props and "RandomizedDelayUSec=30min" in props
    assert "UnitFileState=enabled" in props and "ActiveState=active" in props
    svc = sh(
        host,
        "systemctl show claims-dc-backup.service -p ProtectSystem -p NoNewPrivileges "
        "-p OnFailure -p ReadWritePaths",
    )
    assert "ProtectSystem=strict" in svc and "NoNewPrivileges=yes" in svc
    assert "OnFailure=claims-dc-backup-failed.service" in svc
    assert "ReadWritePaths=/var/lib/claims-dc-backup" in svc


def test_the_drill_restores_the_database_and_matches_it(
    daily: PlaybookRun, lab_plan: LabPlan, lab_config: StackConfig, lab_endpoint: Endpoint
) -> None:
    code, drill = backups.backup_cli(lab_plan.first("db"), "drill")
    assert code == 0, drill
    assert drill["status"] == "status/db/db-1/drill.json"
    status = published(lab_endpoint, lab_config, "db", "db-1", "drill")
    assert status.body["ok"] and status.body["snapshot"] == drill["snapshot"]
    receipts = int(db_scalar(lab_plan, "SELECT count(*) FROM receipts"))
    assert drill["restored"]["row_counts"]["public.receipts"] == receipts
    assert drill["restored"]["dump_sha256"] == drill["live"]["dump_sha256"]


def test_claim_files_restore_byte_for_byte_on_the_host(
    daily: PlaybookRun, lab_plan: LabPlan
) -> None:
    host = lab_plan.first("intake")
    target = "/var/tmp/claims-dc-restore-test"
    sh(host, f"rm -rf {target}")
    code, out = backups.backup_cli(host, "restore", "--source", "claim-files", "--target", target)
    assert code == 0 and out["ok"], out
    digest = "cd {} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
    assert sh(host, digest.format(f"{target}/claim-files/srv/claims")) == sh(
        host, digest.format("/srv/claims")
    )
    sh(host, f"rm -rf {target}")


def test_a_backup_object_cannot_be_deleted_during_its_lock(
    daily: PlaybookRun, lab_plan: LabPlan, lab_up: UpReport
) -> None:
    s3 = backups.s3_client(lab_up.endpoint_url, lab_up.ca_cert)
    bucket = str(lab_up.aws["backup_bucket"])
    report = backups.last_report(lab_plan.first("db"))
    for prefix in ("snapshots/", "data/", "index/"):
        obj = next(o for o in report["objects"] if o["key"].startswith(prefix))
        assert backups.try_delete(s3, bucket, "db", obj) == "AccessDenied"
        head = s3.head_object(Bucket=bucket, Key=f"db/{obj['key']}", VersionId=obj["version_id"])
        assert head["ObjectLockMode"] == "COMPLIANCE"


def test_verify_reads_every_pack_back_clean(daily: PlaybookRun, lab_plan: LabPlan) -> None:
    for role in backups.BACKUP_ROLES:
        code, out = backups.backup_cli(lab_plan.first(role), "verify", "--read-data")
        assert code == 0 and out["problems"] == [] and out["packs"] > 0, out


def test_a_failed_run_is_left_where_operators_look_and_cleared_by_the_next(
    daily: PlaybookRun, lab_plan: LabPlan
) -> None:
    host = lab_plan.first("intake")
    config = "/etc/claims-dc/backup/backup.toml"
    sh(
        host,
        f"cp {config} /root/backup.toml.saved && sed -i "
        '\'s|paths = \\["/srv/claims"\\]|paths = ["/srv/claims-gone"]|\' ' + config,
    )
    try:
        failed = sh(host, "systemctl start claims-dc-backup.service; echo rc=$?", check=False)
        assert "rc=0" not in failed
        pm.exec_in(
            host.container,
            [
                "bash",
                "-c",
                "for i in $(seq 50); do "
                "test -e /var/lib/claims-dc-backup/FAILED && exit 0; sleep 0.2; done; exit 1",
            ],
        )
        flag = sh(host, "cat /var/lib/claims-dc-backup/FAILED")
        assert "FAILED on intake-1" in flag and "/srv/claims-gone does not exist" in flag
        assert "claims-dc backup FAILED" in sh(host, "cat /run/motd.d/50-claims-dc-backup")
        journal = sh(host, "journalctl -t claims-dc-backup -p crit --no-pager -n 5")
        assert "/srv/claims-gone" in journal
        status = json.loads(sh(host, "cat /var/lib/claims-dc-backup/status.json"))
        assert status["ok"] is False
    finally:
        sh(host, f"cp /root/backup.toml.saved {config} && rm -f /root/backup.toml.saved")
    sh(host, "systemctl start claims-dc-backup.service")
    assert (
        sh(
            host,
            "ls /var/lib/claims-dc-backup/FAILED /run/motd.d/50-claims-dc-backup 2>/dev/null; true",
        )
        == ""
    )
