"""docs/deploy.md names only what exists: every `claims-dc` subcommand (and `python -m` module)
and its options, every make target, playbook and repository path. A runbook that points at a
missing command is worse than none: the operator following it finds out on the day."""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ops import cli

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "deploy.md"
TOP = ("infra/", "ops/", "playbooks/", "lab/", "claimapp/", "docs/", "tests/", "bench/")


def commands(text: str) -> list[str]:
    """Shell commands: indented code lines (joined across backslashes) and backticked ones."""
    found: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.startswith("    ") and line.strip():
            pending += line.strip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            found.append(pending)
        pending = ""
    found += re.findall(r"`((?:claims-dc|python -m|make|ansible-playbook|pulumi) [^`]+)`", text)
    return found


def _words(command: str) -> list[str]:
    return (
        shlex.split(command.split("#", 1)[0])
        if "'" in command or '"' in command
        else (command.split("#", 1)[0].split())
    )


@functools.cache
def _help(module: str, sub: str | None) -> str:
    argv = [sys.executable, "-m", module, *([sub] if sub else []), "--help"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    return proc.stdout if proc.returncode == 0 else ""


def _options(module: str, rest: list[str]) -> str:
    positionals = [w for w in rest if not w.startswith("-")]
    return _help(module, None) + "".join(_help(module, p) for p in positionals[:1])


def check_command(command: str) -> list[str]:
    words = _words(command)
    problems: list[str] = []
    if words[0] == "claims-dc":
        sub = words[1] if len(words) > 1 else ""
        known = cli.commands()
        if sub not in known:
            return [f"{command}: claims-dc has no subcommand {sub!r}"]
        module = known[sub].target.partition(":")[0].removesuffix(".__main__")
        rest = words[2:]
        flags = [w.split("=")[0] for w in rest if w.startswith("--")]
        texts = _options(module, rest)
        if not texts:
            problems.append(f"{command}: claims-dc {sub} --help fails")
        problems += [f"{command}: claims-dc {sub} has no option {f}" for f in flags
                     if f not in texts]  # fmt: skip
    elif words[:2] == ["python", "-m"]:
        module = words[2]
        if importlib.util.find_spec(module) is None:
            return [f"{command}: no module {module}"]
        rest = words[3:]
        flags = [w.split("=")[0] for w in rest if w.startswith("--")]
        texts = _options(module, rest)
        if not texts:
            problems.append(f"{command}: python -m {module} --help fails")
        problems += [f"{command}: {module} has no option {f}" for f in flags if f not in texts]
    elif words[0] == "make":
        makefile = (REPO / "Makefile").read_text()
        problems += [f"{command}: no make target {t}" for t in words[1:]
                     if not re.search(rf"^{re.escape(t)}:", makefile, re.M)]  # fmt: skip
    elif words[0] == "ansible-playbook":
        problems += [f"{command}: no playbook {w}" for w in words
                     if w.endswith(".yml") and w.startswith("playbooks/")
                     and not (REPO / w).is_file()]  # fmt: skip
    for word in words:
        if word.startswith(TOP) and "/" in word and "<" not in word:
            path = REPO / word.rstrip("/")
            if not path.exists() and not word.startswith(("inventories/", "out/")):
                problems.append(f"{command}: no {word}")
    return problems


def test_every_command_in_the_runbook_exists() -> None:
    found = commands(RUNBOOK.read_text(encoding="utf-8"))
    assert len(found) > 20
    problems = [p for c in found for p in check_command(c)]
    assert problems == []


def test_every_repository_path_the_runbook_names_exists() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:infra|ops|playbooks|docs|lab|claimapp)/[^`\s]+)`", text))
    named |= set(re.findall(r"`(Pulumi(?:\.[a-z-]+)?\.yaml|Makefile|constraints\.txt)`", text))
    assert named
    assert sorted(n for n in named if not (REPO / n.rstrip("/")).exists()) == []


def test_the_runbook_covers_the_road_from_an_empty_account() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    road = ("claims-dc state", "pulumi stack init", "--secrets-provider", "claims-dc check",
            "pulumi preview", "--policy-pack infra/policy", "pulumi up", "claims-dc inventory",
            "claims-dc vault -i", "--vault-id claims-dc@",
            "AWS-StartSSHSession", "ProxyJump", "playbooks/site.yml", "playbooks/daily_backup.yml",
            "playbooks/access_review.yml", "claims-dc rotate", "LGWAN provider", "fund",
            "fingerprint", "pulumi destroy", "Object Lock")  # fmt: skip
    for step in road:
        assert step in text, step


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("python -m ops.nosuchtool run", "no module ops.nosuchtool"),
        ("claims-dc nosuchtool run", "claims-dc has no subcommand 'nosuchtool'"),
        ("claims-dc inventory --stack x --no-such-flag", "has no option --no-such-flag"),
        ("python -m ops.inventory --stack x --no-such-flag", "has no option --no-such-flag"),
        ("make no-such-target", "no make target no-such-target"),
        ("ansible-playbook -i inv playbooks/nosuch.yml", "no playbook playbooks/nosuch.yml"),
        ("python -m infra.check --stack lab --report ops/nosuch/dir", "no ops/nosuch/dir"),
    ],
)
def test_the_check_fires_on_what_does_not_exist(command: str, problem: str) -> None:
    assert any(problem in p for p in check_command(command))
