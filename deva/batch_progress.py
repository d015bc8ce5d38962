"""The progress bar of ``deva batch``: videos done of all, frames/s over this run."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deva.batch import VideoRecord


class BatchProgress:
    """Context manager whose ``on_start`` / ``on_video`` / ``on_frame`` are run_batch's hooks.

    Videos finished by an earlier run count as done from the start; a failed video prints one
    line above the bar as soon as it fails.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._done_frames = 0
        self._live_frames = 0
        self._progress = Progress(
            TextColumn("[bold]videos"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.1f} frames/s"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task("batch", total=None, fps=0.0)

    def __enter__(self) -> BatchProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, traceback)

    def on_start(self, pending: int, total: int) -> None:
        self._progress.update(self._task, total=total, completed=total - pending)
        if total > pending:
            self.console.print(f"{total - pending} of {total} videos already done: skipped")

    def on_video(self, record: VideoRecord) -> None:
        if record.status == "failed":
            reason = escape(record.reason or "")
            self.console.print(f"[red]failed[/red] {escape(record.name)}: {reason}", soft_wrap=True)
        elif record.status == "ok":
            self._done_frames += record.frames
        self._live_frames = 0
        self._progress.advance(self._task)
        self._show_rate()

    def on_frame(self) -> None:
        self._live_frames += 1
        self._show_rate()

    def _show_rate(self) -> None:
        elapsed = self._progress.tasks[0].elapsed or 1e-9
        frames = self._done_frames + self._live_frames
        self._progress.update(self._task, fps=frames / elapsed)
