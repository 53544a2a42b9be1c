"""What the training loop reports, and where.

- ``metrics.jsonl`` (always): one row per ``trainer.log_every`` steps and one per validation; the record that
  plots and resumption read (truncated to the checkpoint's step on resume).
- Lightning Fabric's loggers named in ``trainer.loggers``: ``tensorboard`` (``RUN/tensorboard/``, needs the
  ``tensorboard`` extra) and ``csv`` (``RUN/csv/metrics.csv``); they receive the same rows.
- On a terminal, the rich bar shows the running loss and the last validation score. When the console is not a
  terminal (SLURM, nohup, ``> log``), plain lines go to stdout instead: after the first step, then at most one per
  :data:`LINE_EVERY_S` seconds, after every validation and at the end.

Only rank 0 reports; the other ranks get a :class:`TrainingLog` that does nothing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

from medgap.optional import require
from medgap.progress import progress_bar
from medgap.training.run_folder import read_jsonl

LINE_EVERY_S = 30.0  # plain progress lines: one per this many seconds (a day of training ≈ 3,000 lines)


def check_loggers(names: list[str]) -> None:
    """Raise a one-line error naming the extra when a logger's package is missing (TensorBoard)."""
    if "tensorboard" in names and importlib.util.find_spec("tensorboardX") is None:  # Fabric writes with either
        require("tensorboard", "trainer.loggers: [tensorboard]")


def build_loggers(names: list[str], run_dir: Path) -> list:
    """Fabric loggers writing into ``run_dir/<name>/``."""
    check_loggers(names)
    loggers = []
    for name in names:
        if name == "tensorboard":
            from lightning_fabric.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version="", default_hp_metric=False))
        elif name == "csv":
            from lightning_fabric.loggers import CSVLogger

            loggers.append(CSVLogger(run_dir, name="csv", version="", flush_logs_every_n_steps=1))
    return loggers


class TrainingLog:
    """The loop's one reporter: ``write(row)`` logs a metrics row, ``step(done, loss)`` after every optimiser step,
    ``validation(done, scores)`` after every validation. Use as a context manager around the loop.

    Args:
        enabled: False on ranks other than 0 (every call is then a no-op).
        start_step: steps already done (resume): the loggers are refilled from ``metrics.jsonl`` up to it.
        line_every_s: seconds between plain progress lines (off a terminal).
    """

    def __init__(self, config, run_dir: Path, *, enabled: bool, console=None, start_step: int = 0,
                 line_every_s: float = LINE_EVERY_S):
        from rich import get_console

        trainer = config.trainer
        self.enabled, self.run_dir, self.max_steps = enabled, Path(run_dir), trainer.max_steps
        self.start_step, self.line_every_s = start_step, line_every_s
        self.logger_names = list(trainer.loggers) if enabled else []
        self.loggers = build_loggers(self.logger_names, self.run_dir)
        show = enabled and trainer.progress
        terminal = (console or get_console()).is_terminal
        self.bar = progress_bar("train", console, with_status=True) if show and terminal else None
        self.lines = show and not terminal
        self.task, self.last_line, self.started, self.last_val = None, None, None, ""
        self.done, self.loss, self.printed_step = start_step, None, None

    def __enter__(self) -> TrainingLog:
        if self.enabled and self.loggers:
            self._refill_loggers()
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task("train", total=self.max_steps, completed=self.start_step, status="")
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.lines and exc[0] is None and self.done not in (self.printed_step, self.start_step):
            self._line(time.perf_counter())
        if self.bar is not None:
            self.bar.__exit__(*exc)
        for logger in self.loggers:
            logger.finalize("success" if exc[0] is None else "failed")

    def write(self, row: dict) -> None:
        """Append ``row`` (``step`` + numbers) to ``metrics.jsonl`` and pass it to the loggers."""
        if not self.enabled:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        self._to_loggers(row)

    def step(self, done: int, loss: float) -> None:
        if not self.enabled:
            return
        self.done, self.loss = done, loss
        if self.bar is not None:
            self.bar.update(self.task, completed=done, status=self._status())
        now = time.perf_counter()
        if self.lines and (self.last_line is None or now - self.last_line >= self.line_every_s):
            self._line(now)

    def validation(self, done: int, scores: dict[str, float]) -> None:
        """Log the validation scores; the first one (the one that selects ``best.pt``) goes into the bar and lines."""
        if not self.enabled:
            return
        self.write({"step": done, **{f"val_{key}": value for key, value in scores.items()}})
        name, value = next(iter(scores.items()))
        self.last_val = f"val {name} {value:.4f} @ {done}"
        if self.bar is not None:
            self.bar.update(self.task, status=self._status())
        if self.lines:
            self._line(time.perf_counter())

    def _status(self) -> str:
        parts = ([] if self.loss is None else [f"loss {self.loss:.4f}"]) + ([self.last_val] if self.last_val else [])
        return " · ".join(parts)

    def _line(self, now: float) -> None:
        elapsed, steps = now - self.started, self.done - self.start_step
        eta = elapsed / steps * (self.max_steps - self.done) if steps else float("nan")
        print(f"train step {self.done}/{self.max_steps}  {self._status()}  elapsed {_clock(elapsed)}  "
              f"ETA {_clock(eta)}", file=sys.stdout, flush=True)
        self.last_line, self.printed_step = now, self.done

    def _to_loggers(self, row: dict) -> None:
        numbers = {key: value for key, value in row.items() if key != "step" and isinstance(value, (int, float))}
        for logger in self.loggers:
            logger.log_metrics(numbers, step=row["step"])

    def _refill_loggers(self) -> None:
        """Start the loggers' folders anew from ``metrics.jsonl`` (on resume it is already cut at the checkpoint's
        step; Fabric's CSV logger would replace its file anyway), so each step is in the logs once."""
        for name in self.logger_names:  # a logger dropped on resume keeps its folder as it was
            if (self.run_dir / name).is_dir():
                shutil.rmtree(self.run_dir / name)
        for row in read_jsonl(self.run_dir / "metrics.jsonl"):
            self._to_loggers(row)


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: no step timed yet
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
