"""Live progress: a ``rich`` display on a terminal, plain periodic lines otherwise (CI, pipes).

The runner calls ``phase()`` when a warm-up or a round starts, ``update()`` a few times a
second with the live counters, and ``done()`` when it ends; ``log()`` prints a message.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ("PlainProgress", "ProgressSink", "RichProgress", "make_progress")


class ProgressSink(Protocol):
    def plan(self, seconds: float) -> None: ...
    def phase(self, label: str, seconds: float, requests: int | None = None) -> None: ...
    def update(self, ok: int, errors: int) -> None: ...
    def done(self, summary: str) -> None: ...
    def log(self, message: str) -> None: ...
    def close(self) -> None: ...


class _Rate:
    """Requests per second over the last ~2 seconds of updates."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int]] = []

    def add(self, ok: int) -> float:
        now = time.monotonic()
        self.points.append((now, ok))
        while len(self.points) > 2 and now - self.points[0][0] > 2.0:
            self.points.pop(0)
        t0, n0 = self.points[0]
        return (ok - n0) / (now - t0) if now > t0 else 0.0


class _StatsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        f = task.fields
        if "ok" not in f:
            return Text("")
        text = Text(f"{f['ok']:>8,} done {f.get('rate', 0.0):>7,.0f}/s ")
        errors = int(f.get("errors", 0))
        text.append(f"{errors:,} err", style="bold red" if errors else "green")
        return text


class RichProgress:
    """A live bar per phase: requests done, current rate, errors, elapsed and remaining."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._progress = Progress(
            TextColumn("[bold]{task.description:<20}"),
            BarColumn(bar_width=12),
            _StatsColumn(),
            TimeElapsedColumn(),
            TextColumn("/"),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=4,
        )
        self._progress.start()
        self._task: TaskID | None = None
        self._all: TaskID | None = None
        self._count: int | None = None
        self._done_s = 0.0
        self._t0 = 0.0
        self._rate = _Rate()

    def plan(self, seconds: float) -> None:
        """The whole run's load time (all phases) as an overall bar; 0: not known."""
        if self._all is not None:
            self._progress.remove_task(self._all)
            self._all = None
        self._done_s = 0.0
        if seconds > 0:
            self._all = self._progress.add_task("all servers", total=seconds)

    def phase(self, label: str, seconds: float, requests: int | None = None) -> None:
        self._t0 = time.monotonic()
        self._rate = _Rate()
        self._count = requests  # count-bounded: the bar follows requests, not time
        total = requests if requests else max(seconds, 1e-3)
        self._task = self._progress.add_task(label, total=total, ok=0, errors=0, rate=0.0)

    def update(self, ok: int, errors: int) -> None:
        if self._task is not None:
            el = time.monotonic() - self._t0
            self._progress.update(self._task, completed=ok + errors if self._count else el,
                                  ok=ok, errors=errors, rate=self._rate.add(ok))
            if self._all is not None:
                self._progress.update(self._all, completed=self._done_s + el)

    def done(self, summary: str) -> None:
        if self._task is not None:
            task = next(t for t in self._progress.tasks if t.id == self._task)
            self._done_s += 0.0 if self._count else task.total or 0.0
            self._progress.update(self._task, completed=task.total,
                                  description=f"{task.description} ✓")
            if self._all is not None:
                self._progress.update(self._all, completed=self._done_s)
            self._task = None
        if summary:
            self._progress.console.print(f"  {summary}", highlight=False)

    def log(self, message: str) -> None:
        self._progress.console.print(message, highlight=False)

    def close(self) -> None:
        self._progress.stop()


class PlainProgress:
    """One line per phase start, every ``every`` seconds while it runs, and at its end."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._label = ""
        self._seconds = 0.0
        self._t0 = 0.0
        self._last = 0.0
        self._rate = _Rate()
        self._total = 0.0
        self._done_s = 0.0

    def _print(self, text: str) -> None:
        print(text, flush=True)

    def plan(self, seconds: float) -> None:
        self._total, self._done_s = seconds, 0.0

    def phase(self, label: str, seconds: float, requests: int | None = None) -> None:
        self._label, self._seconds = label, seconds
        self._t0 = self._last = time.monotonic()
        self._rate = _Rate()
        bound = f"{requests:,} requests, at most {seconds:.0f} s" if requests else \
            f"{seconds:.1f} s"
        self._print(f"[{label}] started ({bound})")

    def update(self, ok: int, errors: int) -> None:
        now = time.monotonic()
        rate = self._rate.add(ok)
        if now - self._last >= self.every:
            self._last = now
            el = now - self._t0
            self._print(f"[{self._label}] {ok:,} done, {rate:,.0f} req/s, {errors:,} errors, "
                        f"{el:.0f}/{self._seconds:.0f} s")

    def done(self, summary: str) -> None:
        self._done_s += self._seconds
        left = (f", ~{max(0.0, self._total - self._done_s):.0f} s of load left"
                if self._total else "")
        self._print(f"[{self._label}] done: {summary}{left}")

    def log(self, message: str) -> None:
        self._print(message)

    def close(self) -> None:
        pass


class _Quiet(PlainProgress):
    def _print(self, text: str) -> None:
        pass


def make_progress(mode: str = "auto") -> ProgressSink:
    """``rich`` on a terminal, plain lines when stdout is not one; ``quiet`` prints nothing."""
    if mode == "quiet":
        return _Quiet()
    if mode == "rich" or (mode == "auto" and sys.stdout.isatty()):
        return RichProgress()
    return PlainProgress()
