"""Every rotation test works in an inventory with a vault (tests/support/vault.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.vault import unit_vault


@pytest.fixture(autouse=True)
def vault(tmp_path: Path) -> bytes:
    return unit_vault(tmp_path)
