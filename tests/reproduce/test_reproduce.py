"""``medgap reproduce PAPER --budget tiny``: every table of the results page and the claims check are there, and a
second invocation reuses the finished runs."""

import importlib
import json
import math
import re
from pathlib import Path

import pytest

from medgap.cli import main
from medgap.reproduce import PAPERS


def run_tiny(paper, tmp_path, capsys):
    code = main(["reproduce", paper, "--budget", "tiny", "--work-dir", str(tmp_path / "work"),
                 "--out", str(tmp_path / "results")])
    assert code == 0, capsys.readouterr().err
    return (tmp_path / "results" / f"{paper}.md").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("paper", sorted(PAPERS))
def test_tiny_reproduction_writes_every_table_and_the_claims(paper, tmp_path, capsys):
    module = importlib.import_module(PAPERS[paper][0])
    page = run_tiny(paper, tmp_path, capsys)
    assert f"medgap reproduce {paper} --budget tiny --seeds {module.BUDGETS['tiny']['seeds']}" in page
    for title in module.TABLE_TITLES:
        assert title in page, title
        section = page.split(title, 1)[1]
        # a Markdown table (header + separator + at least one row) follows each title before the next heading
        body = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
        assert re.search(r"^\|.*\|\n\|(?:-+\|)+\n\|.*\|$", body, re.M), f"{title}: no table"
    assert "## The paper's published numbers" in page
    claims = page.split("## Claims check", 1)[1].split("\n## ", 1)[0]
    verdicts = re.findall(r"^\| .+? \| (\*\*reproduced\*\*|\*\*contradicted\*\*|inconclusive|"
                          r"(?:holds|does not hold) \(point estimate, no test\)|not measurable) \|", claims, re.M)
    assert len(verdicts) >= 2
    # every paired claim shows its effect with a 95 % CI, p and the MDD with the cases and seeds behind it
    tested = re.findall(r"^\| .+? \| (?:\*\*reproduced\*\*|\*\*contradicted\*\*|inconclusive) \| "
                        r"(.+?\[[-+\d.]+, [-+\d.]+\].+?) \| ([\d.e+-]+\*?|–)(?:<br>.*?)? \| ([\d.]+ \(\d+ cases × \d+ seeds\).*?) \|",
                        claims, re.M)
    assert len(tested) >= 2, claims
    # sanity references with their network rows, and the deviation table of the methods and the reproduction
    sanity = page.split("## Sanity references", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"^\| \*\*.+\*\* \| (classical|upper bound|positive control) \|", sanity, re.M)
    assert re.search(r"^\| ↳ .+ \| network \|", sanity, re.M)
    deviations = page.split("## Where medgap differs from the paper and the official code", 1)[1]
    assert "| method | what | medgap | official code / paper | why |" in deviations
    assert "| `reproduction` |" in deviations and module.DEVIATIONS
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page):  # every linked plot exists beside the page
        assert (tmp_path / "results" / image).is_file(), image
    # --plan names every run, finished ones included, and trains nothing
    assert main(["reproduce", paper, "--budget", "tiny", "--work-dir", str(tmp_path / "work"), "--plan"]) == 0
    listed = capsys.readouterr().out
    count = len(module.runs(module.BUDGETS["tiny"], list(range(module.BUDGETS["tiny"]["seeds"])),
                            module.datasets(module.BUDGETS["tiny"], tmp_path / "work" / "data", create=False),
                            tmp_path / "work" / "runs"))
    assert f"{count} runs," in listed and f"{count} already finished" in listed
    assert len(re.findall(r"\| finished \|$", listed, re.M)) == count
    # A second invocation trains nothing: every finished run is reused, and the page keeps the fresh wall time.
    again = run_tiny(paper, tmp_path, capsys)
    assert re.search(r"runs: (\d+) \(\1 reused from an earlier invocation\)", again)
    assert re.search(r"the last invocation that trained all \d+ runs took [\d.]+ min \(--jobs 1", again)



