"""The generic part of ``medgap reproduce``: train a list of runs (reusing finished ones), time them, and write
the results page with its header, the paper's numbers and the claims check.

A paper module (``medgap/reproduce/<paper>.py``) only says *what* to run and *how to tabulate it*:

- ``BUDGETS``: ``{"tiny" | "small" | "medium": dict of sizes}`` (steps, cases, patch sizes ...);
- ``datasets(budget, data_root, create=True) -> {name: Path}``: generates the synthetic sets it needs
  (``exist_ok``); ``create=False`` only names their folders (``--plan``);
- ``runs(budget, seeds, data, runs_root) -> list[Run]``: the experiments, in dependency order;
- ``report(context) -> Report``: tables, plots and claims from the finished runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from medgap.atomic import write_json, write_text
from medgap.errors import ConfigError
from medgap.evaluation.reports import markdown_table

# The shipped configs: package data in an installed wheel; in the repository medgap/configs links to configs/.
CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class Run:
    """One training run: ``configs/<config>`` with ``overrides``, trained into ``run_dir``.

    ``evaluate`` (optional) is called with the run folder after training and returns what the report needs
    (e.g. :func:`medgap.evaluation.evaluate.evaluate_run`); its result is cached in ``reproduce.json``.
    """

    run_dir: Path
    config: str
    overrides: dict[str, Any]
    evaluate: Callable[[Path], Any] | None = None
    tags: dict[str, Any] = field(default_factory=dict)  # what the report groups by (method, ratio, seed ...)
    upstream: tuple[Run, ...] = field(default=(), repr=False)  # the runs it reads (its pretraining): link_upstream

    @property
    def config_path(self) -> Path:
        return Path(self.config) if Path(self.config).is_absolute() else CONFIGS_DIR / self.config

    def fingerprint(self) -> str:
        """Identifies what the run trains: the config file's name and text (an edited config retrains), the
        overrides and the fingerprints of the runs it reads (a retrained pretraining retrains its fine-tunings)."""
        path = self.config_path
        config_text = path.read_text(encoding="utf-8") if path.is_file() else ""
        identity = {"config": self.config, "config_text": config_text, "overrides": self.overrides}
        if self.upstream:
            identity["upstream"] = [other.fingerprint() for other in self.upstream]
        text = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Claim:
    """One claim of the paper and whether the miniature reproduces it (None: not measurable at this budget)."""

    text: str
    holds: bool | None
    evidence: str
    explanation: str = ""


@dataclass
class Report:
    """What a paper module returns: Markdown sections (tables, images linked relative to the page), the paper's
    published numbers (Markdown) and the claims check."""

    sections: list[str]
    paper_numbers: str
    claims: list[Claim]
    setup: str = ""


@dataclass
class Context:
    """Everything a paper's ``report`` may use."""

    paper: str
    budget: str
    seeds: list[int]
    runs: list[Run]
    results: dict[Path, Any]  # run_dir → evaluate() result
    data: dict[str, Path]
    plots_dir: Path  # docs/results/<paper>/ — link images as f"{paper}/name.png"

    def select(self, **tags) -> list[Run]:
        return [run for run in self.runs if all(run.tags.get(k) == v for k, v in tags.items())]


def load_run_config(run: Run):
    from medgap.config import load_config

    path = run.config_path
    if not path.is_file():
        raise ConfigError(f"{path}: config not found (medgap reproduce reads the configs shipped in "
                          "medgap/configs, a link to the repository's configs/ folder)")
    return load_config(path, [f"{key}={json.dumps(value, default=str)}" for key, value in run.overrides.items()])


def execute(run: Run, *, console=None, log: Callable[[str], None] = print) -> tuple[Any, float, bool]:
    """Train (unless an identical finished run is in ``run_dir``) and evaluate; returns (result, seconds, reused)."""
    from medgap.training.loop import train

    finished = finished_result(run)
    if finished is not None:
        return (*finished, True)
    started = time.perf_counter()
    train(load_run_config(run), run.run_dir, overwrite=True, console=console)
    result = run.evaluate(run.run_dir) if run.evaluate else None
    seconds = round(time.perf_counter() - started, 1)
    # Only a finished run (trained and evaluated) is marked, so an interrupted reproduction resumes here.
    write_json(run.run_dir / "reproduce.json", {"fingerprint": run.fingerprint(), "config": run.config, "overrides": run.overrides,
                        "tags": run.tags, "seconds": seconds, "result": result})
    log(f"{run.run_dir.name}: {seconds:.0f} s")
    return result, seconds, False


def finished_result(run: Run) -> tuple[Any, float] | None:
    """(result, seconds) of a run already trained and evaluated with the same fingerprint, else None."""
    marker = run.run_dir / "reproduce.json"
    saved = json.loads(marker.read_text()) if marker.is_file() else {}
    if saved.get("fingerprint") == run.fingerprint() and "result" in saved:
        return saved["result"], saved.get("seconds", 0.0)
    return None


def depends_on(run: Run, earlier: list[Run]) -> list[Run]:
    """The earlier runs whose folder ``run``'s overrides name (a pretraining it loads): they must finish first."""
    text = json.dumps(run.overrides, default=str)
    return [other for other in earlier if str(other.run_dir) in text]


def link_upstream(runs: list[Run]) -> list[Run]:
    """Give each run (in dependency order) the runs it reads: it waits for them, and its fingerprint changes when
    theirs do."""
    for index, run in enumerate(runs):
        run.upstream = tuple(depends_on(run, runs[:index]))
    return runs


