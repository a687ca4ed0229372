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


WINDOW = 16 << 20  # bytes of a file in memory at once while chunking it


class Chunker:
    def __init__(self, params: ChunkerParams, seed: int, window: int = WINDOW) -> None:
        if window < 2 * params.max_size:
            raise ValueError(f"a window of {window} bytes is under twice max_size")
        self.params = params
        self.window = window
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
        """Chunks of a file, read a window at a time so that memory stays bounded by the
        window (not the file: a whole-file map of a 2 GiB file is 2 GiB of resident pages).
        The boundaries are those of chunking the whole file at once: a chunk is taken from a
        window only while at least max_size bytes follow its start there (a cut never looks
        further than that), and the rest is carried into the next window."""
        max_size = self.params.max_size
        # One buffer for the whole file: the views handed out are dead by the time it is
        # refilled (each is valid until the next chunk), and fresh memory would be faulted in
        # page by page again for every window.
        # Sized to the file when it is smaller: a claim file needs kilobytes, not the window.
        window = bytearray(min(self.window, path.stat().st_size + 1) + max_size)
        view = memoryview(window)
        with open(path, "rb", buffering=0) as f:
            carry = b""
            eof = False
            while not eof:
                window[: len(carry)] = carry
                filled = len(carry)
                while filled < len(window):
                    n = f.readinto(view[filled:])
                    if not n:
                        eof = True
                        break
                    filled += n
                if filled == 0:
                    return
                data = view[:filled]
                taken = 0
                for chunk in self._cdc.cut_buf(data):
                    if not eof and filled - chunk.offset < max_size:
                        break
                    yield chunk.data
                    taken = chunk.offset + chunk.length
                carry = bytes(data[taken:filled])
