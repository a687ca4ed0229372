"""The layout keeps the lab and the tests' helpers out of what ships: production code (infra,
ops, claimapp) never imports the lab package or the tests, directly or at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = ("infra", "ops", "claimapp")
FORBIDDEN = ("lab", "tests")


def _imported(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def forbidden_imports(root: Path) -> list[str]:
    problems = []
    for package in PRODUCTION:
        for path in sorted((root / package).rglob("*.py")):
            for line, name in _imported(path):
                if name.split(".")[0] in FORBIDDEN:
                    problems.append(f"{path.relative_to(root)}:{line} imports {name}")
    return problems


def test_production_code_never_imports_lab_or_tests() -> None:
    assert forbidden_imports(REPO) == []


def test_the_check_fires_on_a_production_module_importing_the_lab(tmp_path: Path) -> None:
    for package in PRODUCTION:
        (tmp_path / package).mkdir()
    (tmp_path / "ops" / "sneaky.py").write_text("from lab.plan import build_plan\n")
    (tmp_path / "claimapp" / "helper.py").write_text("def f():\n    import tests.support.localpg\n")
    assert sorted(forbidden_imports(tmp_path)) == [
        "claimapp/helper.py:2 imports tests.support.localpg",
        "ops/sneaky.py:1 imports lab.plan",
    ]


@pytest.mark.parametrize("package", PRODUCTION)
def test_importing_production_loads_no_lab_module(package: str) -> None:
    # Imports made at import time by any module of the package, however they are spelled
    # (entry points that act when imported are left out: __main__, the WSGI app).
    script = (
        "import importlib, pkgutil, sys\n"
        f"import {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    if m.name.rsplit('.', 1)[-1] in ('__main__', 'wsgi'):\n"
        "        continue\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('lab', 'tests'))\n"
        "print('\\n'.join(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_test_helpers_are_not_shipped() -> None:
    shipped = "\n".join(
        p.read_text(encoding="utf-8") for pkg in PRODUCTION for p in (REPO / pkg).rglob("*.py")
    )
    for helper in ("class FaultyStorage", "def local_cluster"):
        assert helper not in shipped


LONG = 80  # lines: more than a reader holds at once
WHY = "Long on purpose:"  # what a longer function says, and why, in a comment or its docstring
SOURCES = ("infra", "ops", "claimapp", "lab", "bench")


def long_functions(root: Path) -> list[str]:
    """Functions of LONG lines or more that do not say why they are long."""
    found = []
    for package in SOURCES:
        for path in sorted((root / package).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for node in ast.walk(ast.parse("\n".join(lines), filename=str(path))):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                if length >= LONG and WHY not in body:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length})")
    return found


def test_no_function_is_long_without_saying_why() -> None:
    assert long_functions(REPO) == []


def test_the_check_fires_on_a_long_function_that_does_not_say_why(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    steps = "".join(f"    x{n} = {n}\n" for n in range(LONG))
    (tmp_path / "ops" / "long.py").write_text(
        f"def silent():\n{steps}\n\ndef explained():\n    # {WHY} one protocol, in order\n{steps}"
    )
    assert long_functions(tmp_path) == [f"ops/long.py:1 silent ({LONG + 1})"]
