"""An inventory's vault, made once: the wrapped password, the vault-id client, and the first
secrets site.yml reads (the database owner's and the application login's passwords and salts).
Everything else sealed is made by the tool that needs it (the rotation, the CA)."""

from __future__ import annotations

from pathlib import Path

from ops.rotation.db_login import first_logins
from ops.vault.client import install
from ops.vault.keyring import KeyringSettings, create


def init(
    inventory_dir: Path, settings: KeyringSettings, python: str, repo: Path
) -> dict[str, object]:
    created = create(inventory_dir, settings)
    client = install(inventory_dir, python, repo)
    made = first_logins(inventory_dir / "secrets")
    return {"created": created, "client": str(client), "secrets made": [p.name for p in made]}
