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
from medgap.evaluation.references import SanityCheck, sanity_table
from medgap.evaluation.reports import markdown_table, p_value_cell
from medgap.methods.deviations import deviation_table
from medgap.metrics.stats import Comparison, ordering_verdict
from medgap.phases import PhaseRecorder, phase, recording

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
        identity = {"config": self.config, "config_text": config_text,
                    "overrides": _as_spelled_from_here(self.overrides)}
        if self.upstream:
            identity["upstream"] = [other.fingerprint() for other in self.upstream]
        text = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _as_spelled_from_here(value: Any) -> Any:
    """``value`` with every path under the working directory spelled relative to it, so that ``--work-dir
    runs/x`` and ``--work-dir $PWD/runs/x`` name the same runs (the overrides carry the data and run folders)."""
    if isinstance(value, dict):
        return {key: _as_spelled_from_here(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_spelled_from_here(item) for item in value]
    if isinstance(value, (str, Path)) and os.path.isabs(value):
        here = os.getcwd()
        if os.path.commonpath([here, os.path.normpath(value)]) == here:
            return os.path.relpath(value, here)
    elif isinstance(value, Path):
        return os.path.normpath(value)
    return value


@dataclass
class Claim:
    """One claim of the paper and what the miniature says about it.

    ``comparisons``: the paired tests behind the claim, ``(label, Comparison)`` — one for "A > B", one per adjacent
    pair for an ordering "A > B > C" (:func:`medgap.metrics.stats.compare`); their values × ``scale`` are shown in
    ``unit`` (e.g. Dice in [0, 1] × 100 = "Dice points"). With comparisons the verdict is
    :func:`~medgap.metrics.stats.ordering_verdict` of them; without (a claim that is no paired difference of
    per-case scores, e.g. a t-SNE silhouette) it is ``holds`` as a point estimate (None: not measurable).
    """

    text: str
    holds: bool | None
    evidence: str
    explanation: str = ""
    comparisons: list[tuple[str, Comparison]] = field(default_factory=list)
    scale: float = 100.0
    unit: str = "points"

    @property
    def verdict(self) -> str:
        if self.comparisons:
            return ordering_verdict([comparison for _, comparison in self.comparisons])
        return {True: "holds (point estimate, no test)", False: "does not hold (point estimate, no test)",
                None: "not measurable"}[self.holds]


@dataclass
class Report:
    """What a paper module returns: Markdown sections (tables, images linked relative to the page), the paper's
    published numbers (Markdown) and the claims check."""

    sections: list[str]
    paper_numbers: str
    claims: list[Claim]
    setup: str = ""
    sanity: list[SanityCheck] = field(default_factory=list)  # references a network must reach on the same split
    deviations: tuple[str, ...] = ()  # modules whose DEVIATIONS the page lists (medgap.methods.<name> or dotted)


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


def execute(run: Run, *, console=None, log: Callable[[str], None] = print,
            recorder: PhaseRecorder | None = None) -> tuple[Any, float, bool]:
    """Train (unless an identical finished run is in ``run_dir``) and evaluate; returns (result, seconds, reused).

    The run's ``reproduce.json`` records its wall time per phase (:mod:`medgap.phases`) under ``phases``; a
    ``recorder`` that already holds a worker's start-up and data generation carries them into it."""
    finished = finished_result(run)
    if finished is not None:
        return (*finished, True)
    started = time.perf_counter()
    with recording(recorder) as phases:
        with phase("start-up"):  # torch and Lightning: imported once per process, by its first run
            from medgap.training.loop import train
        train(load_run_config(run), run.run_dir, overwrite=True, console=console)
        with phase("test evaluation"):
            result = run.evaluate(run.run_dir) if run.evaluate else None
    seconds = round(time.perf_counter() - started, 1)
    # Only a finished run (trained and evaluated) is marked, so an interrupted reproduction resumes here.
    write_json(run.run_dir / "reproduce.json", {"fingerprint": run.fingerprint(), "config": run.config, "overrides": run.overrides,
                        "tags": run.tags, "seconds": seconds, "phases": phases.totals(), "result": result})
    log(f"{run.run_dir.name}: {seconds:.0f} s")
    return result, seconds, False


def finished_result(run: Run) -> tuple[Any, float] | None:
    """(result, seconds) of a run already trained and evaluated with the same fingerprint, else None."""
    marker = run.run_dir / "reproduce.json"
    saved = json.loads(marker.read_text()) if marker.is_file() else {}
    if saved.get("fingerprint") == run.fingerprint() and "result" in saved:
        return saved["result"], saved.get("seconds", 0.0)
    return None


def saved_phases(run: Run) -> dict[str, float]:
    """The seconds per phase a finished run recorded in its ``reproduce.json`` (empty for runs of an older medgap)."""
    marker = run.run_dir / "reproduce.json"
    return json.loads(marker.read_text()).get("phases", {}) if marker.is_file() else {}


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


def execute_parallel(runs: list[Run], jobs: int, worker_args: list[str], *, log: Callable[[str], None] = print,
                     fork: bool | None = None) -> tuple[dict[Path, Any], float, int]:
    """Train up to ``jobs`` runs at once, each in its own worker process with ``cpu_count // jobs`` threads;
    returns (run_dir → result, summed seconds, reused count).

    ``fork`` (default: where the platform has it, i.e. Linux) forks each worker from this process after importing
    torch, Lightning, MONAI and matplotlib once here: a worker then starts in milliseconds instead of the 10 s of
    CPU (a minute on a loaded machine) an interpreter needs to import them, which a tiny run's training does not
    even take. Otherwise each worker is a fresh ``python -m medgap.reproduce`` process given ``worker_args``.
    Either way a worker's output goes to ``<run>.log`` beside its folder.

    A run waits for the runs it reads (``Run.upstream``, :func:`link_upstream`). A failed run stops new starts; the
    running ones finish (their results are kept for the next invocation) and the failure is raised naming the
    run's log.
    """
    from medgap.errors import MedgapError

    results, seconds, reused = {}, {}, 0
    for run in runs:
        finished = finished_result(run)
        if finished is not None:
            results[run.run_dir], seconds[run.run_dir] = finished
            reused += 1
    threads = max(1, (os.cpu_count() or 1) // jobs)
    waiting = [run for run in runs if run.run_dir not in results]
    fork = can_fork() if fork is None else fork
    if fork and waiting:
        with phase("start-up"):
            preload_worker_modules()
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
            start = _fork_worker if fork else _spawn_worker
            running[run.run_dir] = (run, start(run, threads, log_path, worker_args), log_path)
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


def can_fork() -> bool:
    """Whether workers can be forked from this process: Linux only (macOS forbids forking after its frameworks
    are loaded; Windows has no fork)."""
    import multiprocessing

    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def preload_worker_modules() -> None:
    """Import what every run needs (torch, Lightning, MONAI's sliding window, evaluation, matplotlib) once, in the
    process that forks the workers. Importing runs no parallel torch work, so forked workers start with a clean
    OpenMP state."""
    import importlib

    for name in ("medgap.training.loop", "medgap.evaluation.evaluate", "medgap.evaluation.subsets",
                 "medgap.training.curves"):
        importlib.import_module(name)


def _worker_environment(threads: int) -> dict[str, str]:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), PARENT_ENV: str(os.getpid()),
            LAUNCHED_ENV: repr(time.time())}


