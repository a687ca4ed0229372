"""Evaluate the Pulumi program offline, under Pulumi's own mocks (no CLI, no cloud).

The Pulumi CLI and its provider plugins cannot be installed on the lab machines, so the program
is checked here the way Pulumi's unit tests do it: `pulumi.runtime.set_mocks`, the stack's config
handed over exactly as the engine would hand it, and every resource the program declares
recorded for the checks that follow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from infra.config import PROJECT, StackConfig, from_pulumi


@dataclass
class DeclaredResource:
    type: str
    name: str
    inputs: dict[str, Any]


@dataclass
class Evaluation:
    config: StackConfig
    outputs: dict[str, Any]
    resources: list[DeclaredResource] = field(default_factory=list)


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[DeclaredResource] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(DeclaredResource(args.typ, args.name, dict(args.inputs)))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


def engine_config(stack_file: Path) -> dict[str, str]:
    """The stack file's config as the engine passes it: structured values as JSON text."""
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    config = document.get("config") or {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def evaluate(stack_file: Path) -> Evaluation:
    """Run the program for `Pulumi.<stack>.yaml` under mocks; raises ConfigError on bad config."""
    from infra.program import outputs, run

    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    mocks = RecordingMocks()
    pulumi.runtime.set_all_config(engine_config(stack_file))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    config = from_pulumi()
    run(config)
    return Evaluation(config=config, outputs=outputs(config), resources=mocks.resources)
