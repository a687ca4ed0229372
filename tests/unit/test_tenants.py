"""Synthetic tenants load, do not overlap one another, and prove clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import load_file
from infra.offline import evaluate
from infra.proof import model_of
from infra.proof.tenants import tenant_config, write_tenants
from infra.proof.verdicts import prove


def test_tenants_are_valid_and_disjoint(tmp_path: Path) -> None:
    configs = [load_file(p) for p in write_tenants(tmp_path, 12)]
    blocks = [z.cidr for c in configs for z in c.zones.values()]
    for i, a in enumerate(blocks):
        for b in blocks[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    assert len({c.municipality.code for c in configs}) == 12


def test_a_tenant_proves_clean(tmp_path: Path) -> None:
    (path,) = write_tenants(tmp_path, 1)
    assert prove(model_of(evaluate(path)), load_file(path)).holds


def test_tenant_index_is_bounded() -> None:
    with pytest.raises(ValueError, match="outside"):
        tenant_config(0)
