"""Backup tests: a moto server on loopback (S3 with Object Lock, KMS), local repositories."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ops.backuplib.chunker import ChunkerParams
from ops.backuplib.crypto import make_key_file
from ops.backuplib.repository import KeyOptions, Repository
from ops.backuplib.storage import LocalStorage, S3Storage

REGION = "ap-northeast-1"
# Small chunks and packs, so that a few hundred KiB make many packs and many storage operations.
SMALL = ChunkerParams(avg_size=4096, min_size=1024, max_size=16384)
SMALL_PACK = 32 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        os.environ.setdefault(k, v)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3(moto_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)


@pytest.fixture(scope="session")
def kms(moto_endpoint: str) -> Any:
    return boto3.client("kms", endpoint_url=moto_endpoint, region_name=REGION)


@pytest.fixture
def kms_key(kms: Any) -> str:
    return str(kms.create_key(Description="backup test key")["KeyMetadata"]["Arn"])


def make_bucket(s3: Any, *, lock: bool = True, mode: str = "COMPLIANCE", days: int = 1) -> str:
    name = f"claims-dc-test-{secrets.token_hex(6)}"
    s3.create_bucket(
        Bucket=name,
        ObjectLockEnabledForBucket=lock,
        CreateBucketConfiguration={"LocationConstraint": REGION},
    )
    if lock:
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
            },
        )
    return name


@pytest.fixture
def bucket(s3: Any) -> str:
    return make_bucket(s3)


@pytest.fixture
def s3_storage(s3: Any, bucket: str, moto_endpoint: str) -> S3Storage:
    return S3Storage(f"s3://{bucket}/db-1", client=s3, endpoint_url=moto_endpoint)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "repo.key"
    make_key_file(path)
    return path


@pytest.fixture
def local_repo(tmp_path: Path, key_file: Path) -> Repository:
    return Repository.init(
        LocalStorage(tmp_path / "repo"),
        KeyOptions(key_file=key_file),
        lock_days=1,
        chunker=SMALL,
        pack_size=SMALL_PACK,
    )


@pytest.fixture
def s3_repo(s3_storage: S3Storage, kms: Any, kms_key: str) -> Repository:
    return Repository.init(
        s3_storage,
        KeyOptions(kms=kms, kms_key_id=kms_key),
        lock_days=1,
        chunker=SMALL,
        pack_size=SMALL_PACK,
    )


def make_tree(root: Path, seed: int = 0, size: int = 300_000) -> Path:
    """A few claim-file-like files: compressible text, random bytes, a symlink, a subdir."""
    import random

    rng = random.Random(seed)
    (root / "processed").mkdir(parents=True, exist_ok=True)
    lines = [
        f"RE,{i},{rng.randint(1, 10**8)},テスト太郎,{rng.random():.6f}\n" for i in range(size // 40)
    ]
    (root / "processed" / "2026-11.UKE").write_bytes("".join(lines).encode("shift_jis"))
    (root / "processed" / "blob.bin").write_bytes(rng.randbytes(size // 2))
    (root / "quarantine").mkdir(exist_ok=True)
    (root / "quarantine" / "bad.UKE.reason.json").write_text('{"reason": "totals"}\n')
    os.chmod(root / "quarantine" / "bad.UKE.reason.json", 0o640)
    link = root / "latest"
    if not link.is_symlink():
        link.symlink_to("processed/2026-11.UKE")
    return root


def tree_digest(root: Path) -> dict[str, tuple[str, int, str]]:
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", 0, os.readlink(p))
        elif p.is_file():
            out[rel] = (
                "file",
                p.stat().st_mode & 0o777,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
        else:
            out[rel] = ("dir", p.stat().st_mode & 0o777, "")
    return out


def days_ago(n: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=n)


def flip_last_byte(path: Path) -> None:
    """Damage a stored object for certain: its last byte inverted (setting it to a fixed value
    leaves it unchanged whenever it already was that value, one time in 256)."""
    os.chmod(path, 0o640)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