def execute_parallel(runs: list[Run], jobs: int, worker_args: list[str], *,
                     log: Callable[[str], None] = print) -> tuple[dict[Path, Any], float, int]:
    """Train up to ``jobs`` runs at once, each in a ``python -m medgap.reproduce`` process with
    ``cpu_count // jobs`` threads; returns (run_dir → result, summed seconds, reused count).

    A run waits for the runs it reads (``Run.upstream``, :func:`link_upstream`). A failed run stops new starts; the
    running ones finish (their results are kept for the next invocation) and the failure is raised naming the
    run's log.
    """
    import subprocess
    import sys

    from medgap.errors import MedgapError

    results, seconds, reused = {}, {}, 0
    for run in runs:
        finished = finished_result(run)
        if finished is not None:
            results[run.run_dir], seconds[run.run_dir] = finished
            reused += 1
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, PARENT_ENV: str(os.getpid())}
    waiting = [run for run in runs if run.run_dir not in results]
    running, failed, started = {}, None, 0
    while waiting or running:
        while failed is None and len(running) < jobs:
            ready = [run for run in waiting if all(other.run_dir in results for other in run.upstream)]
            if not ready:
                break
            run = ready[0]
            waiting.remove(run)
            started += 1
            log(f"[{reused + started}/{len(runs)}] {run.run_dir.name} (worker)")
            run.run_dir.parent.mkdir(parents=True, exist_ok=True)
            log_path = run.run_dir.parent / f"{run.run_dir.name}.log"
            with open(log_path, "w") as output:
                process = subprocess.Popen([sys.executable, "-m", "medgap.reproduce", worker_args[0], run.run_dir.name,
                                            *worker_args[1:]], stdout=output, stderr=subprocess.STDOUT, env=env)
            running[run.run_dir] = (run, process, log_path)
        if failed is not None and not running:
            break
        if not running:  # nothing can start: a dependency is missing from the run list
            raise MedgapError(f"reproduce: {waiting[0].run_dir.name} waits for a run that never finishes")
        time.sleep(0.5)
        for run_dir, (_, process, log_path) in list(running.items()):
            if process.poll() is None:
                continue
            del running[run_dir]
            saved = json.loads((run_dir / "reproduce.json").read_text()) if process.returncode == 0 else {}
            if "result" not in saved:
                failed = failed or f"{run_dir.name}: failed (exit {process.returncode}); see {log_path}"
                continue
            results[run_dir], seconds[run_dir] = saved["result"], saved.get("seconds", 0.0)
            log(f"{run_dir.name}: {seconds[run_dir]:.0f} s")
    if failed is not None:
        raise MedgapError(f"reproduce: {failed}")
    return results, float(sum(seconds.values())), reused


PARENT_ENV = "MEDGAP_PARENT_PID"  # set for reproduce --jobs workers: the process whose death ends them


def exit_with_parent(parent: int | None = None, *, kernel_signal: bool = True, interval: float = 1.0) -> None:
    """End this worker when the process that started it dies (a killed ``reproduce --jobs`` must not leave runs
    training unseen). Two layers: on Linux the kernel sends SIGTERM when the parent dies (``PR_SET_PDEATHSIG``);
    everywhere a daemon thread checks every ``interval`` seconds that the parent still lives."""
    import signal
    import threading

    parent = parent or int(os.environ.get(PARENT_ENV, 0) or 0) or os.getppid()
    if kernel_signal and sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def orphaned() -> bool:
        if os.getppid() != parent:  # re-parented: the parent is gone
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    def watch() -> None:
        while not orphaned():
            time.sleep(interval)
        os._exit(143)  # as SIGTERM would: nothing of a half-finished run is worth saving (it resumes from last.pt)

    if orphaned():  # died before we looked
        os._exit(143)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def machine() -> str:
    import torch

    cpu = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def claims_table(claims: list[Claim]) -> str:
    verdicts = {True: "**yes**", False: "**no**", None: "not measurable"}
    return markdown_table(["claim (paper)", "reproduced here?", "our numbers", "why, if not"],
                          [[claim.text, verdicts[claim.holds], claim.evidence, claim.explanation] for claim in claims])


def write_page(path: Path, *, title: str, command: str, context: Context, report: Report, seconds: float,
               trained_seconds: float, reused: int, fresh_run: dict | None = None) -> Path:
    from medgap.training.run_folder import git_revision

    header = [
        f"# {title}",
        "",
        "_Generated by `medgap reproduce`; do not edit by hand. Synthetic data and CPU-sized schedules: these are "
        "miniatures of the paper's experiments, not its numbers._",
        "",
        f"- Command: `{command}`",
        f"- Budget: `{context.budget}`; seeds: {context.seeds}; runs: {len(context.runs)} "
        f"({reused} reused from an earlier invocation)",
        f"- Wall time: {seconds / 60:.1f} min this invocation; {trained_seconds / 60:.1f} min of training + "
        "evaluation summed over all runs"
        + (f"; the last invocation that trained all {fresh_run['runs']} runs took {fresh_run['minutes']:.1f} min "
           f"(--jobs {fresh_run['jobs']}, finished {fresh_run['finished']})" if fresh_run else ""),
        f"- Machine: {machine()}",
        f"- medgap revision: `{git_revision() or 'unknown'}`; finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
    ]
    body = ["## Setup", "", report.setup, ""] if report.setup else []
    body += ["## Our results", ""]
    for section in report.sections:
        body += [section.rstrip(), ""]
    body += ["## The paper's published numbers (real datasets, not comparable in absolute terms)", "",
             report.paper_numbers.rstrip(), "", "## Claims check", "", claims_table(report.claims)]
    write_text(path, "\n".join(header + body))
    return path
