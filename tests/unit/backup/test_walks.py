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

from .conftest import flip_last_byte, make_tree


def files(root: Path) -> list[SourceSpec]:
    return [SourceSpec("claim-files", "files", paths=[str(root)])]


def _spoil(repo_dir: Path, key: str) -> None:
    path = repo_dir / key
    flip_last_byte(path)


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


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {repo_root!r})
from ops.backuplib import archiver
from ops.backuplib.repository import KeyOptions, Repository
from ops.backuplib.sources import SourceSpec
from ops.backuplib.storage import LocalStorage

real_fsync = os.fsync
def fsync_then_wait(fd):
    real_fsync(fd)
    if os.readlink(f"/proc/self/fd/{{fd}}").endswith(".tmp") and "data/" in os.readlink(
            f"/proc/self/fd/{{fd}}"):
        Path({marker!r}).write_text("writing")
        time.sleep(120)  # killed here, mid-write, by the test
os.fsync = fsync_then_wait
repo = Repository.open(LocalStorage(Path({repo_dir!r})), KeyOptions(key_file=Path({key!r})))
archiver.backup(repo, [SourceSpec("claim-files", "files", paths=[{src!r}])], quiet=True)
"""


def test_a_run_killed_mid_write_leaves_nothing_the_next_run_and_prune_do_not_clear(
    local_repo: Repository, key_file: Path, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    src = make_tree(tmp_path / "srv")
    (src / "big.bin").write_bytes(os.urandom(300_000))
    marker = tmp_path / "marker"
    script = KILLED_WRITER.format(repo_root=str(Path(__file__).resolve().parents[3]),
                                  marker=str(marker), repo_dir=str(tmp_path / "repo"),
                                  key=str(key_file), src=str(src))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the writer never reached a write"
    os.kill(proc.pid, signal.SIGKILL)  # a real kill -9, mid-write
    proc.wait(10)
    left = local_repo.storage.temporaries()  # type: ignore[attr-defined]
    assert left and all(pid == proc.pid for _, pid in left)
    check = archiver.verify(local_repo, quiet=True)
    assert any("temporary file" in p and str(proc.pid) in p for p in check["problems"])
    run = archiver.backup(local_repo, files(src), quiet=True)
    assert run["ok"] and run["removed_temporaries"]
    assert local_repo.storage.temporaries() == []  # type: ignore[attr-defined]
    assert archiver.verify(local_repo, quiet=True)["ok"]
    # The killed run's lease was never released: prune knows it has ended, and removes it.
    pruned = archiver.prune(local_repo, RetentionPolicy(daily=5, monthly=0, yearly=0),
                            quiet=True)  # fmt: skip
    assert pruned["ok"] and pruned["deleted_leases"], pruned
    left_leases = {o.key for o in local_repo.storage.list_objects("locks/")}
    assert all(k.split("/")[1].split(".")[0] not in pruned["deleted_leases"] for k in left_leases)
    assert len({k.split(".")[0] for k in left_leases}) == 1, left_leases  # prune's own, released


def test_a_full_disk_fails_the_write_with_its_path_and_leaves_nothing(
    local_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ops.backuplib.storage import StorageError

    src = make_tree(tmp_path / "srv")
    real_open = open

    def full(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(".tmp") and "/data/" in str(path):
            handle = real_open(path, mode, *args, **kwargs)

            def write(_: bytes) -> int:
                raise OSError(errno.ENOSPC, "No space left on device")

            handle.write = write
            return handle
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(StorageError, match=r"cannot write .*/data/.*\.tmp: No space left"):
        archiver.backup(local_repo, files(src), quiet=True)
    monkeypatch.undo()
    assert local_repo.storage.temporaries() == []  # type: ignore[attr-defined]
    assert local_repo.list_snapshots() == []


@pytest.mark.parametrize("size", [0, 1, 1023, 16_384, 50_000, 300_001, 1_000_003])
def test_a_file_chunked_a_window_at_a_time_cuts_where_the_whole_file_would(
    tmp_path: Path, size: int
) -> None:
    from ops.backuplib.chunker import Chunker

    from .conftest import SMALL

    path = tmp_path / "f"
    path.write_bytes(os.urandom(size))
    chunker = Chunker(SMALL, 1234, window=2 * SMALL.max_size + 7)  # many windows, odd edges
    windowed = [bytes(v) for v in chunker.file(path)]
    whole = [bytes(c.data) for c in chunker._cdc.cut_file(str(path))] if size else []
    assert windowed == whole
    assert b"".join(windowed) == path.read_bytes()


def test_a_deleted_newest_snapshot_is_noticed_through_the_head_record(
    local_repo: Repository, tmp_path: Path, capsys: Any
) -> None:
    src = make_tree(tmp_path / "srv")
    first = archiver.backup(local_repo, files(src), quiet=True)
    (src / "new.txt").write_text("new\n")
    second = archiver.backup(local_repo, files(src), quiet=True)
    assert archiver.verify(local_repo, quiet=True)["ok"]
    os.chmod(tmp_path / "repo" / "snapshots" / second["snapshot"], 0o640)
    (tmp_path / "repo" / "snapshots" / second["snapshot"]).unlink()  # what Object Lock forbids
    out = archiver.restore(local_repo, tmp_path / "out", quiet=True)
    assert out["snapshot"] == first["snapshot"] and not out["ok"]
    assert any(second["snapshot"] in p and "missing" in p for p in out["problems"])
    check = archiver.verify(local_repo, quiet=True)
    assert any("head record" in p and second["snapshot"] in p for p in check["problems"])
    problems: list[str] = []
    archiver.list_report(local_repo, problems)
    assert any("rolled back" in p for p in problems)
