"""Every bundle carries what its code imports: a module of this repository imported by a
product's files (at any depth, inside functions too) must be among that product's files, or
the installed tool fails on the host the first time it reaches that import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ops.bundle import PRODUCTS, REPO, Product

OURS = ("ops", "claimapp", "infra", "lab")


def _module_file(name: str) -> Path | None:
    """The file of one of our modules, or None if it is not ours."""
    if name.split(".")[0] not in OURS:
        return None
    path = REPO / Path(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@pytest.mark.parametrize("product", sorted(PRODUCTS.values(), key=lambda p: p.name),
                         ids=lambda p: p.name)  # fmt: skip
def test_a_bundle_holds_every_module_its_code_imports(product: Product) -> None:
    shipped = {p.resolve() for p in product.sources()}
    missing = []
    for source in (p for p in product.sources() if p.suffix == ".py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                target = _module_file(name)
                if target is not None and target.resolve() not in shipped:
                    missing.append(f"{source.relative_to(REPO)} imports {name}")
    assert missing == [], missing
