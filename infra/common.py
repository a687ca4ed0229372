"""Small helpers every component shares: tags and IAM policy documents."""

from __future__ import annotations

import json
from typing import Any

from infra.config import StackConfig


def tags(config: StackConfig, name: str) -> dict[str, str]:
    return {
        "Name": f"{config.stack}-{name}",
        "claims-dc:stack": config.stack,
        "claims-dc:municipality": config.municipality.code,
    }


def policy_json(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def service_trust(service: str) -> str:
    return policy_json(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    )
