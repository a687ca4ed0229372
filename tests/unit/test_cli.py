"""claims-dc, the one command: every subcommand is a tool with the shared options spelled the
same, --json before or after the subcommand, one error format, and the exit-code table of
ops/cli.py (and the README), each row shown by a command that returns it."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ops import cli

REPO = Path(__file__).resolve().parents[2]
NAMES = sorted(cli.commands())
# Leaves that print no JSON, and why. Everything else takes --json.
WITHOUT_JSON = {
    ("demo",): "a narrative of the lab's day for people; its tools' JSON is in its reports",
    ("lab", "ssh"): "replaces itself with an interactive ssh session",
}
# The shared options: what each is called wherever a tool takes it.
SPELLINGS = {"json": ["--json"], "inventory": ["-i", "--inventory"], "stack": ["--stack"]}


def parser_of(name: str) -> argparse.ArgumentParser:
    command = cli.commands()[name]
    module, _, factory = command.parser_target.partition(":")
    build = getattr(importlib.import_module(module), factory)
    parser: argparse.ArgumentParser = build()
    return parser


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, bool]]:
    """(path, parser, is_leaf) for the parser and every subparser below it."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser, not subs
    for action in subs:
        for sub_name, sub in action.choices.items():
            yield from walk(sub, (*path, sub_name))


def test_the_console_script_is_installed_and_lists_every_subcommand() -> None:
    script = Path(sys.executable).parent / "claims-dc"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("check", "inventory", "lab", "bundle", "review", "rotate", "fleet", "evidence",
                 "demo", "backup"):  # fmt: skip
        assert re.search(rf"^  {name} ", proc.stdout, re.M), name
        assert name in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_subcommand_names_itself_and_spells_the_shared_options_alike(name: str) -> None:
    for path, parser, leaf in walk(parser_of(name), (name,)):
        assert parser.prog.startswith("claims-dc"), (path, parser.prog)
        options = {a.dest: a for a in parser._actions if a.option_strings}
        for dest, spelling in SPELLINGS.items():
            if dest in options:
                assert options[dest].option_strings == spelling, (path, dest)
        if len(path) > 1 and "json" in options:
            # Given before the subcommand, --json must not be reset by the subcommand's default.
            assert options["json"].default is argparse.SUPPRESS, path
        if leaf and path not in WITHOUT_JSON:
            assert "json" in options, f"{' '.join(path)} takes no --json"


@pytest.mark.parametrize("name", NAMES)
def test_each_subcommand_teaches_with_examples(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([name, "--help"]) == cli.OK
    text = capsys.readouterr().out
    prog = parser_of(name).prog
    examples = [line for line in text.splitlines()[1:] if line.strip().startswith(prog + " ")]
    assert examples or "make demo" in text, f"{name} --help shows no example"


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_option_is_usage_named_by_the_subcommand(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([name, "--no-such-option"]) == cli.BAD_INPUT
    err = capsys.readouterr().err
    prog = parser_of(name).prog
    # argparse names what it met first: the option, or an argument still missing
    assert re.search(rf"^{re.escape(prog)}[\w -]*: error: ", err, re.M), err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", NAMES)
def test_an_unexpected_failure_is_named_with_exit_4(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(cli.commands()[name].target.partition(":")[0])

    def broken(argv: list[str]) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(module, "main", broken)
    assert cli.main([name]) == cli.FAILED
    err = capsys.readouterr().err
    assert f"claims-dc {name}: unexpected failure: RuntimeError: a bug" in err
    assert "Traceback" not in err


def test_an_interrupt_is_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import infra.check

    def interrupted(argv: list[str]) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(infra.check, "main", interrupted)
    assert cli.main(["check"]) == cli.INTERRUPTED == 130


def test_no_subcommand_an_unknown_one_or_an_option_before_it_is_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main([]) == cli.BAD_INPUT
    assert cli.main(["nope"]) == cli.BAD_INPUT
    assert "claims-dc: no subcommand 'nope'" in capsys.readouterr().err
    assert cli.main(["--stack", "lab", "check"]) == cli.BAD_INPUT
    assert "--stack goes after the subcommand" in capsys.readouterr().err


def _json_both_ways(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    before = cli.main(["--json", *argv])
    first = capsys.readouterr().out
    after = cli.main([*argv, "--json"])
    second = capsys.readouterr().out
    assert before == after
    assert json.loads(first) == json.loads(second), argv
    return before, json.loads(first)


def test_json_goes_before_or_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rules = _json_both_ways(["check", "--rules"], capsys)
    assert code == cli.OK and rules[0]["id"].startswith("CDC-")
    code, found = _json_both_ways(["bundle", "version", "--product", "backup"], capsys)
    assert code == cli.OK and found["product"] == "claims-dc-backup"
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("")
    code, entries = _json_both_ways(["rotate", "--ledger", str(ledger), "ledger"], capsys)
    assert code == cli.OK and isinstance(entries, dict | list)
    (tmp_path / "review").mkdir()
    (tmp_path / "signers").write_text("")
    argv = ["review", "verify", str(tmp_path / "review"), "--allowed-signers",
            str(tmp_path / "signers"), "--signer", "claims-dc-review"]  # fmt: skip
    code, verified = _json_both_ways(argv, capsys)
    assert code == cli.FINDINGS and verified["problems"]


def test_exit_1_is_a_failure_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The action failed (an inventory without a vault): named, with where."""
    assert cli.main(["vault", "-i", str(tmp_path), "names"]) == cli.FINDINGS
    err = capsys.readouterr().err
    assert f"claims-dc vault: {tmp_path}/vault/settings.json: no vault here" in err


def test_exit_2_is_bad_input_named_with_where_it_came_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["check", "--stack", "no-such-stack"]) == cli.BAD_INPUT
    assert "claims-dc check: no stack file Pulumi.no-such-stack.yaml" in capsys.readouterr().err


def test_exit_3_is_incomplete_never_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("staff_id,name,organisation,job,roles,start,end\n"
                      "D020,高橋美咲,dc-operator,operator,aws:readonly,2023-10-01,\n")  # fmt: skip
    argv = ["review", "run", "--roster", str(roster), "--out", str(tmp_path / "out"),
            "--db-dsn", f"host={tmp_path} dbname=claims user=nobody"]  # fmt: skip
    assert cli.main(argv) == cli.INCOMPLETE
    assert "verdict: INCOMPLETE" in capsys.readouterr().out


def test_the_readme_and_the_tool_give_the_same_exit_codes() -> None:
    readme = (REPO / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| ([^|]+?) \|", readme, re.M))
    assert {int(k): v for k, v in table.items()} == cli.EXIT_CODES
