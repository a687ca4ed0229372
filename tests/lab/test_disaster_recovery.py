"""A real loss: db-1 and intake-1 destroyed after a day of loads and searches, brought back by
playbooks/restore.yml to a moment between two rounds of searches. Every receipt and audit row
up to that moment is back, nothing after it, and the LGWAN terminal's search answers."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from infra.config import StackConfig
from lab import disaster
from lab.disaster import Loss
from tests.lab.conftest import SiteRuns

pytestmark = [pytest.mark.lab, pytest.mark.replaces_hosts]


@pytest.fixture(scope="module")
def loss(converged: SiteRuns, lab_config: StackConfig) -> Loss:
    happened = disaster.lose_and_restore(lab_config, ["db-1", "intake-1"], measure_rpo=False)
    print(f"disaster recovery: {disaster.summary(happened)}", file=sys.stderr)
    return happened


def test_everything_up_to_the_point_is_back_and_nothing_after(loss: Loss) -> None:
    assert loss.receipts_after_restore == loss.receipts_at_point
    assert loss.audit_ids_after_restore == loss.audit_ids_at_point
    assert loss.after_point_rows_back == 0, "the searches after the point did not come back"
    recovered, point = (
        dt.datetime.fromisoformat(t) for t in (loss.recovered_to, loss.recovery_point)
    )
    assert recovered <= point


def test_the_terminal_searches_the_restored_receipts(loss: Loss) -> None:
    assert next(iter(loss.searched.values())) > 0


def test_the_playbook_proved_files_audit_and_search(loss: Loss) -> None:
    assert loss.restore_run is not None
    out = loss.restore_run.stdout
    assert "matching their SHA-256" in out
    assert "restore recorded as audit row" in out
    assert "a caseworker search over HTTPS found" in out
