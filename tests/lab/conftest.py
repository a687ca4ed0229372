"""One lab for the whole slow suite: brought up (or repaired) once, shared by every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import StackConfig, load_stack
from ops.lab import lab
from ops.lab.lab import UpReport
from ops.lab.plan import LabPlan, build_plan

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab_config() -> StackConfig:
    return load_stack("lab", REPO)


@pytest.fixture(scope="session")
def lab_plan(lab_config: StackConfig) -> LabPlan:
    return build_plan(lab_config)


@pytest.fixture(scope="session")
def lab_up(lab_config: StackConfig) -> UpReport:
    return lab.up(lab_config)
