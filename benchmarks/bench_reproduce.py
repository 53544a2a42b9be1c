"""Where a reproduction's minutes go: ``medgap reproduce PAPER`` split by phase, per paper, before and after the
start-up savings.

Every run of a reproduction records its wall time per phase (``medgap.phases``: worker start-up, data generation,
preprocessing, setup, training steps, validation, checkpoints, test evaluation, metrics, plots, GWAS,
attributions) in its ``reproduce.json``; this script trains a paper's runs in a scratch work folder and adds them
up. ``--runs all`` trains every run of the plan; ``--runs representative`` one run of each kind (config and
table/stage: the first in the plan, plus the runs it reads) and extrapolates each kind's phases by its count in
the plan (the table says so). ``--workers`` chooses how ``--jobs`` workers start: ``spawn`` = a fresh ``python -m medgap.reproduce`` per
run (medgap before issue 22), ``fork`` = forked from the parent after the imports (the default on Linux);
``--workers spawn fork`` measures both, alternating per paper, and checks that their ``metrics.jsonl`` and results
are identical.

Run: ``python benchmarks/bench_reproduce.py`` (quick: ``--budget tiny``, all papers, forked workers);
``python benchmarks/bench_reproduce.py --budget small --runs representative --workers spawn fork --papers shaspec``.
Results are merged into ``benchmarks/results/bench_reproduce.json`` by (budget, runs, paper, workers): a quick run
does not replace the ``small`` profile.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, utc_now  # noqa: E402

from medgap.atomic import write_json  # noqa: E402
from medgap.phases import add_totals, phase, recording  # noqa: E402
from medgap.reproduce import PAPERS, _runs, _setup  # noqa: E402
from medgap.reproduce import runner  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_reproduce.json"
# the table's columns, in the order a run goes through them; any other phase is added to "other"
COLUMNS = ("start-up", "data generation", "preprocess", "setup", "training", "validation", "checkpoints",
           "test evaluation", "metrics", "plots", "gwas", "attributions", "other")


def kind(run: runner.Run) -> tuple:
    """What a run costs like: its config and the part of the paper it serves (the ``table``/``stage``/``mode`` tag:
    ShaSpec's dedicated runs score 1 modality subset where the non-dedicated ones score 15)."""
    return (run.config, *(run.tags.get(tag) for tag in ("table", "stage", "mode")))


def representative(runs: list[runner.Run]) -> list[runner.Run]:
    """The first run of each :func:`kind` in plan order, with the runs they read (in plan order)."""
    chosen, seen = set(), set()
    for run in runs:
        if kind(run) not in seen:
            seen.add(kind(run))
            chosen.add(run.run_dir)
            chosen.update(other.run_dir for other in run.upstream)
    return [run for run in runs if run.run_dir in chosen]


def events(steps: int, every: int) -> int:
    """How often the loop validates (or checkpoints) in ``steps`` steps: every ``every`` steps and at the end."""
    return steps // every + (steps % every != 0)


def shorten(run: runner.Run, fraction: float) -> dict[str, float]:
    """Train ``run`` for ``fraction`` of its steps; returns the factors that extrapolate its step-bound phases
    (training ∝ steps; validation and checkpoints ∝ how often they happen) back to the full run."""
    trainer = runner.load_run_config(run).trainer
    steps = max(1, round(trainer.max_steps * fraction))
    run.overrides = {**run.overrides, "trainer.max_steps": steps}
    saves = lambda n: events(n, trainer.val_every) + events(n, trainer.checkpoint_every)  # noqa: E731
    return {"training": trainer.max_steps / steps,
            "validation": events(trainer.max_steps, trainer.val_every) / events(steps, trainer.val_every),
            "checkpoints": saves(trainer.max_steps) / saves(steps)}


def profile(paper: str, budget: str, selection: str, workers: str, jobs: int, work: Path,
            steps_fraction: float = 1.0) -> dict:
    """Train ``paper``'s runs (all, or the representative ones) into ``work``; phases summed (and extrapolated).

    ``steps_fraction`` < 1 trains each run for that share of its steps (evaluation, plots and start-up are
    measured whole) and extrapolates the step-bound phases (:func:`shorten`)."""
    started = time.perf_counter()
    with recording() as invocation:
        with phase("start-up"):
            module, sizes, seeds, work = _setup(paper, budget, None, work)
        with phase("data generation"):
            data = module.datasets(sizes, work / "data")
        planned = _runs(module, sizes, seeds, data, work, None)
        chosen = planned if selection == "all" else representative(planned)
        factors = {run.run_dir.name: shorten(run, steps_fraction) if steps_fraction < 1 else {} for run in chosen}
        worker_args = [paper, "--budget", budget, "--seeds", str(len(seeds)), "--work-dir", str(work)]
        with phase("runs"):
            runner.execute_parallel(chosen, jobs, worker_args, log=lambda line: None, fork=workers == "fork")
    wall = time.perf_counter() - started
    per_run = {run.run_dir.name: runner.saved_phases(run) for run in chosen}
    plan_counts, chosen_counts = Counter(map(kind, planned)), Counter(map(kind, chosen))
    summed: dict[str, float] = {}
    for run in chosen:  # each kind's runs stand for all of that kind's runs in the plan
        scale = plan_counts[kind(run)] / chosen_counts[kind(run)]
        factor = factors[run.run_dir.name]
        summed = add_totals(summed, {name: seconds * scale * factor.get(name, 1.0)
                                     for name, seconds in per_run[run.run_dir.name].items()})
    own = invocation.totals()
    measured_runs = sum(sum(phases.values()) for phases in per_run.values())
    return {"paper": paper, "budget": budget, "runs": selection, "workers": workers, "jobs": jobs,
            "steps_fraction": steps_fraction,
            "planned_runs": len(planned), "trained_runs": len(chosen), "wall_s": round(wall, 1),
            "runs_wall_s": own.get("runs", 0.0), "measured_run_seconds": round(measured_runs, 1),
            "extrapolated_phases_s": {name: round(seconds, 1) for name, seconds in summed.items()},
            "parent_phases_s": {name: seconds for name, seconds in own.items() if name != "runs"},
            "per_run_phases_s": per_run, "load_average": os.getloadavg(),
            "stands_for": {run.run_dir.name: {"runs": plan_counts[kind(run)] / chosen_counts[kind(run)],
                                              "factors": factors[run.run_dir.name], "config": run.config,
                                              "tags": run.tags} for run in chosen},
            "measured_at": utc_now()}


def identical_outputs(first: Path, second: Path) -> bool:
    """Whether two work folders' runs logged the same metrics (wall-clock fields aside) and the same results."""
    def rows(path: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
                for line in path.read_text().splitlines() if line.strip()]

    def result(path: Path):  # file paths in results name the work folder: compare the rest
        return json.loads(path.read_text().replace(str(path.parents[2]), "<work>"))["result"]

    names = sorted(p.parent.name for p in (first / "runs").glob("*/reproduce.json"))
    return bool(names) and all(
        rows(first / "runs" / n / "metrics.jsonl") == rows(second / "runs" / n / "metrics.jsonl")
        and result(first / "runs" / n / "reproduce.json") == result(second / "runs" / n / "reproduce.json")
        for n in names)


def subset_pass_speedup(repeats: int = 3) -> dict:
    """ShaSpec's 15-subset prediction of a ``small`` brain-tumour test case (untrained weights: the cost does not
    depend on them): one sliding-window pass per subset (medgap before issue 22) vs ``predict_case_subsets`` (one
    pass for all subsets where the method shares work between them), alternating ``repeats`` times; the median of
    the per-repeat ratios, label maps compared. Times the configs of ``bt_shaspec_seed0`` and ``bt_zerofill_seed0``."""
    import statistics

    import numpy as np
    import torch

    from medgap.data.pipeline import prepare_data
    from medgap.data.synthetic import generate
    from medgap.evaluation.subsets import all_subsets
    from medgap.inference.predict import predict_case, predict_case_subsets
    from medgap.registry import build_method

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        module, sizes, seeds, work = _setup("shaspec", "small", None, scratch)
        segmentation = sizes["segmentation"]
        generate("brain-tumour", work / "data" / "brain_tumour", cases=12, seed=0, test_cases=0,
                 spacing=segmentation["spacing"])
        (work / "data" / "digits_av").mkdir()
        planned = {run.run_dir.name: run for run in module.runs(sizes, seeds, {
            "brain_tumour": work / "data" / "brain_tumour", "digits_av": work / "data" / "digits_av"}, work / "runs")}
        for name in ("bt_shaspec_seed0", "bt_zerofill_seed0"):
            config = runner.load_run_config(planned[name])
            data = prepare_data(config.data, 0, work / "runs" / name, write_splits=False, only_splits=("test",))
            torch.manual_seed(0)
            method = build_method(config, data.spec).eval()
            subsets = [np.asarray(subset) for subset in all_subsets(data.spec.num_channels)]
            case = data.split_cases("test")[0]
            per_subset, together, identical = [], [], True
            for _ in range(repeats):
                started = time.perf_counter()
                one_by_one = [predict_case(method, case, config, availability=subset) for subset in subsets]
                per_subset.append(time.perf_counter() - started)
                started = time.perf_counter()
                joint = predict_case_subsets(method, case, config, subsets)
                together.append(time.perf_counter() - started)
                identical &= all(np.array_equal(a, b) for a, b in zip(one_by_one, joint))
            ratios = [a / b for a, b in zip(per_subset, together)]
            results[name] = {"per_subset_s": [round(t, 2) for t in per_subset],
                             "one_pass_s": [round(t, 2) for t in together],
                             "speedup": round(statistics.median(ratios), 2), "identical": identical,
                             "shape": list(case.shape), "load_average": os.getloadavg()}
    return results


def heavy(entry: dict) -> bool:
    """The load class of a measurement (1-min load above 4 per core): an entry measured under heavy load neither
    replaces nor is compared with a quieter one."""
    return entry["load_average"][0] > 4 * (os.cpu_count() or 1)


def minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.2f}"


