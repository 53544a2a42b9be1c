"""``medgap reproduce PAPER``: every experiment a paper's main tables need, in miniature on the built-in synthetic
data, evaluated and written up as ``docs/results/<paper>.md`` beside the paper's published numbers."""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

from medgap.atomic import write_json
from medgap.errors import ConfigError, MedgapError
from medgap.phases import PhaseRecorder, add_totals, phase, recording
from medgap.reproduce.runner import (LAUNCHED_ENV, Claim, Context, Report, Run, execute, execute_parallel,
                                     finished_result, link_upstream, load_run_config, saved_phases, write_page)

PAPERS = {
    "shaspec": ("medgap.reproduce.shaspec", "ShaSpec (CVPR 2023): missing-modality segmentation and classification"),
    "ss-net": ("medgap.reproduce.ss_net", "SS-Net (MICCAI 2022): semi-supervised segmentation"),
    "contig": ("medgap.reproduce.contig", "ContIG (CVPR 2022): contrastive pretraining with genetics"),
    "amvlm": ("medgap.reproduce.amvlm", "AMVLM: vision-language pretraining for text-guided semi-supervised segmentation"),
}
BUDGETS = ("tiny", "small", "medium")

__all__ = ["BUDGETS", "PAPERS", "Claim", "Context", "Report", "Run", "plan", "reproduce"]


