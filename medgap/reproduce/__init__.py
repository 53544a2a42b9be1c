"""``medgap reproduce PAPER``: every experiment a paper's main tables need, in miniature on the built-in synthetic
data, evaluated and written up as ``docs/results/<paper>.md`` beside the paper's published numbers."""

from __future__ import annotations

import importlib
import os
import shlex
import time
from pathlib import Path

from medgap.errors import ConfigError
from medgap.reproduce.runner import Claim, Context, Report, Run, execute, write_page

PAPERS = {
    "shaspec": ("medgap.reproduce.shaspec", "ShaSpec (CVPR 2023): missing-modality segmentation and classification"),
    "ss-net": ("medgap.reproduce.ss_net", "SS-Net (MICCAI 2022): semi-supervised segmentation"),
    "contig": ("medgap.reproduce.contig", "ContIG (CVPR 2022): contrastive pretraining with genetics"),
    "amvlm": ("medgap.reproduce.amvlm", "AMVLM: vision-language pretraining for text-guided semi-supervised segmentation"),
}
BUDGETS = ("tiny", "small", "medium")

__all__ = ["BUDGETS", "PAPERS", "Claim", "Context", "Report", "Run", "reproduce"]


def reproduce(paper: str, *, budget: str = "small", seeds: int | None = None, work_dir: str | os.PathLike | None = None,
              out_dir: str | os.PathLike = "docs/results", console=None, log=print) -> Path:
    """Run ``paper``'s experiments at ``budget`` and write ``out_dir/<paper>.md`` (plots in ``out_dir/<paper>/``).

    Finished runs in ``work_dir`` (default ``runs/reproduce/<paper>-<budget>``) with the same config are reused,
    so an interrupted reproduction continues where it stopped. ``seeds``: how many (default: the budget's).
    """
    if paper not in PAPERS:
        raise ConfigError(f"reproduce: unknown paper {paper!r} (choose from {', '.join(PAPERS)})")
    if budget not in BUDGETS:
        raise ConfigError(f"reproduce: unknown budget {budget!r} (choose from {', '.join(BUDGETS)})")
    module_name, title = PAPERS[paper]
    module = importlib.import_module(module_name)
    sizes = module.BUDGETS[budget]
    seed_list = list(range(seeds if seeds is not None else sizes["seeds"]))
    if not seed_list:
        raise ConfigError("reproduce: --seeds must be at least 1")
    work = Path(work_dir) if work_dir else Path("runs") / "reproduce" / f"{paper}-{budget}"
    out = Path(out_dir)
    started = time.perf_counter()
    data = module.datasets(sizes, work / "data")
    runs = module.runs(sizes, seed_list, data, work / "runs")
    results, trained, reused = {}, 0.0, 0
    for index, run in enumerate(runs, start=1):
        log(f"[{index}/{len(runs)}] {run.run_dir.name}")
        results[run.run_dir], seconds, was_reused = execute(run, console=console, log=log)
        trained += seconds
        reused += was_reused
    context = Context(paper=paper, budget=budget, seeds=seed_list, runs=runs, results=results, data=data,
                      plots_dir=out / paper)
    report = module.report(context)
    command = "medgap reproduce " + shlex.join([paper, "--budget", budget, "--seeds", str(len(seed_list))])
    return write_page(out / f"{paper}.md", title=f"{title} — medgap reproduction", command=command, context=context,
                      report=report, seconds=time.perf_counter() - started, trained_seconds=trained, reused=reused)