def table(entries: list[dict]) -> str:
    """One row per (paper, budget, selection, workers): extrapolated worker-minutes per phase, their sum, the
    estimated wall time with ``--jobs`` (sum / jobs + the parent's data generation) and the speed-up over spawn."""
    rows, baseline = [], {}
    for entry in sorted(entries, key=lambda e: (e["budget"], e["runs"], e["paper"], e["workers"] != "spawn")):
        phases = dict.fromkeys(COLUMNS, 0.0)
        for name, seconds in entry["extrapolated_phases_s"].items():
            phases[name if name in phases else "other"] += seconds
        total = sum(phases.values())
        wall = total / entry["jobs"] + entry["parent_phases_s"].get("data generation", 0.0)
        key = (entry["budget"], entry["runs"], entry["paper"], heavy(entry))
        if entry["workers"] == "spawn":
            baseline[key] = wall
        speedup = f"{baseline[key] / wall:.1f}x" if key in baseline and entry["workers"] != "spawn" else ""
        scope = ("all runs" if entry["runs"] == "all" else
                 f"{entry['trained_runs']} of {entry['planned_runs']} runs, extrapolated")
        if entry.get("steps_fraction", 1.0) < 1:
            scope += f"; {entry['steps_fraction']:.0%} of the steps"
        same = {True: "identical", False: "DIFFER", None: ""}[entry.get("identical_to_spawn")]
        rows.append([entry["paper"], entry["budget"], scope, entry["workers"],
                     *(minutes(phases[name]) for name in COLUMNS), minutes(total), minutes(wall), speedup, same,
                     " / ".join(f"{value:.1f}" for value in entry["load_average"]), entry["measured_at"][:16]])
    return markdown_table(["paper", "budget", "runs", "workers", *COLUMNS, "sum", "wall (est.)", "speed-up",
                           "outputs", "load 1/5/15", "measured"], rows)


