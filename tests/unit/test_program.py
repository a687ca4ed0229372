"""The Pulumi program under Pulumi's own mocks: it reads the stack config through the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import ConfigError, load_stack
from infra.offline import evaluate

REPO = Path(__file__).resolve().parents[2]


def test_program_sees_the_same_config_as_the_loader() -> None:
    result = evaluate(REPO / "Pulumi.lab.yaml")
    direct = load_stack("lab", REPO)
    assert result.config.zones == direct.zones
    assert result.config.hosts == direct.hosts
    assert result.config.flows == direct.flows
    assert result.outputs["zones"]["app"] == "10.231.10.0/24"
    assert "terminal-1" not in result.outputs["hosts"]  # stand-ins are lab-only
    assert "lgwan->app:443/tcp" in result.outputs["flows"]


def test_program_refuses_a_bad_region(tmp_path: Path, lab_raw: dict[str, Any]) -> None:
    lab_raw["aws:region"] = "us-west-2"
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump({"config": lab_raw}, allow_unicode=True))
    with pytest.raises(ConfigError, match="aws:region = 'us-west-2'"):
        evaluate(path)
