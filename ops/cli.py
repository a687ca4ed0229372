"""claims-dc: one command for every tool of the control node.

    claims-dc check --stack omuta-prod             the stack offline: policy pack, proof
    claims-dc check --stack omuta-prod --cost      what it costs a month and over 5 years
    claims-dc inventory --stack omuta-prod --outputs out.json --operators ops.yml --out inv/
    claims-dc bundle build --product all           the hosts' signed offline bundles
    claims-dc review verify REVIEW/ --allowed-signers FILE --signer NAME
    claims-dc rotate all -i inv/inventory.yml      every secret that is due, through the ledger
    claims-dc fleet status --fleet fleet/          the board of every municipality
    claims-dc evidence --stack omuta-prod -i inv/inventory.yml --out evidence-2026-12
    claims-dc backup --config backup.toml restore --target DIR
    claims-dc --json check --rules                 --json before or after the subcommand

Each subcommand is one tool, with its own --help; `python -m <module>` runs the same tool. The
options that mean the same thing are spelled the same everywhere: --stack NAME (reads
Pulumi.<NAME>.yaml), -i/--inventory (an inventory ops.inventory wrote), --json (results as JSON
on stdout; progress and errors on stderr). Errors are one line, `<command>: <what and where>`.

Exit codes, the same for every subcommand (EXIT_CODES):
  0  ok: done, and everything checked holds
  1  findings or failure: the tool ran and something does not hold, or the action failed
     (named on stderr)
  2  usage or bad input: a wrong argument, or an input file or setting refused (the value and
     where it came from named); nothing was changed
  3  incomplete or refused: something could not be read completely (the review of an
     unreachable host: never a pass), or an action that would overwrite data was refused
     (backup recover/load without --replace)
  4  unexpected failure: named on stderr, never a traceback; nothing can be concluded
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

PROG = "claims-dc"
OK, FINDINGS, BAD_INPUT, INCOMPLETE, FAILED, INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = {
    OK: "ok",
    FINDINGS: "findings or failure",
    BAD_INPUT: "usage or bad input",
    INCOMPLETE: "incomplete or refused",
    FAILED: "unexpected failure",
    INTERRUPTED: "interrupted",
}
# Subcommands outside this package (the local lab's) register under this entry-point group in
# pyproject.toml, so that this module never imports them by name.
PLUGIN_GROUP = "claims_dc.commands"


@dataclass(frozen=True)
class Command:
    name: str
    target: str  # "module:function", a main(argv) -> int
    summary: str

    def load(self) -> Callable[[list[str]], int]:
        module, _, function = self.target.partition(":")
        main: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
        return main

    @property
    def parser_target(self) -> str:
        """The tool's parser factory, beside its main."""
        return self.target.partition(":")[0] + ":build_parser"


COMMANDS = (
    Command("check", "infra.check:main",
            "a stack offline: program under mocks, policy pack, closed-network proof, cost"),
    Command("inventory", "ops.inventory.__main__:main",
            "the Ansible inventory of a deployed stack, from its outputs"),
    Command("bundle", "ops.bundle:main", "build or verify the hosts' signed offline bundles"),
    Command("review", "ops.access_review:main",
            "the access review: every account on every layer against the roster; verify one"),
    Command("rotate", "ops.rotation.__main__:main",
            "rotate keys and certificates through the ledger; the calendar (--due)"),
    Command("fleet", "ops.fleet.__main__:main",
            "every municipality: new tenant, check, the status board, a playbook on all"),
    Command("evidence", "ops.evidence.__main__:main",
            "the signed evidence pack for the privacy council; verify one"),
    Command("backup", "ops.backup:main",
            "the backup tool the hosts run, for restores run from the control node"),
    Command("vault", "ops.vault.__main__:main",
            "the inventory's sealed secrets: init, names, check, seal"),
    Command("state", "ops.statebackend:main",
            "Pulumi's state backend: the S3 bucket and KMS key, ensured or checked"),
)  # fmt: skip


def run_tool(
    prog: str,
    parser: argparse.ArgumentParser,
    handler: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """A tool's main by the table: its arguments parsed (usage: 2), its handler run, and an
    exception that escapes it named on one line, never a traceback (4)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return BAD_INPUT if e.code not in (0, None) else OK
    try:
        return handler(args)
    except Exception as e:  # named, never a traceback
        print(f"{prog}: unexpected failure: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
        return FAILED


def with_default(argv: list[str] | None, commands: tuple[str, ...], default: str) -> list[str]:
    """The tool's arguments, with its default subcommand first when none of `commands` is
    named (and no help is asked for)."""
    found = list(sys.argv[1:] if argv is None else argv)
    if not any(a in commands for a in found) and not {"-h", "--help"} & set(found):
        found.insert(0, default)
    return found


def commands() -> dict[str, Command]:
    """This package's subcommands, then those registered by others (the lab's). Nothing is
    imported here: each run imports only the tool it runs."""
    found = {c.name: c for c in COMMANDS}
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name not in found:
            found[ep.name] = Command(ep.name, ep.value, "")
    return found


def _summary(command: Command) -> str:
    """A registered command's summary: the first line of its module's docstring."""
    if command.summary:
        return command.summary
    try:
        doc = (importlib.import_module(command.target.partition(":")[0]).__doc__ or "").strip()
    except Exception:  # a summary is not worth failing the help for
        return ""
    return doc.splitlines()[0].split(": ", 1)[-1].rstrip(".") if doc else ""


def build_parser(known: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    known = commands() if known is None else known
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n"
        + "\n".join(f"  {c.name:10} {_summary(c)}" for c in known.values())
        + f"\n\n`{PROG} SUBCOMMAND --help` for each one's options and examples.",
    )
    p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    p.add_argument("subcommand", metavar="SUBCOMMAND", choices=sorted(known))
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def split(argv: list[str]) -> tuple[bool, list[str]]:
    """(whether --json was given before the subcommand, the rest). Only what precedes the
    subcommand is the dispatcher's; everything after it belongs to the tool."""
    wants_json, rest = False, list(argv)
    while rest and rest[0] == "--json":
        wants_json = True
        rest.pop(0)
    return wants_json, rest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json, rest = split(argv)
    known = commands()
    if not rest or rest[0].startswith("-"):
        parser = build_parser(known)
        if {"-h", "--help"} & set(rest):
            parser.print_help()
            return OK
        parser.print_usage(sys.stderr)
        if rest:
            print(f"{PROG}: {rest[0]} goes after the subcommand (only --json comes before it)",
                  file=sys.stderr)  # fmt: skip
        print(f"{PROG}: a subcommand is needed: {', '.join(known)}", file=sys.stderr)
        return BAD_INPUT
    name, tool_argv = rest[0], rest[1:]
    command = known.get(name)
    if command is None:
        print(f"{PROG}: no subcommand {name!r}; there are: {', '.join(known)}", file=sys.stderr)
        return BAD_INPUT
    if wants_json:
        # Every tool takes --json at its top level; before the tool's own subcommand it
        # applies to whichever runs.
        tool_argv.insert(0, "--json")
    try:
        return command.load()(tool_argv)
    except SystemExit as e:  # argparse inside a tool: usage
        return BAD_INPUT if e.code not in (0, None) else OK
    except KeyboardInterrupt:
        print(f"{PROG} {name}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as e:  # named, never a traceback
        print(f"{PROG} {name}: unexpected failure: {type(e).__name__}: {str(e)[:300]}",
              file=sys.stderr)  # fmt: skip
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
