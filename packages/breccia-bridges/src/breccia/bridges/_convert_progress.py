"""The progress bar of ``breccia convert`` (rich): source bytes done, throughput, tensors/s and ETA, on stderr.

Off with ``--no-progress`` and whenever stderr is not a terminal (logs and CI get no control sequences). In-process
runs advance it per tensor; pool and ray runs per finished shard.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A context manager whose ``advance(bytes, tensors)`` is a no-op when disabled."""

    def __init__(self, total_bytes: int, total_tensors: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self.total_tensors = total_tensors
        self._tensors = 0
        self._start = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]convert"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TextColumn("{task.fields[tensors]}"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )  # fmt: skip
            self._task = self._bar.add_task("convert", total=max(total_bytes, 1), tensors="")

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, nbytes: int, tensors: int) -> None:
        if self._bar is None:
            return
        self._tensors += tensors
        rate = self._tensors / max(time.monotonic() - self._start, 1e-9)
        text = f"{self._tensors}/{self.total_tensors} tensors {rate:.1f}/s"
        self._bar.update(self._task, advance=nbytes, tensors=text)

    def advance_shard(self, record: dict[str, Any]) -> None:
        self.advance(int(record.get("bytes_in", 0)) or 0, int(record["tensors"]))