def reproduce(paper: str, *, budget: str = "small", seeds: int | None = None, work_dir: str | os.PathLike | None = None,
              out_dir: str | os.PathLike | None = None, jobs: int = 1, smoke: int | None = None, console=None,
              log=print) -> Path:
    """Run ``paper``'s experiments at ``budget`` and write ``out_dir/<paper>.md`` (plots in ``out_dir/<paper>/``).

    Finished runs in ``work_dir`` (default ``runs/reproduce/<paper>-<budget>``) with the same config are reused,
    so an interrupted reproduction continues where it stopped. ``seeds``: how many (default: the budget's).
    ``jobs`` > 1 trains that many runs at once, each in its own process with an equal share of the CPU threads
    (a run starts once the runs it reads, e.g. its pretraining, have finished).
    ``smoke`` = N trains every run for N steps only: the whole budget (data, configs, evaluation, the page) checked
    in minutes before hours are spent on it; its work folder and page default to ``<paper>-<budget>-smoke`` and
    ``<work>/results``, never ``docs/results``.
    """
    module, sizes, seed_list, work = _setup(paper, budget, seeds, work_dir, smoke)
    if jobs < 1:
        raise ConfigError("reproduce: --jobs must be at least 1")
    title = PAPERS[paper][1]
    out = Path(out_dir) if out_dir else work / "results" if smoke else Path("docs/results")
    started = time.perf_counter()
    with recording() as invocation:  # this process's own phases; each run records its own in its folder
        with phase("data generation"):
            data = module.datasets(sizes, work / "data")
        runs = _runs(module, sizes, seed_list, data, work, smoke)
        with phase("runs"):
            if jobs == 1:
                results, trained, reused = {}, 0.0, 0
                for index, run in enumerate(runs, start=1):
                    log(f"[{index}/{len(runs)}] {run.run_dir.name}")
                    results[run.run_dir], seconds, was_reused = execute(run, console=console, log=log)
                    trained += seconds
                    reused += was_reused
            else:
                worker = [paper, "--budget", budget, "--seeds", str(len(seed_list)), "--work-dir", str(work),
                          *(["--smoke", str(smoke)] if smoke else [])]
                results, trained, reused = execute_parallel(runs, jobs, worker, log=log)
        timing = work / "fresh_run.json"  # the wall time of the last invocation that trained every run
        if reused == 0:
            write_json(timing, {"minutes": round((time.perf_counter() - started) / 60, 1), "runs": len(runs),
                                "jobs": jobs, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        context = Context(paper=paper, budget=budget, seeds=seed_list, runs=runs, results=results, data=data,
                          plots_dir=out / paper)
        with phase("report"):
            report = module.report(context)
    profile = phase_profile(runs, invocation.totals(), jobs=jobs, wall=time.perf_counter() - started)
    write_json(work / "reproduce.json", profile)
    command = "medgap reproduce " + shlex.join([paper, "--budget", budget, "--seeds", str(len(seed_list))]
                                               + (["--jobs", str(jobs)] if jobs > 1 else [])
                                               + (["--smoke", str(smoke)] if smoke else []))
    return write_page(out / f"{paper}.md", title=f"{title} — medgap reproduction", command=command, context=context,
                      report=report, seconds=time.perf_counter() - started, trained_seconds=trained, reused=reused,
                      fresh_run=json.loads(timing.read_text()) if timing.is_file() else None, phases=profile)


def phase_profile(runs: list[Run], invocation: dict[str, float], *, jobs: int, wall: float) -> dict:
    """What ``<work>/reproduce.json`` holds: each run's seconds per phase (from its own ``reproduce.json``), their
    sum over the runs (worker-seconds: with ``--jobs N`` up to N run at once), and this invocation's own phases
    (data generation, the report; ``runs`` is the wall time spent waiting for the runs)."""
    per_run = {run.run_dir.name: saved_phases(run) for run in runs}
    summed: dict[str, float] = {}
    for phases in per_run.values():
        summed = add_totals(summed, phases)
    return {"wall_s": round(wall, 1), "jobs": jobs,
            "runs_summed_s": {name: round(seconds, 1) for name, seconds in sorted(summed.items(), key=lambda x: -x[1])},
            "invocation_s": invocation, "runs": per_run}


def plan(paper: str, *, budget: str = "small", seeds: int | None = None,
         work_dir: str | os.PathLike | None = None, smoke: int | None = None) -> str:
    """What ``reproduce`` would train, as Markdown, without generating data or training: one row per run (config,
    method, steps, patch, batch, the runs it waits for, whether a finished identical run is already in
    ``work_dir``) and the totals. Every run's config is loaded with its overrides, so a bad budget fails here."""
    from medgap.evaluation.reports import markdown_table

    module, sizes, seed_list, work = _setup(paper, budget, seeds, work_dir, smoke)
    runs = _runs(module, sizes, seed_list, module.datasets(sizes, work / "data", create=False), work, smoke)
    rows, steps, finished = [], 0, 0
    for index, run in enumerate(runs):
        config = load_run_config(run)
        data, done = config.data, finished_result(run) is not None
        steps += config.trainer.max_steps
        finished += done
        batch = f"{data.labelled_batch_size}" + (f"+{data.unlabelled_batch_size}" if data.unlabelled_batch_size else "")
        rows.append([str(index + 1), run.run_dir.name, run.config, config.method.name, str(config.trainer.max_steps),
                     "x".join(map(str, data.patch_size)), batch,
                     ", ".join(other.run_dir.name for other in run.upstream),
                     "finished" if done else ""])
    table = markdown_table(["#", "run", "config", "method", "steps", "patch", "batch", "after", "status"], rows)
    return (f"{table}\n{len(runs)} runs, {steps} training steps in all, seeds {seed_list}; {finished} already "
            f"finished in {work} (reused). Data: {work / 'data'}.")


def _runs(module, sizes: dict, seeds: list[int], data: dict[str, Path], work: Path, smoke: int | None) -> list[Run]:
    runs = module.runs(sizes, seeds, data, work / "runs")
    if smoke:
        for run in runs:
            run.overrides = {**run.overrides, "trainer.max_steps": smoke}
    return link_upstream(runs)


def _setup(paper: str, budget: str, seeds: int | None, work_dir, smoke: int | None = None):
    """(paper module, budget sizes, seed list, work folder), checking the arguments."""
    if paper not in PAPERS:
        raise ConfigError(f"reproduce: unknown paper {paper!r} (choose from {', '.join(PAPERS)})")
    if budget not in BUDGETS:
        raise ConfigError(f"reproduce: unknown budget {budget!r} (choose from {', '.join(BUDGETS)})")
    module = importlib.import_module(PAPERS[paper][0])
    sizes = module.BUDGETS[budget]
    seed_list = list(range(seeds if seeds is not None else sizes["seeds"]))
    if not seed_list:
        raise ConfigError("reproduce: --seeds must be at least 1")
    if smoke is not None and smoke < 1:
        raise ConfigError("reproduce: --smoke must be at least 1 (training steps per run)")
    work = Path(work_dir) if work_dir else Path("runs") / "reproduce" / f"{paper}-{budget}{'-smoke' if smoke else ''}"
    return module, sizes, seed_list, work


def run_one(paper: str, run_name: str, *, budget: str, seeds: int, work_dir: str | os.PathLike,
            smoke: int | None = None) -> None:
    """Train and evaluate the run called ``run_name`` of a reproduction (the body of one ``--jobs`` worker)."""
    recorder = PhaseRecorder()
    launched = os.environ.get(LAUNCHED_ENV)
    if launched:  # the interpreter's start-up and imports so far, from the parent's clock
        recorder.add("start-up", max(time.time() - float(launched), 0.0))
    with recording(recorder):
        with phase("start-up"):  # the paper module and what it imports
            module, sizes, seed_list, work = _setup(paper, budget, seeds, work_dir, smoke)
        with phase("data generation"):  # normally done by the parent already: only checked here
            data = module.datasets(sizes, work / "data")
        runs = _runs(module, sizes, seed_list, data, work, smoke)
    matching = [run for run in runs if run.run_dir.name == run_name]
    if not matching:
        raise ConfigError(f"reproduce {paper} --budget {budget}: no run called {run_name!r}")
    execute(matching[0], recorder=recorder)


def _worker_main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m medgap.reproduce", description=run_one.__doc__)
    parser.add_argument("paper", choices=list(PAPERS))
    parser.add_argument("run_name")
    parser.add_argument("--budget", choices=BUDGETS, required=True)
    parser.add_argument("--seeds", type=int, required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--smoke", type=int, default=None)
    args = parser.parse_args(argv)
    from medgap.reproduce.runner import exit_with_parent

    exit_with_parent()  # a killed `reproduce --jobs` takes its workers with it
    try:
        run_one(args.paper, args.run_name, budget=args.budget, seeds=args.seeds, work_dir=args.work_dir,
                smoke=args.smoke)
    except MedgapError as error:  # one line, exit 2, as the CLI does
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
