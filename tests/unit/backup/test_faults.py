"""Reliability: interrupted backups, damaged repositories, wrong keys, unreachable S3, two
backups at once. Each case checks that nothing earlier is lost and the error says what."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ops.backuplib import archiver, crypto
from ops.backuplib.repository import Busy, KeyOptions, Repository, pack_key
from ops.backuplib.sources import SourceSpec
from ops.backuplib.storage import LocalStorage, S3Storage, Unreachable
from tests.support.faults import FaultyStorage, InjectedFault

from .conftest import flip_last_byte, make_tree, tree_digest


def files(root: Path) -> list[SourceSpec]:
    return [SourceSpec("claim-files", "files", paths=[str(root)])]


def out_of(target: Path, root: Path) -> Path:
    return target / "claim-files" / str(root).lstrip("/")


def reopen(repo: Repository, storage: Any, key_file: Path) -> Repository:
    return Repository.open(storage, KeyOptions(key_file=key_file))


def count_operations(repo: Repository, src: Path, key_file: Path) -> int:
    counter = FaultyStorage(repo.storage, fail_at=0)
    archiver.backup(reopen(repo, counter, key_file), files(src), quiet=True)
    return counter.count


@pytest.mark.parametrize("after", [False, True], ids=["before-the-operation", "reply-lost"])
def test_a_backup_failing_at_any_storage_operation_damages_nothing(
    local_repo: Repository, key_file: Path, tmp_path: Path, after: bool
) -> None:
    """For every k, from the same starting repository: fail operation k of a backup, then the
    earlier snapshot restores byte for byte, verify --read-data is clean, and a rerun works."""
    src = make_tree(tmp_path / "srv")
    first = archiver.backup(local_repo, files(src), quiet=True)
    golden = tree_digest(src)
    (src / "processed" / "2026-12.UKE").write_bytes(os.urandom(120_000))
    failed_at = []
    for k in itertools.count(1):
        copy = tmp_path / f"repo-{k}"
        shutil.copytree(tmp_path / "repo", copy)
        storage = LocalStorage(copy)
        faulty = FaultyStorage(storage, fail_at=k, after=after)
        try:
            archiver.backup(reopen(local_repo, faulty, key_file), files(src), quiet=True)
        except InjectedFault:
            failed_at.append(k)
        else:
            break  # the backup needs fewer than k operations: every one has been failed
        repo = reopen(local_repo, storage, key_file)
        out = archiver.restore(repo, tmp_path / f"out-{k}", snapshot=first["snapshot"], quiet=True)
        assert out["ok"] and tree_digest(out_of(tmp_path / f"out-{k}", src)) == golden, k
        check = archiver.verify(repo, read_data=True, quiet=True)
        assert check["ok"], (k, check["problems"])
        assert archiver.backup(repo, files(src), quiet=True)["ok"], k
        subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)
        shutil.rmtree(copy)
        shutil.rmtree(tmp_path / f"out-{k}")
    assert len(failed_at) >= 12, failed_at


@pytest.mark.parametrize("after", [False, True], ids=["before-the-operation", "reply-lost"])
def test_successive_failing_backups_on_s3_damage_nothing_and_the_last_completes(
    s3_repo: Repository, kms: Any, tmp_path: Path, after: bool
) -> None:
    """The same on an Object Lock bucket (moto), attempts piling up as a bad night would: the
    run failing at operation 1, then one failing at 2, ... until one completes."""
    src = make_tree(tmp_path / "srv")
    first = archiver.backup(s3_repo, files(src), quiet=True)
    (src / "processed" / "2026-12.UKE").write_bytes(os.urandom(120_000))
    attempts = 0
    for k in itertools.count(1):
        faulty = FaultyStorage(s3_repo.storage, fail_at=k, after=after)
        try:
            last = archiver.backup(Repository.open(faulty, KeyOptions(kms=kms)), files(src),
                                   quiet=True)  # fmt: skip
            break
        except InjectedFault:
            attempts += 1
    assert attempts >= 12 and last["ok"]
    assert archiver.verify(s3_repo, read_data=True, quiet=True)["ok"]
    for snap in (first["snapshot"], last["snapshot"]):
        out = archiver.restore(s3_repo, tmp_path / snap[:8], snapshot=snap, quiet=True)
        assert out["ok"], out["problems"]
    assert len(s3_repo.list_snapshots()) == 2


def _backup_and_die(repo_dir: str, key_file: str, src: str, fail_at: int) -> None:
    storage = FaultyStorage(LocalStorage(Path(repo_dir)), fail_at=fail_at, exit_process=True)
    repo = Repository.open(storage, KeyOptions(key_file=Path(key_file)))
    archiver.backup(repo, files(Path(src)), quiet=True)


def test_a_backup_process_killed_midway_leaves_every_earlier_snapshot_whole(
    local_repo: Repository, key_file: Path, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv")
    first = archiver.backup(local_repo, files(src), quiet=True)
    golden = tree_digest(src)
    (src / "processed" / "2026-12.UKE").write_bytes(os.urandom(200_000))
    total = count_operations(local_repo, src, key_file)
    ctx = multiprocessing.get_context("fork")
    codes = []
    for k in (2, total // 3, total // 2, total - 1):
        proc = ctx.Process(
            target=_backup_and_die, args=(str(tmp_path / "repo"), str(key_file), str(src), k)
        )
        proc.start()
        proc.join(60)
        codes.append(proc.exitcode)
    # A later run adopts what an earlier one uploaded, so it may need fewer operations than k
    # and finish (0); it never fails any other way (a stale lease would make it exit 1).
    assert set(codes) <= {0, 137} and codes[0] == 137, codes
    out = archiver.restore(local_repo, tmp_path / "out", snapshot=first["snapshot"], quiet=True)
    assert out["ok"] and tree_digest(out_of(tmp_path / "out", src)) == golden
    assert archiver.verify(local_repo, read_data=True, quiet=True)["ok"]
    rerun = archiver.backup(local_repo, files(src), quiet=True)
    assert rerun["ok"]
    assert rerun["adopted_packs"] == [] or rerun["sizes"]["new"] < 200_000


def test_an_interrupted_backup_is_resumed_without_uploading_again(
    local_repo: Repository, key_file: Path, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv", size=600_000)
    total = count_operations(local_repo, src, key_file)  # commits once; start from scratch
    fresh = Repository.init(
        LocalStorage(tmp_path / "repo2"),
        KeyOptions(key_file=key_file),
        lock_days=1,
        chunker=local_repo.config.chunker,
        pack_size=local_repo.config.pack_size,
    )
    # The last operations: index, snapshot, the heads' listing, the head: fail before the index.
    faulty = FaultyStorage(fresh.storage, fail_at=total - 5)  # packs are up, no index yet
    with pytest.raises(InjectedFault):
        archiver.backup(reopen(fresh, faulty, key_file), files(src), quiet=True)
    assert fresh.list_snapshots() == []
    rerun = archiver.backup(fresh, files(src), quiet=True)
    assert rerun["adopted_packs"], "the packs of the interrupted run are taken in"
    assert rerun["sizes"]["new"] < rerun["sizes"]["logical"] / 4


# --- a damaged repository -------------------------------------------------------------------


@pytest.fixture
def damaged(local_repo: Repository, tmp_path: Path) -> tuple[Repository, Path, dict[str, Any]]:
    src = make_tree(tmp_path / "srv")
    report = archiver.backup(local_repo, files(src), quiet=True)
    return local_repo, src, report


def _pack_of(repo: Repository, report: dict[str, Any], name: str) -> str:
    snap = repo.get_snapshot(report["snapshot"])
    entry = next(e for e in snap["sources"][0]["entries"] if e["path"].endswith(name))
    index = repo.load_index()
    return index.blobs[bytes.fromhex(entry["chunks"][0])].pack


def _file(tmp_path: Path, key: str) -> Path:
    path = tmp_path / "repo" / key
    os.chmod(path, 0o640)
    return path


def test_a_corrupted_pack_is_named_by_verify_and_never_restored(
    damaged: Any, tmp_path: Path
) -> None:
    repo, src, report = damaged
    pack = _pack_of(repo, report, "2026-11.UKE")
    path = _file(tmp_path, pack_key(pack))
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert archiver.verify(repo, quiet=True)["ok"], "structure alone cannot see a flipped bit"
    check = archiver.verify(repo, read_data=True, quiet=True)
    assert not check["ok"]
    assert any(
        pack in p and "does not match its SHA-256" in p and "2026-11.UKE" in p
        for p in check["problems"]
    ), check["problems"]
    out = archiver.restore(repo, tmp_path / "out", quiet=True)
    assert not out["ok"] and any(
        "2026-11.UKE" in p and "authenticate" in p for p in out["problems"]
    )
    restored = out_of(tmp_path / "out", src) / "processed"
    assert not (restored / "2026-11.UKE").exists()
    assert not list(restored.glob(".*partial")), "no half-written file is left behind"
    assert (restored / "blob.bin").read_bytes() == (src / "processed" / "blob.bin").read_bytes()


def test_a_truncated_pack_is_named_by_structural_verify(damaged: Any, tmp_path: Path) -> None:
    repo, _, report = damaged
    pack = _pack_of(repo, report, "blob.bin")
    path = _file(tmp_path, pack_key(pack))
    path.write_bytes(path.read_bytes()[:-500])
    check = archiver.verify(repo, quiet=True)
    assert any(pack in p and "truncated" in p for p in check["problems"]), check["problems"]


def test_a_deleted_pack_is_named_with_the_snapshots_that_need_it(
    damaged: Any, tmp_path: Path
) -> None:
    repo, _, report = damaged
    pack = _pack_of(repo, report, "blob.bin")
    _file(tmp_path, pack_key(pack)).unlink()
    check = archiver.verify(repo, quiet=True)
    assert any(
        f"pack {pack}: missing" in p and report["snapshot"][:12] in p for p in check["problems"]
    ), check["problems"]
    out = archiver.restore(repo, tmp_path / "out", quiet=True)
    assert any("blob.bin" in p and "missing" in p for p in out["problems"])


def test_a_corrupted_manifest_is_named_and_refused(damaged: Any, tmp_path: Path) -> None:
    repo, _, report = damaged
    path = _file(tmp_path, f"snapshots/{report['snapshot']}")
    flip_last_byte(path)
    check = archiver.verify(repo, quiet=True)
    assert any(
        report["snapshot"] in p and "does not match its name" in p for p in check["problems"]
    )
    with pytest.raises(crypto.IntegrityError, match="corrupted"):
        archiver.restore(repo, tmp_path / "out", snapshot=report["snapshot"], quiet=True)


def test_a_swapped_manifest_does_not_authenticate(damaged: Any, tmp_path: Path) -> None:
    """Renaming an index to a snapshot name (fixing the digest) still fails: AAD binds kind."""
    repo, _, _report = damaged
    index_key = repo.storage.list_objects("index/")[0].key
    repo.storage.put(
        f"snapshots/{index_key.split('/')[1]}", repo.storage.get(index_key), retain_until=None
    )
    check = archiver.verify(repo, quiet=True)
    assert any("does not authenticate" in p for p in check["problems"]), check["problems"]


def test_read_data_subsets_cover_every_pack_over_successive_runs(
    damaged: Any, tmp_path: Path
) -> None:
    repo, _, _ = damaged
    packs = len(repo.load_index().packs)
    state = tmp_path / "state"
    covered = []
    want = -(-packs * 30 // 100)
    runs = -(-packs // want)
    read = []
    for _ in range(runs + 1):
        r = archiver.verify(repo, read_data=True, subset=30, state_dir=state, quiet=True)
        assert r["ok"]
        covered.append(r["coverage"]["covered_percent"])
        read.append(r["coverage"]["read_now"])
    assert covered[runs - 1] == 100.0 and all(a < b for a, b in itertools.pairwise(covered[:runs]))
    assert sum(read[:runs]) == packs, "each pack is read once per cycle"
    assert r["coverage"]["cycle"] == 2 and covered[runs] < 100.0  # the next cycle begins


# --- keys -------------------------------------------------------------------------------------


def test_a_wrong_key_file_is_refused_by_name(local_repo: Repository, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    crypto.make_key_file(other)
    with pytest.raises(crypto.KeyError_, match=f"key file {other} does not open"):
        Repository.open(local_repo.storage, KeyOptions(key_file=other))


def test_a_key_file_others_can_read_is_refused(local_repo: Repository, key_file: Path) -> None:
    os.chmod(key_file, 0o644)
    with pytest.raises(crypto.KeyError_, match="mode 644 lets others read it"):
        Repository.open(local_repo.storage, KeyOptions(key_file=key_file))


class DeniedKms:
    """What KMS answers a principal whose policy lacks kms:Decrypt (moto does not evaluate
    IAM, so the answer itself is reproduced here)."""

    def decrypt(self, **_: Any) -> Any:
        raise ClientError(
            {
                "Error": {
                    "Code": "AccessDeniedException",
                    "Message": "User is not authorized to perform: kms:Decrypt",
                }
            },
            "Decrypt",
        )


def test_a_missing_kms_permission_is_a_clear_error(s3_repo: Repository, kms_key: str) -> None:
    with pytest.raises(crypto.KeyError_, match=r"AccessDeniedException.*kms:Decrypt"):
        Repository.open(s3_repo.storage, KeyOptions(kms=DeniedKms()))


# --- S3 unreachable, and two backups at once -----------------------------------------------------


def test_unreachable_s3_is_retried_with_backoff_then_named(tmp_path: Path) -> None:
    import boto3
    from botocore.config import Config

    from .conftest import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="ap-northeast-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    storage = S3Storage(
        "s3://claims-dc-nowhere/db-1",
        client=client,
        endpoint_url=endpoint,
        attempts=3,
        backoff=0.01,
    )
    with pytest.raises(Unreachable, match=rf"{endpoint}.*get config failed after 3 attempts"):
        storage.get("config")


def test_a_second_backup_while_one_holds_the_lease_is_refused(
    local_repo: Repository, tmp_path: Path
) -> None:
    lease = local_repo.acquire_lease("backup")
    with pytest.raises(Busy, match=r"in use \(backup by .* pid"):
        local_repo.acquire_lease("backup", attempts=2, wait=0.01)
    with pytest.raises(Busy):
        archiver.backup(local_repo, files(make_tree(tmp_path / "srv")), quiet=True)
    local_repo.release_lease(lease)
    assert archiver.backup(local_repo, files(tmp_path / "srv"), quiet=True)["ok"]


def test_leases_written_at_the_same_moment_both_back_off(local_repo: Repository) -> None:
    """Neither trusts clocks: with two live leases, both give way (and retry later)."""
    storage = local_repo.storage
    first = local_repo.acquire_lease("backup")
    storage.put(
        "locks/00000000T000000Z-early",
        local_repo.key.seal_json(
            {
                "purpose": "backup",
                "host": "db-2",
                "pid": 1,
                "created": "2000-01-01T00:00:00Z",
                "expires": "2999-01-01T00:00:00Z",
            },
            b"lease",
        ),
        retain_until=None,
    )
    assert {d["host"] for d in local_repo.live_leases(exclude=first)} == {"db-2"}
