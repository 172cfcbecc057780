"""A live display of a pipeline run's steps: a rich table on a terminal, lines otherwise."""

from __future__ import annotations

import sys
from typing import Any

from shipyard.pipelines.records import StepEvent

__all__ = ["StepProgress"]

_STYLE = {
    "finished": "green",
    "cached": "blue",
    "running": "cyan",
    "retrying": "yellow",
    "failed": "red",
    "killed": "yellow",
    "skipped": "dim",
    "pending": "dim",
}


class StepProgress:
    """Steps and their states: a live table on a terminal, plain lines otherwise.

    Pass it as ``on_event`` to ``run_pipeline``; ``close()`` it when the run ends.

    >>> progress = StepProgress([n.name for n in plan.nodes], live=sys.stderr.isatty())
    >>> run_pipeline(churn, on_event=progress)  # doctest: +SKIP
    """

    def __init__(self, steps: list[str], *, live: bool) -> None:
        self.states: dict[str, list[str]] = {name: ["pending", "", ""] for name in steps}
        self._live: Any = None
        if live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self._render(),
                console=Console(stderr=True, highlight=False, soft_wrap=True),
                refresh_per_second=8,
                redirect_stdout=False,
                redirect_stderr=False,
                transient=False,
            )
            self._live.start()

    def __call__(self, event: StepEvent) -> None:
        if event.kind == "planned":
            return
        state = {
            "started": "running",
            "retrying": "retrying",
            "cached": "cached",
            "finished": "finished",
            "failed": "failed",
            "skipped": "skipped",
            "killed": "killed",
        }[event.kind]
        duration = f"{event.duration_seconds:.1f} s" if event.duration_seconds is not None else ""
        note = (event.message or "").splitlines()[0][:120] if event.message else ""
        if event.attempt > 1 and event.kind == "started":
            note = f"attempt {event.attempt}"
        self.states[event.step] = [state, duration, note]
        if self._live is not None:
            self._live.update(self._render())
        else:
            line = f"step {event.step}: {state}"
            if duration:
                line += f" ({duration})"
            if note:
                line += f" - {note}"
            print(line, file=sys.stderr, flush=True)

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(show_edge=False, pad_edge=False, box=None)
        for column in ("step", "status", "time", ""):
            table.add_column(column)
        for name, (state, duration, note) in self.states.items():
            style = _STYLE.get(state, "")
            table.add_row(name, f"[{style}]{state}[/]" if style else state, duration, note)
        return table

    def close(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()
