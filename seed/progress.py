"""A tiny dependency-free text progress bar for stderr.

On a TTY it redraws one line (at most ``min_interval`` seconds apart); otherwise it prints a plain
line every ~10 % so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self,
        total: int,
        label: str = "",
        *,
        stream: TextIO | None = None,
        width: int = 30,
        min_interval: float = 0.1,
    ) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.min_interval = min_interval
        self.count = 0
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._closed = False
        isatty = getattr(self.stream, "isatty", None)
        self._tty = bool(isatty()) if callable(isatty) else False
        self._next_decile = 1

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rate(self) -> float:
        elapsed = time.monotonic() - self._start
        return self.count / elapsed if elapsed > 0 else 0.0

    def _line(self) -> str:
        rate = self._rate()
        if self.total:
            frac = min(self.count / self.total, 1.0)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            return f"{self.label} [{bar}] {self.count}/{self.total} {frac:4.0%} {rate:,.0f}/s"
        return f"{self.label} {self.count} {rate:,.0f}/s"

    def update(self, n: int = 1) -> None:
        if self._closed:
            return
        self.count += n
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
        elif self.total:
            crossed = False
            while self._next_decile <= 9 and self.count * 10 >= self._next_decile * self.total:
                self._next_decile += 1
                crossed = True
            if crossed:  # one line however many tenths a large batch crossed
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.total = max(self.count, 1)  # the total was an estimate: the finished bar is complete
        if self._tty:
            self.stream.write("\r" + self._line() + "\n")
        else:
            self.stream.write(self._line() + " done\n")
        self.stream.flush()