def _spawn_worker(run: Run, threads: int, log_path: Path, worker_args: list[str]):
    """A fresh ``python -m medgap.reproduce`` process training ``run`` (it finds the run by name)."""
    import subprocess

    with open(log_path, "w") as output:
        return subprocess.Popen([sys.executable, "-m", "medgap.reproduce", worker_args[0], run.run_dir.name,
                                 *worker_args[1:]], stdout=output, stderr=subprocess.STDOUT,
                                env={**os.environ, **_worker_environment(threads)})


class _ForkedWorker:
    """A forked worker with :class:`subprocess.Popen`'s ``poll``/``returncode``."""

    def __init__(self, run: Run, threads: int, log_path: Path):
        import multiprocessing

        for stream in (sys.stdout, sys.stderr):  # or the child would write this process's buffered lines again
            stream.flush()
        self.process = multiprocessing.get_context("fork").Process(
            target=_forked_worker_main, args=(run, threads, log_path, _worker_environment(threads)),
            name=f"reproduce {run.run_dir.name}", daemon=False)
        self.process.start()
        self.returncode = None

    def poll(self) -> int | None:
        self.returncode = self.process.exitcode
        return self.returncode


def _fork_worker(run: Run, threads: int, log_path: Path, worker_args: list[str]) -> _ForkedWorker:
    return _ForkedWorker(run, threads, log_path)


