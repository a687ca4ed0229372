"""Entry point of the pack: `pulumi preview --policy-pack infra/policy`."""

from pulumi_policy import PolicyPack

from infra.policy.pack import policies

PolicyPack(name="claims-dc", policies=policies())