def before_after(entries: list[dict], subset_pass: dict | None) -> str:
    """Per paper (``small``, forked workers): the measured profile's sum and wall, and what the same runs cost
    before issue 22, estimated from two measured differences: each run's start-up as a spawned worker (the mean
    per run of the ``spawn`` entries) instead of the forked one's, and ShaSpec's 15-subset test evaluation one
    sliding-window pass per subset (``subset_pass``: the measured per-case ratio) instead of one for all."""
    spawned = [entry for entry in entries if entry["workers"] == "spawn"]
    if not spawned:
        return ""

    def startup_per_run(spawn_entry: dict) -> float:
        runs = spawn_entry["per_run_phases_s"].values()
        return sum(phases.get("start-up", 0.0) for phases in runs) / len(runs)

    subset_ratio = (subset_pass or {}).get("bt_shaspec_seed0", {}).get("speedup")
    rows, used = [], []
    for entry in sorted(entries, key=lambda e: e["paper"]):
        if entry["workers"] != "fork" or entry["budget"] != "small":
            continue
        # a spawned interpreter's start-up grows with the load: take the spawn measurement nearest in load
        nearest = min(spawned, key=lambda spawn: abs(spawn["load_average"][0] - entry["load_average"][0]))
        spawn_startup = startup_per_run(nearest)
        used.append(f"{entry['paper']} {spawn_startup:.0f} s (load {nearest['load_average'][0]:.1f} vs "
                    f"{entry['load_average'][0]:.1f})")
        after = sum(entry["extrapolated_phases_s"].values())
        before = after + (spawn_startup * entry["planned_runs"] - entry["extrapolated_phases_s"].get("start-up", 0.0))
        for name, role in entry.get("stands_for", {}).items():
            if subset_ratio and role["config"].startswith("shaspec_brain") and role["tags"].get("table") == "non-dedicated":
                before += entry["per_run_phases_s"][name].get("test evaluation", 0.0) * role["runs"] * (subset_ratio - 1)
        parent = entry["parent_phases_s"].get("data generation", 0.0)
        training = entry["extrapolated_phases_s"].get("training", 0.0)
        scope = "all trained" if entry["runs"] == "all" else "extrapolated"
        rows.append([entry["paper"], f"{entry['planned_runs']} ({scope})", minutes(before), minutes(after),
                     minutes(before / entry["jobs"] + parent), minutes(after / entry["jobs"] + parent),
                     f"{before / after:.2f}x", f"{training / after:.0%}", f"{before / training:.2f}x"])
    if not rows:
        return ""
    return markdown_table(["paper (small)", "runs", "before: worker-min", "after: worker-min", "before: wall (est.)",
                           "after: wall (est.)", "speed-up", "training steps (after)",
                           "bound: speed-up if all but the steps cost nothing"], rows) + (
        "\n\nBefore = the measured profile with each run's start-up as a spawned worker (per run, from the spawn "
        f"row measured at the nearest load: {'; '.join(used)}) and ShaSpec's non-dedicated test evaluation "
        + (f"{subset_ratio:.2f}x slower (one sliding-window pass per subset; measured on a small test case, "
           "identical label maps)" if subset_ratio else "unchanged (not measured)") + ". The bound: before over the "
        "training steps alone, the most any saving outside the steps can give without faster or fewer steps.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", nargs="*", choices=list(PAPERS), default=list(PAPERS))
    parser.add_argument("--budget", choices=("tiny", "small", "medium"), default="tiny")
    parser.add_argument("--runs", choices=("all", "representative"), default="all",
                        help="every run of the plan, or one per config extrapolated by the plan's counts")
    parser.add_argument("--workers", nargs="+", choices=("spawn", "fork"), default=["fork"],
                        help="how --jobs workers start (both: measured in turn, outputs compared)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps-fraction", type=float, default=1.0,
                        help="train each run for this share of its steps and extrapolate training, validation and "
                             "checkpoints by their counts (forked workers only: a spawned worker reads the plan)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the runs go, kept (default: a temporary folder); finished runs there are reused")
    parser.add_argument("--subset-pass", action="store_true",
                        help="also time ShaSpec's 15-subset prediction of a small test case, per subset vs one pass")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="also take the entries of these results files (measured by parallel invocations)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if "fork" in args.workers and not runner.can_fork():
        parser.error("--workers fork: this platform cannot fork workers")
    if not 0 < args.steps_fraction <= 1 or (args.steps_fraction < 1 and "spawn" in args.workers):
        parser.error("--steps-fraction must be in (0, 1], and below 1 only with --workers fork")
    saved = json.loads(args.out.read_text()) if args.out.is_file() else {}
    key = lambda e: (e["paper"], e["budget"], e["runs"], e["workers"], e.get("steps_fraction", 1.0),  # noqa: E731
                     heavy(e))
    entries = {key(e): e for e in saved.get("entries", [])}
    for other in args.merge:
        entries.update({key(e): e for e in json.loads(other.read_text())["entries"]})
    with tempfile.TemporaryDirectory() as scratch:
        scratch = args.work_dir or scratch
        for paper in args.papers:
            folders = {}
            for workers in args.workers:
                folders[workers] = Path(scratch) / f"{paper}-{args.budget}-{workers}"
                entry = profile(paper, args.budget, args.runs, workers, args.jobs, folders[workers],
                                args.steps_fraction)
                if workers != "spawn" and "spawn" in folders:
                    entry["identical_to_spawn"] = identical_outputs(folders["spawn"], folders[workers])
                entries[key(entry)] = entry
                print(f"{paper} {args.budget} {args.runs} {workers}: {entry['wall_s']:.0f} s "
                      f"(load {entry['load_average'][0]:.1f})", flush=True)
    subset_pass = subset_pass_speedup() if args.subset_pass else saved.get("subset_pass")
    text = table(list(entries.values())) + (
        "\n\nMinutes per phase summed over a paper's runs (worker-minutes; `--jobs` runs that many at once), from "
        "each run's `reproduce.json`. *extrapolated*: one run per kind (config and table/stage) trained, its "
        "phases multiplied by the kind's count in the plan; *% of the steps*: each run trained for that share of its "
        "steps, training, validation and checkpoints scaled back by their counts. wall (est.) = sum / jobs + the parent's data generation (the report is not "
        "run). spawn: a fresh interpreter per run (before issue 22); fork: workers forked from the parent after "
        "the imports. outputs: metrics.jsonl and results of the fork runs vs the spawn runs. The machine is shared: "
        "compare rows measured together (same load).")
    summary = before_after(list(entries.values()), subset_pass)
    if summary:
        text += "\n\n" + summary
    print(text)
    write_json(args.out, {"benchmark": "bench_reproduce", "machine": machine_info(), "threads": 1,
                          "entries": list(entries.values()), "subset_pass": subset_pass, "table_markdown": text})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