def _forked_worker_main(run: Run, threads: int, log_path: Path, environment: dict[str, str]) -> None:
    """The body of a forked worker: its output to ``log_path``, ``threads`` torch threads, ended with its parent;
    a MedgapError is one line and exit 2, as the CLI does."""
    import traceback

    import torch

    from medgap.errors import MedgapError

    recorder = PhaseRecorder()
    recorder.add("start-up", max(time.time() - float(environment[LAUNCHED_ENV]), 0.0))
    output = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for descriptor in (1, 2):
        os.dup2(output, descriptor)
    # new streams on those descriptors: the inherited sys.stdout/stderr may be wrappers of the parent's (pytest's)
    sys.stdout, sys.stderr = (open(descriptor, "w", buffering=1, closefd=False) for descriptor in (1, 2))
    os.environ.update(environment)
    torch.set_num_threads(threads)
    exit_with_parent(int(environment[PARENT_ENV]))
    code = 0
    try:
        execute(run, recorder=recorder)
    except MedgapError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except BaseException:  # noqa: BLE001 - the log must say why; the parent reports the exit code
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    raise SystemExit(code)


PARENT_ENV = "MEDGAP_PARENT_PID"  # set for reproduce --jobs workers: the process whose death ends them
LAUNCHED_ENV = "MEDGAP_LAUNCHED_AT"  # and the time.time() of their launch: their start-up phase is timed from it


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


VERDICT_TEXT = {"reproduced": "**reproduced**", "contradicted": "**contradicted**", "inconclusive": "inconclusive"}
STATISTICS_NOTE = (
    "Effect = method − baseline (or each adjacent pair of an ordering): the mean over seeds of the mean over test "
    "cases, a case first averaged over its modality subsets and structures (one pair per case, never one per "
    "subset). 95 % CI: expanded-percentile bootstrap (10,000 resamples) of the test cases within each seed (seeds "
    "are strata; seeds that share their test cases share the draw); none below 5 cases. p: paired t-test on the "
    "per-case differences averaged over the seeds that scored the case. MDD: the difference that t-test detects "
    "with 80 % power at α = 0.05 (two-sided, t approximation) given the observed spread of those differences. "
    "**reproduced**: the CI excludes 0 in the claimed direction (for an ordering, every pair); **contradicted**: it "
    "excludes 0 in the other direction (any pair); inconclusive otherwise. Claims that are no paired difference of "
    "per-case scores are point estimates without a test.")


def _signed(value: float, scale: float) -> str:
    return "–" if value != value else f"{value * scale:+.2f}"


def claims_table(claims: list[Claim]) -> str:
    rows = []
    for claim in claims:
        effect, p, mdd = [], [], []
        for label, c in claim.comparisons:
            prefix = f"{label}: " if len(claim.comparisons) > 1 or label else ""
            effect.append(f"{prefix}{_signed(c.effect, claim.scale)} [{_signed(c.ci_low, claim.scale)}, "
                          f"{_signed(c.ci_high, claim.scale)}] {claim.unit}")
            p.append(p_value_cell(c.as_ttest(), digits=2))
            mdd.append("–" if c.mdd != c.mdd else f"{c.mdd * claim.scale:.2f} ({c.cases} cases × {c.seeds} seeds)")
        cells = [claim.text, VERDICT_TEXT.get(claim.verdict, claim.verdict), "<br>".join(effect) or "–",
                 "<br>".join(p) or "–", "<br>".join(mdd) or "–", claim.evidence,
                 "" if claim.verdict == "reproduced" else claim.explanation]
        rows.append([cell.replace("|", "\\|").replace("\n", " ") for cell in cells])
    return markdown_table(["claim (paper)", "verdict", "effect [95 % CI]", "p", "MDD (80 % power)", "our numbers",
                           "why, if not"], rows)


