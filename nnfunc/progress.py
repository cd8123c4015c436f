"""The progress display of :func:`nnfunc.train.fit`.

On a terminal it redraws one bar per epoch on stderr (at most ten times a
second) with the running loss and the time left; when stderr is not a
terminal (CI logs, files) it prints one line per epoch. :func:`format_line`
is the pure formatter both use.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_line"]


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def format_line(epoch: int, epochs: int, done: int, total: int, elapsed: float,
                logs: dict[str, float], width: int = 20) -> str:
    """One progress line, e.g. ``epoch 3/10 [######......] 30/50 loss 0.1234 eta 1.2s``.

    >>> format_line(0, 2, 5, 10, 1.0, {"loss": 0.5}, width=10)
    'epoch 1/2 [#####.....] 5/10 loss 0.5000 eta 1.0s'
    """
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    values = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "time")
    head = f"epoch {epoch + 1}/{epochs} [{bar}] {done}/{total}"
    if done < total:
        eta = elapsed / max(done, 1) * (total - done)
        return f"{head} {values} eta {_duration(eta)}"
    return f"{head} {values} {_duration(elapsed)}"


class Progress:
    """Draws ``fit``'s progress; does nothing when ``enabled`` is false.

    A display is the one place where the loop keeps mutable state (the time
    of the last redraw); it lives here, at the edge, not in the training math.
    """

    def __init__(self, epochs: int, steps: int, *, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.epochs, self.steps, self.enabled = epochs, steps, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def step(self, epoch: int, done: int, logs: dict[str, float]) -> None:
        """After step ``done`` of ``epoch``: redraw the bar on a terminal."""
        if done == 1:
            self.start = time.perf_counter()
        if not self.live:
            return
        now = time.perf_counter()
        if now - self.last_draw >= 0.1 or done == self.steps:
            self.last_draw = now
            line = format_line(epoch, self.epochs, done, self.steps, now - self.start, logs)
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """After ``epoch``: finish the bar, or print the epoch's one line."""
        if not self.enabled:
            return
        line = format_line(epoch, self.epochs, self.steps, self.steps,
                           logs.get("time", time.perf_counter() - self.start), logs)
        self.stream.write(("\r" + line + "\x1b[K\n") if self.live else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Flush the stream."""
        if self.enabled:
            self.stream.flush()
