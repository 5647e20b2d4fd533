"""A progress bar on stderr while files are reviewed (rich, the optional ``cli`` extra)."""

from __future__ import annotations

from typing import Any

__all__ = ["progress"]


class _NoProgress:
    def advance(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _RichProgress:
    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._p = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task: Any = self._p.add_task("reviewing", total=total)
        self._p.start()

    def advance(self) -> None:
        self._p.advance(self._task)

    def stop(self) -> None:
        self._p.stop()


def progress(total: int, *, enabled: bool) -> _NoProgress | _RichProgress:
    """A bar over ``total`` files when ``enabled`` and rich is installed; else nothing."""
    if not enabled:
        return _NoProgress()
    try:
        return _RichProgress(total)
    except ImportError:
        return _NoProgress()