def still_rising(run_dir: Path, share: float = 0.25) -> bool | None:
    """Whether a run's validation curve (the selecting score: the first ``val_*`` entry of its validation rows in
    ``metrics.jsonl``) was still rising at the end: the last validation is the best and the last interval added at
    least ``share`` of the curve's range. None: fewer than 3 validations."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    curve = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        keys = [key for key in row if key.startswith("val_")]
        if keys and isinstance(row[keys[0]], (int, float)):
            curve.append(float(row[keys[0]]))
    if len(curve) < 3 or max(curve) == min(curve):
        return None if len(curve) < 3 else False
    return curve[-1] >= max(curve) and curve[-1] - curve[-2] >= share * (max(curve) - min(curve))


def convergence_note(runs: list[Run]) -> str:
    """One paragraph: how many runs' validation curves flattened, and which were still rising."""
    judged = {run.run_dir.name: still_rising(run.run_dir) for run in runs}
    judged = {name: rising for name, rising in judged.items() if rising is not None}
    if not judged:
        return "No run validated at least 3 times: convergence cannot be judged at this budget."
    rising = [name for name, value in judged.items() if value]
    listed = ", ".join(f"`{name}`" for name in rising[:12]) + (f" and {len(rising) - 12} more" if len(rising) > 12
                                                                  else "")
    return (f"Validation curves (the score that selects `best.pt`, every validation): {len(judged) - len(rising)} of "
            f"{len(judged)} runs flattened, {len(rising)} still rising at their last validation (it was their "
            "best and added at least a quarter of the curve's range)" + (f": {listed}." if rising else "."))


def phase_line(profile: dict) -> str:
    """One sentence: the runs' minutes per phase (summed over runs) and this invocation's own, from
    :func:`medgap.reproduce.phase_profile`."""
    summed = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in profile["runs_summed_s"].items()
                       if seconds >= 0.05 * 60)
    own = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in profile.get("invocation_s", {}).items()
                    if name != "runs" and seconds >= 0.05 * 60)
    return (f"Where the minutes went (summed over the runs; `reproduce.json` in the work folder): {summed}"
            + (f"; besides the runs: {own}" if own else ""))


def write_page(path: Path, *, title: str, command: str, context: Context, report: Report, seconds: float,
               trained_seconds: float, reused: int, fresh_run: dict | None = None, phases: dict | None = None) -> Path:
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
        *([f"- {phase_line(phases)}"] if phases and phases.get("runs_summed_s") else []),
        f"- Machine: {machine()}",
        f"- medgap revision: `{git_revision() or 'unknown'}`; finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
    ]
    body = ["## Setup", "", report.setup, ""] if report.setup else []
    if context.runs:
        body += [convergence_note(context.runs), ""]
    body += ["## Our results", ""]
    for section in report.sections:
        body += [section.rstrip(), ""]
    if report.sanity:
        body += ["## Sanity references", "",
                 "What a network must at least reach on the same split: a classical model on the raw inputs, the "
                 "supervised upper bound at the same budget, or a positive control. A network row below its "
                 "reference is flagged ⚠.", "", sanity_table(report.sanity)]
    body += ["## The paper's published numbers (real datasets, not comparable in absolute terms)", "",
             report.paper_numbers.rstrip(), "", "## Claims check", "", STATISTICS_NOTE, "",
             claims_table(report.claims)]
    if report.deviations:
        body += ["## Where medgap differs from the paper and the official code", "",
                 "Generated from the `DEVIATIONS` lists beside each method (and this reproduction's own setup).", "",
                 deviation_table(report.deviations)]
    write_text(path, "\n".join(header + body))
    return path
