"""The repository round trip, deduplication, Object Lock and retention."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest

from ops.backuplib import archiver
from ops.backuplib.repository import KeyOptions, Repository, RepositoryError, pack_key
from ops.backuplib.retention import RetentionPolicy, decide
from ops.backuplib.sources import SourceSpec
from ops.backuplib.storage import Forbidden, LocalStorage, S3Storage

from .conftest import SMALL, SMALL_PACK, days_ago, make_bucket, make_tree, tree_digest


def files(root: Path) -> list[SourceSpec]:
    return [SourceSpec("claim-files", "files", paths=[str(root)])]


def restored(target: Path, root: Path) -> Path:
    return target / "claim-files" / str(root).lstrip("/")


def test_a_local_round_trip_restores_byte_for_byte_with_modes(
    local_repo: Repository, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv")
    report = archiver.backup(local_repo, files(src), quiet=True)
    assert report["ok"] and report["sizes"]["new"] == report["sizes"]["logical"] > 0
    assert report["immutability"].startswith("none")
    out = archiver.restore(local_repo, tmp_path / "out", quiet=True)
    assert out["ok"] and out["problems"] == []
    assert tree_digest(restored(tmp_path / "out", src)) == tree_digest(src)


def test_an_unchanged_tree_adds_no_new_data_and_a_small_change_little(
    local_repo: Repository, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv")
    first = archiver.backup(local_repo, files(src), quiet=True)
    again = archiver.backup(local_repo, files(src), quiet=True)
    assert again["sizes"]["new"] == 0 and again["chunks"]["new"] == 0
    uke = src / "processed" / "2026-11.UKE"
    data = bytearray(uke.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 10] = b"X" * 10
    uke.write_bytes(bytes(data))
    changed = archiver.backup(local_repo, files(src), quiet=True)
    assert 0 < changed["sizes"]["new"] < first["sizes"]["new"] / 4
    assert len(local_repo.list_snapshots()) == 3


def test_compression_and_encryption_leave_no_plaintext_in_the_repository(
    local_repo: Repository, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv")
    archiver.backup(local_repo, files(src), quiet=True)
    repo_root = tmp_path / "repo"
    stored = b"".join(p.read_bytes() for p in repo_root.rglob("*") if p.is_file())
    assert "テスト太郎".encode("shift_jis") not in stored
    assert b"2026-11.UKE" not in stored and b"totals" not in stored
    config = (repo_root / "config").read_bytes()
    assert b"chunker" not in config  # even the parameters are sealed


def test_s3_objects_carry_compliance_locks_checksums_and_the_kms_key(
    s3_repo: Repository, s3: Any, tmp_path: Path, kms_key: str
) -> None:
    src = make_tree(tmp_path / "srv")
    report = archiver.backup(s3_repo, files(src), quiet=True)
    assert report["key"] == {"kind": "kms", "kms_key_id": kms_key}
    assert report["immutability"] == "Object Lock COMPLIANCE"
    storage: S3Storage = s3_repo.storage  # type: ignore[assignment]
    assert report["objects"], "the report lists every object written"
    for obj in report["objects"]:
        head = s3.head_object(
            Bucket=storage.bucket,
            Key=f"db-1/{obj['key']}",
            VersionId=obj["version_id"],
            ChecksumMode="ENABLED",
        )
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] >= dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)
        assert obj["retain_until"] == report["retain_until"]
    archiver.restore(s3_repo, tmp_path / "out", quiet=True)
    assert tree_digest(restored(tmp_path / "out", src)) == tree_digest(src)


def test_a_locked_object_cannot_be_deleted_by_hand_during_its_retention(
    s3_repo: Repository, s3: Any, tmp_path: Path
) -> None:
    report = archiver.backup(s3_repo, files(make_tree(tmp_path / "srv")), quiet=True)
    storage: S3Storage = s3_repo.storage  # type: ignore[assignment]
    snap = next(o for o in report["objects"] if o["key"].startswith("snapshots/"))
    with pytest.raises(Forbidden, match="access denied"):
        storage.delete(snap["key"], snap["version_id"])
    assert s3_repo.get_snapshot(report["snapshot"])["id"] == report["snapshot"]


def test_referenced_older_packs_get_their_locks_extended(
    s3_repo: Repository, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv")
    first = archiver.backup(s3_repo, files(src), quiet=True)
    second = archiver.backup(s3_repo, files(src), quiet=True)
    assert second["extended_locks"] > 0
    old_pack = next(o for o in first["objects"] if o["key"].startswith("data/"))
    head = s3_repo.storage.head(old_pack["key"], old_pack["version_id"])
    assert head.retain_until is not None
    assert head.retain_until >= dt.datetime.fromisoformat(
        second["retain_until"].replace("Z", "+00:00")
    )


def test_init_refuses_a_bucket_without_object_lock(
    s3: Any, kms: Any, kms_key: str, moto_endpoint: str
) -> None:
    bucket = make_bucket(s3, lock=False)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    storage = S3Storage(f"s3://{bucket}/db-1", client=s3, endpoint_url=moto_endpoint)
    with pytest.raises(RepositoryError, match=f"{bucket}.*no Object Lock"):
        Repository.init(storage, KeyOptions(kms=kms, kms_key_id=kms_key), lock_days=1)
    assert storage.list_objects("") == []


@pytest.mark.parametrize(
    ("mode", "days", "why"),
    [
        ("GOVERNANCE", 30, "GOVERNANCE can be bypassed"),
        ("COMPLIANCE", 1, "weaker than the repository's 30 lock days"),
    ],
)
def test_run_refuses_a_bucket_whose_lock_is_weaker_than_the_policy(
    s3: Any,
    kms: Any,
    kms_key: str,
    moto_endpoint: str,
    tmp_path: Path,
    mode: str,
    days: int,
    why: str,
) -> None:
    good = S3Storage(f"s3://{make_bucket(s3, days=30)}/db-1", client=s3, endpoint_url=moto_endpoint)
    Repository.init(good, KeyOptions(kms=kms, kms_key_id=kms_key), lock_days=30)
    weak_bucket = make_bucket(s3, mode=mode, days=days)
    weak = S3Storage(f"s3://{weak_bucket}/db-1", client=s3, endpoint_url=moto_endpoint)
    with pytest.raises(RepositoryError, match=why):
        Repository.init(weak, KeyOptions(kms=kms, kms_key_id=kms_key), lock_days=30)
    # The same repository found in a weaker bucket (copied there, or the bucket reconfigured,
    # which real S3 allows at any time): run refuses before writing anything.
    for obj in good.list_objects(""):
        weak.put(obj.key, good.get(obj.key), retain_until=None)
    repo = Repository.open(weak, KeyOptions(kms=kms))
    with pytest.raises(RepositoryError, match=why) as e:
        archiver.backup(repo, files(make_tree(tmp_path / "srv")), quiet=True)
    assert weak_bucket in str(e.value)
    assert repo.list_snapshots() == [] and weak.list_objects("locks/") == []


def test_init_refuses_an_existing_repository(local_repo: Repository, key_file: Path) -> None:
    with pytest.raises(RepositoryError, match="already there"):
        Repository.init(local_repo.storage, KeyOptions(key_file=key_file), lock_days=1)


# --- retention and prune --------------------------------------------------------------------


def snaps(*times: str) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "time": t} for i, t in enumerate(times)]


def test_the_generations_policy_keeps_the_newest_of_each_period() -> None:
    s = snaps(
        "2026-01-31T01:00:00Z",
        "2026-02-27T01:00:00Z",
        "2026-02-28T01:00:00Z",
        "2026-03-01T01:00:00Z",
        "2026-03-01T02:00:00Z",
        "2026-03-02T01:00:00Z",
    )
    keep, forget, why = decide(s, RetentionPolicy(daily=2, monthly=2, yearly=1))
    assert [k["id"] for k in keep] == ["s5", "s4", "s2"]
    assert {f["id"] for f in forget} == {"s0", "s1", "s3"}
    assert why["s2"] == ["monthly 2026-02"] and "yearly 2026" in why["s5"]


def test_the_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=r"retention\.daily"):
        RetentionPolicy.from_dict({"daily": 0}, "backup.toml")
    with pytest.raises(ValueError, match=r"retention\.monthly must be a whole number"):
        RetentionPolicy.from_dict({"monthly": "12"}, "backup.toml")


def test_prune_deletes_only_what_no_kept_snapshot_needs(
    local_repo: Repository, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv")
    ids = []
    for day in range(5, 0, -1):  # five days, each with its own file, gone the next day
        (src / "processed" / f"day{day + 1}.bin").unlink(missing_ok=True)
        (src / "processed" / f"day{day}.bin").write_bytes(random.Random(day).randbytes(50_000))
        ids.append(
            archiver.backup(local_repo, files(src), quiet=True, at=days_ago(day))["snapshot"]
        )
    before = set(local_repo.list_packs())
    result = archiver.prune(local_repo, RetentionPolicy(daily=2, monthly=0, yearly=0), quiet=True)
    assert {k["id"] for k in result["keep"]} == set(ids[-2:])
    assert set(result["deleted_snapshots"]) == set(ids[:3])
    assert result["deleted_packs"] and set(result["deleted_packs"]) <= before
    assert [s["id"] for s in local_repo.list_snapshots()] == ids[-2:]
    check = archiver.verify(local_repo, read_data=True, quiet=True)
    assert check["ok"], check["problems"]
    out = archiver.restore(local_repo, tmp_path / "out", snapshot=ids[-2], quiet=True)
    assert out["ok"]
    assert (restored(tmp_path / "out", src) / "processed" / "day2.bin").exists()
    assert not (restored(tmp_path / "out", src) / "processed" / "day3.bin").exists()


def test_prune_leaves_what_a_lock_still_holds(s3_repo: Repository, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "srv")
    for day in (3, 2, 1):
        (src / "processed" / f"day{day + 1}.bin").unlink(missing_ok=True)
        (src / "processed" / f"day{day}.bin").write_bytes(random.Random(day).randbytes(40_000))
        archiver.backup(s3_repo, files(src), quiet=True, at=days_ago(day))
    result = archiver.prune(s3_repo, RetentionPolicy(daily=1, monthly=0, yearly=0), quiet=True)
    assert len(result["forget"]) == 2
    assert result["deleted_snapshots"] == [] and result["deleted_packs"] == []
    assert {h["key"].split("/")[0] for h in result["held_by_lock"]} >= {"snapshots", "data"}
    # Forgotten, so no longer listed, yet still there and restorable while the lock holds.
    assert len(s3_repo.list_snapshots()) == 1
    assert len(s3_repo.list_snapshots(include_forgotten=True)) == 3
    assert archiver.verify(s3_repo, read_data=True, quiet=True)["ok"]


def test_small_pack_size_makes_many_packs(local_repo: Repository, tmp_path: Path) -> None:
    report = archiver.backup(local_repo, files(make_tree(tmp_path / "srv")), quiet=True)
    packs = [o for o in report["objects"] if o["key"].startswith("data/")]
    assert len(packs) >= 5
    assert all(o["size"] <= SMALL_PACK + SMALL.max_size + 4096 for o in packs)
    assert all(o["key"] == pack_key(o["sha256"]) for o in packs)


def test_a_local_repository_opens_with_its_key_file_only(
    local_repo: Repository, key_file: Path, tmp_path: Path
) -> None:
    reopened = Repository.open(LocalStorage(tmp_path / "repo"), KeyOptions(key_file=key_file))
    assert reopened.config.repo_id == local_repo.config.repo_id
