"""Progress bars for long work, on stderr (stdout stays for --json): flash and deploy."""

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

_LABELS = {"erase": "erasing", "write": "writing", "copy": "copying", "verify": "checking"}


class Bars:
    """One bar per step; callbacks in the shapes the services take."""

    def __init__(self, progress: Progress | None) -> None:
        self._p = progress
        self._tasks: dict[str, TaskID] = {}

    def _update(self, step: str, done: int, total: int, what: str = "") -> None:
        if self._p is None:
            return
        label = _LABELS.get(step, step)
        if step not in self._tasks:
            self._tasks[step] = self._p.add_task(label, total=max(total, 1))
        desc = f"{label} {what}".rstrip()
        self._p.update(self._tasks[step], completed=done, total=max(total, 1), description=desc)

    def flash(self, step: str, done: int, total: int) -> None:
        self._update(step, done, total)

    def deploy(self, phase: str, path: str, done: int, total: int) -> None:
        if phase == "copy":
            self._update("copy", done, total, path)


@contextmanager
def bars(enabled: bool = True) -> Iterator[Bars]:
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield Bars(None)
        return
    columns = (
        TextColumn("{task.description}", table_column=None),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as p:
        yield Bars(p)
