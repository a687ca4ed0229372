"""FORMAT.md is complete: a small reader written from it alone, importing nothing of
ops.backuplib, opens a repository the tool made and restores a file byte for byte."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from pathlib import Path
from typing import Any

import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ops.backuplib import archiver
from ops.backuplib.repository import Repository
from ops.backuplib.sources import SourceSpec

from .conftest import make_tree


class Reader:
    """A repository in a local directory, read as FORMAT.md describes it."""

    def __init__(self, root: Path, key_file: Path) -> None:
        self.root = root
        [record_path] = sorted((root / "keys").iterdir())
        record = json.loads(record_path.read_text())
        assert record["kind"] == "file" and record["version"] == 1
        self.repo_id = record["repository"]
        wrapping = base64.b64decode(key_file.read_text().strip())
        wrapped = base64.b64decode(record["wrapped"])
        master = AESGCM(wrapping).decrypt(wrapped[:12], wrapped[12:], self.repo_id.encode())
        assert len(master) == 64

        def derive(label: bytes, size: int) -> bytes:
            return HKDF(hashes.SHA256(), length=size, salt=None, info=label).derive(master)

        self.seal = AESGCM(derive(b"claims-dc seal v1", 32))
        self.id_key = derive(b"claims-dc blob id v1", 32)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        return self.seal.decrypt(sealed[:12], sealed[12:], aad)

    def sealed_json(self, name: str, aad: bytes, content_named: bool = True) -> Any:
        data = (self.root / name).read_bytes()
        if content_named:
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[-1], name
        return json.loads(self.open(data, aad))

    def config(self) -> dict[str, Any]:
        return dict(self.sealed_json("config", b"config", content_named=False))

    def blobs(self) -> dict[str, tuple[str, int, int, int]]:
        """Blob ID -> (pack, offset, length, raw length), from the live indexes."""
        indexes = {p.name: self.sealed_json(f"index/{p.name}", b"index")
                   for p in (self.root / "index").iterdir()}  # fmt: skip
        superseded = {s for doc in indexes.values() for s in doc["supersedes"]}
        out = {}
        for name, doc in indexes.items():
            if name in superseded:
                continue
            for pack, info in doc["packs"].items():
                for blob_id, offset, length, raw in info["blobs"]:
                    out[blob_id] = (pack, offset, length, raw)
        return out

    def pack_header(self, pack: str) -> list[list[Any]]:
        data = (self.root / "data" / pack[:2] / pack).read_bytes()
        assert hashlib.sha256(data).hexdigest() == pack
        (length,) = struct.unpack("<I", data[-4:])
        return list(json.loads(self.open(data[-4 - length : -4], b"pack-header")))

    def newest_snapshot(self) -> dict[str, Any]:
        heads = sorted(int(p.name) for p in (self.root / "heads").iterdir() if p.name.isdigit())
        head = self.sealed_json(f"heads/{heads[-1]:012d}", b"head", content_named=False)
        assert head["sequence"] == heads[-1]
        return dict(self.sealed_json(f"snapshots/{head['snapshot']}", b"snapshot"))

    def content(self, entry: dict[str, Any], blobs: dict[str, tuple[str, int, int, int]]) -> bytes:
        parts = []
        for hex_id in entry["chunks"]:
            pack, offset, length, raw = blobs[hex_id]
            data = (self.root / "data" / pack[:2] / pack).read_bytes()[offset : offset + length]
            plain = self.open(data, bytes.fromhex(hex_id))
            chunk = (
                plain[1:]
                if plain[0] == 0
                else (zstandard.ZstdDecompressor().decompress(plain[1:], max_output_size=raw))
            )
            assert plain[0] in (0, 1) and len(chunk) == raw
            assert hmac.digest(self.id_key, chunk, hashlib.sha256).hex() == hex_id
            parts.append(chunk)
        out = b"".join(parts)
        assert len(out) == entry["size"] and hashlib.sha256(out).hexdigest() == entry["sha256"]
        return out


def test_a_reader_written_from_the_format_restores_a_file(
    local_repo: Repository, key_file: Path, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "srv", size=600_000)
    archiver.backup(local_repo, [SourceSpec("claim-files", "files", paths=[str(src)])], quiet=True)
    (src / "processed" / "2026-12.UKE").write_bytes(b"RE,1,2\n" * 5000)  # a second snapshot
    archiver.backup(local_repo, [SourceSpec("claim-files", "files", paths=[str(src)])], quiet=True)

    reader = Reader(tmp_path / "repo", key_file)
    config = reader.config()
    assert config["version"] == 1 and config["id"] == reader.repo_id
    assert set(config["chunker"]) == {"avg_size", "min_size", "max_size", "normalized_chunking"}
    blobs = reader.blobs()
    # Every pack's own header agrees with the index.
    for pack in {p for p, _, _, _ in blobs.values()}:
        for blob_id, offset, length, raw in reader.pack_header(pack):
            assert blobs[blob_id] == (pack, offset, length, raw)

    snapshot = reader.newest_snapshot()
    [source] = snapshot["sources"]
    by_path = {e["path"]: e for e in source["entries"]}
    for name in ("2026-11.UKE", "blob.bin", "2026-12.UKE"):
        entry = by_path[f"{str(src).lstrip('/')}/processed/{name}"]
        assert entry["type"] == "file"
        restored = tmp_path / "restored" / name
        restored.parent.mkdir(exist_ok=True)
        restored.write_bytes(reader.content(entry, blobs))
        assert restored.read_bytes() == (src / "processed" / name).read_bytes()
    link = by_path[f"{str(src).lstrip('/')}/latest"]
    assert link["type"] == "symlink" and link["target"] == "processed/2026-11.UKE"


def test_the_lease_is_a_sealed_object_with_its_release_marker(
    local_repo: Repository, key_file: Path, tmp_path: Path
) -> None:
    name = local_repo.acquire_lease("backup")
    reader = Reader(tmp_path / "repo", key_file)
    body = json.loads(reader.open((tmp_path / "repo" / "locks" / name).read_bytes(), b"lease"))
    assert set(body) == {"purpose", "host", "pid", "process_start", "created", "expires"}
    local_repo.release_lease(name)
    assert (tmp_path / "repo" / "locks" / f"{name}.released").read_bytes() == b""
