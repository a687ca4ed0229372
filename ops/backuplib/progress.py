"""Progress on stderr: a bar that redraws on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import sys
import time


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    def __init__(self, what: str, total: int | None = None, *, quiet: bool = False) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.started = self._last = time.monotonic()

    def note(self, message: str) -> None:
        if not self.quiet:
            print(f"{self.what}: {message}", file=sys.stderr, flush=True)

    def advance(self, n: int, label: str = "") -> None:
        self.done += n
        now = time.monotonic()
        if self.quiet or now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        self._draw(label)

    def _draw(self, label: str) -> None:
        rate = self.done / max(now_minus(self.started), 1e-6)
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            text = (
                f"{self.what} [{bar:<30}] {frac * 100:5.1f}% {human(self.done)}/"
                f"{human(self.total)} {human(rate)}/s {label}"
            )
        else:
            text = f"{self.what} {human(self.done)} {human(rate)}/s {label}"
        if self.tty:
            print("\r" + text[:150].ljust(150), end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.quiet:
            return
        if self.tty:
            print(file=sys.stderr)
        secs = now_minus(self.started)
        print(f"{self.what}: {human(self.done)} in {secs:.1f}s", file=sys.stderr, flush=True)


def now_minus(t: float) -> float:
    return time.monotonic() - t
