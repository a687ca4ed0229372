"""Content-defined chunking: FastCDC (pyfastcdc) with parameters recorded in the repository.

The gear table is seeded from the repository's secret key material, so chunk boundaries
reveal nothing about the content to someone who sees only the stored sizes (borg's reason
for a keyed chunker).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from pyfastcdc.cy import FastCDC


@dataclass(frozen=True)
class ChunkerParams:
    avg_size: int = 1 << 20
    min_size: int = 256 << 10
    max_size: int = 4 << 20
    normalized_chunking: int = 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkerParams:
        return cls(
            **{k: int(d[k]) for k in ("avg_size", "min_size", "max_size", "normalized_chunking")}
        )


class Chunker:
    def __init__(self, params: ChunkerParams, seed: int) -> None:
        self.params = params
        self._cdc = FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalized_chunking,
            seed=seed,
        )

    def stream(self, reader: IO[bytes]) -> Iterator[memoryview]:
        """Chunks of a stream; each view is valid only until the next one is produced."""
        for chunk in self._cdc.cut_stream(reader):
            yield chunk.data

    def file(self, path: Path) -> Iterator[memoryview]:
        if path.stat().st_size == 0:
            return
        for chunk in self._cdc.cut_file(str(path)):
            yield chunk.data
