"""Walking a damaged repository: one unreadable manifest never blocks the others, a lost
index never hides present packs, and a failed restore never leaves a partial file."""

from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from ops import backup as cli
from ops.backuplib import archiver, report
from ops.backuplib.repository import Repository
from ops.backuplib.retention import RetentionPolicy
from ops.backuplib.sources import SourceSpec

from .conftest import make_tree


def files(root: Path) -> list[SourceSpec]:
    return [SourceSpec("claim-files", "files", paths=[str(root)])]


def _spoil(repo_dir: Path, key: str) -> None:
    path = repo_dir / key
    os.chmod(path, 0o640)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")


@pytest.fixture
def three(local_repo: Repository, tmp_path: Path) -> tuple[Repository, Path, list[str]]:
    """Three snapshots, the middle one's manifest spoiled."""
    src = make_tree(tmp_path / "srv")
    ids = []
    for n in range(3):
        (src / f"day-{n}.txt").write_text(f"day {n}\n")
        ids.append(archiver.backup(local_repo, files(src), quiet=True)["snapshot"])
    _spoil(tmp_path / "repo", f"snapshots/{ids[1]}")
    return local_repo, src, ids


def test_list_names_the_unreadable_manifest_and_goes_on(three: Any) -> None:
    repo, _, ids = three
    problems: list[str] = []
    listed = [s["id"] for s in archiver.list_report(repo, problems)]
    assert listed == [ids[0], ids[2]] or sorted(listed) == sorted([ids[0], ids[2]])
    assert len(problems) == 1 and ids[1] in problems[0] and "unreadable" in problems[0]


def test_restore_of_latest_and_as_of_skip_it_and_say_so(three: Any, tmp_path: Path) -> None:
    repo, _, ids = three
    out = archiver.restore(repo, tmp_path / "latest", quiet=True)
    assert out["snapshot"] == ids[2] and not out["ok"]  # restored, and the problem listed
    assert any(ids[1] in p for p in out["problems"])
    middle = repo.list_snapshots(problems=[])  # readable ones only
    as_of = dt.datetime.fromisoformat(
        next(s["time"] for s in middle if s["id"] == ids[0]).replace("Z", "+00:00")
    ) + dt.timedelta(microseconds=1)
    older = archiver.restore(repo, tmp_path / "as-of", as_of=as_of, quiet=True)
    assert older["snapshot"] == ids[0]


def test_prune_changes_nothing_while_a_manifest_is_unreadable(three: Any) -> None:
    repo, _, ids = three
    before = sorted(o.key for o in repo.storage.list_objects(""))
    result = archiver.prune(repo, RetentionPolicy(daily=1, monthly=0, yearly=0), quiet=True)
    assert not result["ok"] and any(ids[1] in p for p in result["problems"])
    after = sorted(o.key for o in repo.storage.list_objects("") if not o.key.startswith("locks/"))
    assert after == [k for k in before if not k.startswith("locks/")]


def test_the_cli_lists_the_rest_and_exits_1(three: Any, tmp_path: Path, capsys: Any) -> None:
    _, _, ids = three
    config = tmp_path / "backup.toml"
    config.write_text(f'[repository]\nurl = "{tmp_path / "repo"}"\n'
                      f'key_file = "{tmp_path / "keys" / "repo.key"}"\n'
                      f'[state]\ndir = "{tmp_path / "state"}"\n')  # fmt: skip
    assert cli.main(["--config", str(config), "list"]) == 1
    captured = capsys.readouterr()
    assert ids[0][:12] in captured.out and ids[2][:12] in captured.out
    assert ids[1] in captured.err


def test_restore_reads_packs_a_lost_index_no_longer_lists(
    local_repo: Repository, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv")
    archiver.backup(local_repo, files(src), quiet=True)
    for obj in local_repo.storage.list_objects("index/"):
        os.chmod(tmp_path / "repo" / obj.key, 0o640)
        (tmp_path / "repo" / obj.key).unlink()
    check = archiver.verify(local_repo, quiet=True)
    assert check["unindexed_packs"]
    text = report.text(check)
    assert all(f"unindexed pack: {p}" in text for p in check["unindexed_packs"])
    out = archiver.restore(local_repo, tmp_path / "out", quiet=True)
    assert out["ok"], out["problems"]
    restored = tmp_path / "out" / "claim-files" / str(src).lstrip("/")
    assert (restored / "processed" / "blob.bin").read_bytes() == (
        src / "processed" / "blob.bin"
    ).read_bytes()


def test_a_restore_that_fails_midway_leaves_no_partial_file_and_names_it(
    local_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(tmp_path / "srv")
    archiver.backup(local_repo, files(src), quiet=True)
    real_open = open
    seen: list[str] = []

    def full_disk(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(path, mode, *args, **kwargs)
        if str(path).endswith(".partial") and "w" in mode:
            seen.append(str(path))
            real_write = handle.write

            def write(data: bytes) -> int:
                real_write(data)
                raise OSError(errno.ENOSPC, "No space left on device")

            handle.write = write
        return handle

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(OSError, match="No space left on device") as caught:
        archiver.restore(local_repo, tmp_path / "out", quiet=True)
    monkeypatch.undo()
    assert seen and "restoring claim-files:" in str(caught.value)
    assert str(Path(seen[0]).with_name(Path(seen[0]).name[1 : -len(".partial")])) in str(
        caught.value
    )
    assert not list((tmp_path / "out").rglob("*.partial")), "the partial file is removed"
