"""Entry point for `pulumi preview` / `pulumi up` (Pulumi.yaml: main: infra/)."""

from infra.config import from_pulumi
from infra.program import run

run(from_pulumi())
