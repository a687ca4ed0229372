"""The review tests share the backup tests' moto server fixture."""

from tests.unit.backup.conftest import moto_endpoint

__all__ = ["moto_endpoint"]
