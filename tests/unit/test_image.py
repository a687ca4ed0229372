"""The golden image is keyed by its recipe: same recipe, same tag; any change, a new tag."""

from __future__ import annotations

import dataclasses

from lab.image import IMAGE_REPO, ImageRecipe


def test_same_recipe_same_tag() -> None:
    assert ImageRecipe().ref == ImageRecipe().ref
    assert ImageRecipe().ref.startswith(f"{IMAGE_REPO}:")


def test_any_recipe_change_gives_a_new_tag() -> None:
    base = ImageRecipe()
    changes = [
        dataclasses.replace(base, role_packages=(*base.role_packages, "rsync")),
        dataclasses.replace(base, base_packages=base.base_packages[:-1]),
        dataclasses.replace(base, setup_script=base.setup_script + "\ntrue\n"),
        dataclasses.replace(base, suite="trixie"),
    ]
    tags = {c.ref for c in changes}
    assert base.ref not in tags
    assert len(tags) == len(changes)


def test_image_shares_no_host_keys_and_allows_no_root_login() -> None:
    script = ImageRecipe().setup_script
    assert "rm -f /etc/ssh/ssh_host_*" in script
    assert "PermitRootLogin no" in script
    assert "PasswordAuthentication no" in script
    assert "passwd --lock" in script
