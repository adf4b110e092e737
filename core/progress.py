"""Progress of long command-line work (`index`, `import`, `export`, `backup`, `restore`, `eval`,
`reconcile`): a bar with counts, rate and ETA when the stream is a terminal, one summary line when
it is not (a pipe, a log file, cron).

Services know nothing of terminals: they take an optional callback `(done, total)` (`Step`), and
the command owns a `ProgressBar` and passes its `update` (or an adapter) to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

Step = Callable[[int, int | None], None]  # (done so far, total when known)


def _raw(stream: Any) -> TextIO:
    # A management command's self.stderr wraps the real stream and appends newlines to what it
    # writes; the bar needs the stream itself (its carriage returns, its isatty()).
    return getattr(stream, "_out", stream)


class ProgressBar:
    """One piece of long work. Use as a context manager; call `update(done, total, **counts)` with
    absolute figures (counts such as skipped=3 are shown beside the bar and in the summary).
    `unit` is plural ("items", "memories")."""

    def __init__(self, stream: Any, label: str, *, unit: str = "items", total: int | None = None) -> None:
        self.stream = _raw(stream)
        self.label = label
        self.unit = unit
        self.total = total
        self.done = 0
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()
        self.closed = False
        isatty = getattr(self.stream, "isatty", None)
        self.interactive = bool(isatty and isatty())
        self.bar: tqdm[Any] | None = None
        if self.interactive:
            self.bar = tqdm(
                total=total, desc=label, unit=unit, file=self.stream, dynamic_ncols=True, mininterval=0.2, leave=True
            )

    def update(self, done: int, total: int | None = None, /, **counts: int) -> None:
        if total is not None:
            self.total = total
        self.counts.update(counts)
        step = done - self.done
        self.done = done
        if self.bar is None:
            return
        if total is not None and self.bar.total != total:
            self.bar.total = total
        if counts:
            self.bar.set_postfix(counts, refresh=False)
        if step >= 0:
            self.bar.update(step)  # through update(): tqdm's rate and ETA come from these steps
        else:
            self.bar.n = done
            self.bar.refresh()

    def __call__(self, done: int, total: int | None = None) -> None:
        self.update(done, total)

    def write(self, stream: Any, text: str) -> None:
        """Write a line to `stream` (stdout, say) without tearing the bar drawn on the terminal."""
        if self.bar is None:
            stream.write(text)
            return
        with tqdm.external_write_mode(file=self.stream):
            stream.write(text)
            stream.flush()

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        of = f"/{self.total}" if self.total is not None and self.total != self.done else ""
        counts = ", ".join(f"{name} {value}" for name, value in self.counts.items())
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label}: {self.done}{of} {self.unit}{f' ({counts})' if counts else ''}"
            f" in {elapsed:.1f} s, {rate:.1f} {self.unit}/s"
        )

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        else:
            self.stream.write(self.summary() + "\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
