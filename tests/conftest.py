"""Shared test set-up: the lab stack's raw config, and ordering for the lab suite."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def lab_raw() -> dict[str, Any]:
    """A fresh, mutable copy of Pulumi.lab.yaml's `config:` mapping."""
    document = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text(encoding="utf-8"))
    return copy.deepcopy(document["config"])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that replace hosts run after those that read them as they are; tests that take
    # the shared lab down run after every test that uses it.
    def last(item: pytest.Item) -> tuple[bool, bool]:
        marked = item.get_closest_marker
        return marked("destroys_lab") is not None, marked("replaces_hosts") is not None

    items.sort(key=last)


@pytest.fixture(scope="session")
def postgres() -> Any:
    """One private PostgreSQL 15 for the whole run (tests/support/localpg.py)."""
    from tests.support.localpg import local_cluster

    try:
        with local_cluster() as dsns:
            yield dsns
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def db(postgres: dict[str, str]) -> Iterator[Any]:
    """The application role's connection to a claim database emptied of claims."""
    import psycopg

    with psycopg.connect(postgres["owner"], autocommit=True) as owner:
        owner.execute("TRUNCATE receipts, claim_files RESTART IDENTITY")
    with psycopg.connect(postgres["app"], autocommit=True) as app:
        yield app


def render_template(path: Path, values: dict[str, Any]) -> str:
    """Render a role's Jinja template as Ansible would, failing on any undefined variable."""
    import json

    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["to_json"] = json.dumps  # Ansible's filter, as the roles use it
    return env.from_string(path.read_text()).render({"ansible_managed": "test", **values})
