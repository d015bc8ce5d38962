"""The terminal side of ``deva batch``: the progress bar (videos done of all, frames/s over
this run) and the summary tables."""

from __future__ import annotations

from types import TracebackType

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from deva.batch import BatchReport, VideoRecord


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


def batch_tables(report: BatchReport) -> Group:
    """The batch summary for the terminal (the facts of ``report.to_markdown()``, which goes to
    summary.md): a totals line, a table with one row per video, and the failures' reasons."""
    processed, skipped = len(report.processed), len(report.videos) - len(report.processed)
    succeeded = sum(v.status == "ok" for v in report.processed)
    totals = Text.from_markup(
        f"[bold]deva batch[/bold]: {_count(len(report.videos), 'video')} ({processed} processed, "
        f"{skipped} skipped as done before; [green]{succeeded} ok[/green], "
        f"[{'red' if report.failed else 'green'}]{len(report.failed)} failed[/]), "
        f"{_count(report.frames, 'frame')} in {report.seconds:.1f} s ({report.fps:.1f} frames/s), "
        f"{_count(report.workers, 'worker')}"
    )
    videos = Table(box=box.SIMPLE_HEAD)
    videos.add_column("video", overflow="fold")
    videos.add_column("status")
    for column in ("frames", "seconds", "frames/s"):
        videos.add_column(column, justify="right")
    colours = {"ok": "green", "failed": "red", "skipped": "dim"}
    for v in report.videos:
        rate = f"{v.frames / v.seconds:.1f}" if v.status == "ok" and v.seconds > 0 else "–"
        seconds = f"{v.seconds:.1f}" if v.status != "skipped" else "–"
        status = f"[{colours[v.status]}]{v.status}[/]"
        videos.add_row(escape(v.name), status, str(v.frames), seconds, rate)
    parts: list[Text | Table] = [totals, videos]
    if report.failed:
        failures = Table(title="failures", title_justify="left", box=box.SIMPLE_HEAD)
        failures.add_column("video", overflow="fold")
        failures.add_column("reason", overflow="fold")
        for v in report.failed:
            failures.add_row(escape(v.name), escape(v.reason or ""))
        parts.append(failures)
    return Group(*parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