@pytest.mark.parametrize("paper", sorted(PAPERS))
def test_every_budget_plans_runs_whose_configs_load(paper, tmp_path):
    """Every budget (medium included, which needs a GPU to run) builds valid configs: steps, patch and batch of
    each run come from its loaded config, pretraining runs come before the runs that read them, nothing is made."""
    from medgap.reproduce import plan

    module = importlib.import_module(PAPERS[paper][0])
    for budget in ("tiny", "small", "medium"):
        listed = plan(paper, budget=budget, work_dir=tmp_path / budget)
        rows = re.findall(r"^\| (\d+) \| (\S+) \| (\S+\.yaml) \| (\w+) \| (\d+) \| ([\dx]+) \| ([\d+]+) \| (.*?) \|",
                          listed, re.M)
        seeds = module.BUDGETS[budget]["seeds"]
        assert rows and f"{len(rows)} runs, {sum(int(r[4]) for r in rows)} training steps in all" in listed, budget
        assert f"seeds {list(range(seeds))}; 0 already finished" in listed
        names = [r[1] for r in rows]
        for row in rows:  # a run waits only for runs listed before it
            assert all(name in names[: int(row[0]) - 1] for name in filter(None, row[7].split(", "))), row
        assert not (tmp_path / budget).exists()  # no data generated, no run folder made
    assert int(re.search(r"(\d+) training steps", plan(paper, budget="medium", work_dir=tmp_path)).group(1)) > \
        int(re.search(r"(\d+) training steps", plan(paper, budget="small", work_dir=tmp_path)).group(1))


@pytest.mark.slow
def test_smoke_trains_every_run_briefly_and_never_writes_docs(tmp_path, monkeypatch, capsys):
    """--smoke N: every run of the budget trains N steps and is evaluated, the page is written into the smoke
    work folder (not docs/results), and the plan shows the shortened runs."""
    from medgap.reproduce import plan

    monkeypatch.chdir(tmp_path)
    assert re.search(r"(\d+) runs, \1 training steps in all", plan("shaspec", budget="tiny", smoke=1))
    assert main(["reproduce", "shaspec", "--budget", "tiny", "--smoke", "1"]) == 0, capsys.readouterr().err
    work = tmp_path / "runs" / "reproduce" / "shaspec-tiny-smoke"
    page = (work / "results" / "shaspec.md").read_text(encoding="utf-8")
    assert "--smoke 1" in page and "## Claims check" in page
    assert not (tmp_path / "docs").exists()
    steps = [json.loads(line)["step"] for line in (work / "runs" / "bt_shaspec_seed0" / "metrics.jsonl").open()]
    assert max(steps) == 1


def test_a_run_waits_for_the_runs_its_overrides_name(tmp_path):
    from medgap.reproduce.runner import Run, depends_on

    pretrain = Run(tmp_path / "pretrain_a", "x.yaml", {})
    other = Run(tmp_path / "pretrain_ab", "x.yaml", {})
    finetune = Run(tmp_path / "finetune", "y.yaml", {"method.pretrained": str(tmp_path / "pretrain_a")})
    assert depends_on(finetune, [pretrain, other]) == [pretrain]
    assert depends_on(pretrain, []) == [] and depends_on(other, [pretrain]) == []


def test_a_changed_pretraining_changes_the_fingerprint_of_the_runs_that_read_it(tmp_path):
    from medgap.reproduce.runner import Run, link_upstream

    def plan(lr):
        pretrain = Run(tmp_path / "pretrain", "x.yaml", {"optim.lr": lr})
        return link_upstream([pretrain, Run(tmp_path / "finetune", "y.yaml",
                                            {"method.pretrained": str(tmp_path / "pretrain")}),
                              Run(tmp_path / "alone", "y.yaml", {})])

    first, same, changed = plan(0.1), plan(0.1), plan(0.2)
    assert [r.fingerprint() for r in first] == [r.fingerprint() for r in same]
    assert first[1].upstream == (first[0],) and first[2].upstream == ()
    assert changed[1].fingerprint() != first[1].fingerprint()
    assert changed[2].fingerprint() == first[2].fingerprint()  # a run that reads nothing keeps its fingerprint


def test_the_fingerprint_does_not_depend_on_how_the_work_dir_is_spelled(tmp_path, monkeypatch):
    from medgap.reproduce.runner import Run

    monkeypatch.chdir(tmp_path)

    def run(work_dir):
        return Run(Path(work_dir) / "runs" / "a", "x.yaml", {"data.root": str(Path(work_dir) / "data"),
                                                              "method.pretrained": Path(work_dir) / "runs" / "p"})

    relative = run("work").fingerprint()
    assert run(tmp_path / "work").fingerprint() == relative
    assert run(tmp_path / "elsewhere").fingerprint() != relative


