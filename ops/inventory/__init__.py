"""The Ansible inventory of one environment, from its stack config and its stack outputs.

Every environment, the local lab included, gets its inventory from here: `python -m
ops.inventory --stack S --outputs FILE --operators FILE --out DIR`, where FILE is what `pulumi
stack output --json` printed for that stack. Modules: `outputs` (the stack outputs, checked),
`operators` (the operators file, checked), `generate` (the inventory directory and the SSH
configuration), `__main__` (the CLI).
"""

from __future__ import annotations


class InventoryError(Exception):
    """Bad input: each problem names the file, the key and the value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
