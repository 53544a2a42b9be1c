"""Rich progress bars shared by the CLI and the training loop."""

from __future__ import annotations


def progress_bar(description: str, console=None, *, with_status: bool = False):
    """A rich ``Progress`` with bar, count, elapsed time and ETA; ``with_status`` adds a ``status`` text field
    (the training loop shows the running loss there).

    On a console that is not a terminal (stderr redirected to a file or captured) the bar is off: it leaves nothing
    behind, so an error stays the only line there.
    """
    from rich import get_console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn()]
    if with_status:
        columns.append(TextColumn("{task.fields[status]}"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=console, disable=not (console or get_console()).is_terminal)