@pytest.mark.slow
def test_parallel_jobs_write_the_same_page_and_are_reused(tmp_path, capsys):
    code = main(["reproduce", "shaspec", "--budget", "tiny", "--work-dir", str(tmp_path / "work"),
                 "--out", str(tmp_path / "results"), "--jobs", "2"])
    assert code == 0, capsys.readouterr().err
    page = (tmp_path / "results" / "shaspec.md").read_text(encoding="utf-8")
    assert "medgap reproduce shaspec --budget tiny --seeds 1 --jobs 2" in page
    runs = sorted(p.parent.name for p in (tmp_path / "work" / "runs").glob("*/reproduce.json"))
    logs = sorted(p.stem for p in (tmp_path / "work" / "runs").glob("*.log"))
    assert runs and runs == logs  # every run trained in a worker, with its own log
    # each run's seconds per phase, their sums in the work folder's reproduce.json and on the page
    profile = json.loads((tmp_path / "work" / "reproduce.json").read_text())
    summed = {}
    for name in runs:
        phases = json.loads((tmp_path / "work" / "runs" / name / "reproduce.json").read_text())["phases"]
        assert {"start-up", "preprocess", "training", "validation", "test evaluation", "plots"} <= set(phases), name
        assert profile["runs"][name] == phases
        for key, seconds in phases.items():
            summed[key] = summed.get(key, 0.0) + seconds
    assert profile["runs_summed_s"] == pytest.approx(summed, abs=0.1)
    assert {"data generation", "runs", "report"} <= set(profile["invocation_s"])
    assert "Where the minutes went (summed over the runs" in page and "training" in page.split("Where the minutes", 1)[1]
    again = run_tiny("shaspec", tmp_path, capsys)
    assert re.search(r"runs: (\d+) \(\1 reused from an earlier invocation\)", again)


@pytest.mark.parametrize("fork", [False, True])
def test_a_failed_worker_is_reported_with_its_log(tmp_path, fork):
    from medgap.errors import MedgapError
    from medgap.reproduce.runner import Run, can_fork, execute_parallel

    if fork and not can_fork():
        pytest.skip("no fork on this platform")
    missing = Run(tmp_path / "work" / "runs" / "no_such_run", "x.yaml", {})
    with pytest.raises(MedgapError, match=r"no_such_run: failed \(exit 2\); see .*no_such_run\.log"):
        execute_parallel([missing], 2, ["shaspec", "--budget", "tiny", "--seeds", "1", "--work-dir",
                                        str(tmp_path / "work")], log=lambda line: None, fork=fork)
    log = (tmp_path / "work" / "runs" / "no_such_run.log").read_text()
    # a spawned worker looks the run up by name; a forked one is handed the Run and fails on its config
    assert ("x.yaml: config not found" if fork else "no run called 'no_such_run'") in log
    assert log.count("error:") == 1  # one line, no traceback


def test_ss_net_miniature_scales_vat_to_the_official_per_voxel_perturbation(tmp_path):
    from medgap.reproduce import ss_net

    budget = ss_net.BUDGETS["small"]
    overrides = ss_net._overrides(budget, "atrium3d", "ss_net", 0.1, 0, tmp_path)
    # ε / √voxels equal on 32×32×16 and on the official 112×112×80 with ε = ξ = 10
    per_voxel = overrides["method.vat_epsilon"] / math.sqrt(32 * 32 * 16)
    assert per_voxel == pytest.approx(10 / math.sqrt(112 * 112 * 80), rel=1e-3)
    assert overrides["method.vat_xi"] == pytest.approx(10 * math.sqrt(32 * 32 * 16 / (112 * 112 * 80)), rel=1e-3)
    acdc = ss_net._overrides(budget, "cardiac2d", "ss_net", 0.1, 0, tmp_path)
    assert acdc["method.vat_epsilon"] == pytest.approx(6 * 48 / 256, rel=1e-3)  # official ACDC: ε = 6 at 256²
    assert "method.vat_epsilon" not in ss_net._overrides(budget, "atrium3d", "mean_teacher", 0.1, 0, tmp_path)
