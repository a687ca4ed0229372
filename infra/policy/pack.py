"""The adapter from rules.py to pulumi-policy: each rule becomes a resource or stack
validation policy. Policy config (`pulumi preview --policy-pack-config FILE`), since a pack never
sees the stack's own config:

- `minRetentionDays`: the Object Lock minimum (default 30);
- `region`: the stack's region, for the endpoint service names (default: Tokyo or Osaka);
- `endpointServices`: the non-AWS endpoint services the stack config accepts (names only: the
  reasons stay in `claims-dc:endpointServices`, where `claims-dc check` reads them).
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.config import ALLOWED_REGIONS
from infra.policy.rules import DEFAULT_MIN_RETENTION_DAYS, RULES, Res, Rule, Settings

SCHEMA = PolicyConfigSchema(
    properties={
        "minRetentionDays": {"type": "integer", "default": DEFAULT_MIN_RETENTION_DAYS},
        "region": {"type": "string", "enum": list(ALLOWED_REGIONS)},
        "endpointServices": {"type": "array", "items": {"type": "string"}, "default": []},
    }
)


def _settings(config: Any) -> Settings:
    config = config or {}
    days = config.get("minRetentionDays", DEFAULT_MIN_RETENTION_DAYS)
    accepted = {str(n): "accepted in the policy config" for n in config.get("endpointServices", [])}
    return Settings(min_retention_days=int(days), region=config.get("region"),
                    endpoint_exceptions=accepted)  # fmt: skip


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    check = rule.check
    assert check is not None

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        r = Res(args.resource_type, args.name, args.props)
        for message in check(r, _settings(args.get_config())):
            report(f"[{rule.id}] {message}. Fix: {rule.fix}", None)

    return ResourceValidationPolicy(
        name=rule.id.lower(), description=f"{rule.title} ({rule.corresponds_to})",
        validate=validate, enforcement_level=EnforcementLevel.MANDATORY, config_schema=SCHEMA,
    )  # fmt: skip


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    check = rule.stack_check
    assert check is not None

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        # References come from the engine's property dependencies: ids are unknown in preview.
        resources = [
            Res(r.resource_type, r.name, r.props,
                {k: frozenset(d.name for d in deps) for k, deps in r.property_dependencies.items()})
            for r in args.resources
        ]  # fmt: skip
        for _, message in check(resources, _settings(args.get_config())):
            report(f"[{rule.id}] {message}. Fix: {rule.fix}", None)

    return StackValidationPolicy(
        name=rule.id.lower(), description=f"{rule.title} ({rule.corresponds_to})",
        validate=validate, enforcement_level=EnforcementLevel.MANDATORY, config_schema=SCHEMA,
    )  # fmt: skip


def policies() -> list[Policy]:
    # Rules over the stack file run in `claims-dc check`: a pack never sees stack config.
    return [
        _resource_policy(rule) if rule.check is not None else _stack_policy(rule)
        for rule in RULES
        if rule.check is not None or rule.stack_check is not None
    ]
