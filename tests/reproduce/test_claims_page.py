"""The claims check of a results page: effect, 95 % CI, p, MDD and the three-way verdict per claim; sanity rows
with the flag of a network below its reference; the deviation table — rendered by write_page without training."""

import numpy as np

from medgap.evaluation.references import Reference, SanityCheck
from medgap.metrics.stats import compare
from medgap.evaluation.reports import p_value_cell
from medgap.reproduce.runner import Claim, Context, Report, claims_table, write_page


def scores(values, seeds=(0, 1, 2)):
    return {(seed, f"c{case}"): float(values[row, case]) for row, seed in enumerate(seeds)
            for case in range(values.shape[1])}


def claims():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.7, size=(3, 30))
    win = compare(scores(base + 0.1 + rng.normal(0, 0.02, base.shape)), scores(base))
    noise = compare(scores(base + rng.normal(0, 0.05, base.shape)), scores(base))
    return [Claim("A > B", None, "A 60 vs B 50", "why not", [("", win)]),
            Claim("A > B > C", None, "ordering", "the B − C gap is inside the noise", [("A − B", win),
                                                                                      ("B − C", noise)]),
            Claim("features mix", False, "silhouette 0.3", "too few steps")], win


def test_claims_table_shows_effect_ci_p_mdd_and_three_way_verdicts():
    listed, win = claims()
    assert [claim.verdict for claim in listed] == ["reproduced", "inconclusive",
                                                   "does not hold (point estimate, no test)"]
    table = claims_table(listed)
    rows = table.splitlines()[2:]
    cells = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]
    assert cells[0][1] == "**reproduced**"
    assert cells[0][2] == f"{win.effect * 100:+.2f} [{win.ci_low * 100:+.2f}, {win.ci_high * 100:+.2f}] points"
    assert cells[0][3] == p_value_cell(win.as_ttest(), digits=2) and cells[0][4] == f"{win.mdd * 100:.2f} (30 cases × 3 seeds)"
    assert cells[0][6] == ""  # no "why not" for a reproduced claim
    assert cells[1][1] == "inconclusive" and cells[1][2].startswith("A − B: +") and "<br>B − C: " in cells[1][2]
    assert cells[1][6] == "the B − C gap is inside the noise"
    assert cells[2][2:5] == ["–", "–", "–"]


def test_page_has_sanity_rows_with_flags_and_the_deviation_table(tmp_path):
    listed, _ = claims()
    reference = Reference("logistic regression on raw pixels (both)", "classical", "accuracy (%)", 95.8)
    report = Report(sections=["### A table\n"], paper_numbers="paper", claims=listed,
                    sanity=[SanityCheck(reference, {"zero-filling, 100 %": 27.6, "ShaSpec, 100 %": 97.0})],
                    deviations=("zero_filling",))
    context = Context(paper="demo", budget="tiny", seeds=[0], runs=[], results={}, data={}, plots_dir=tmp_path)
    page = write_page(tmp_path / "demo.md", title="Demo", command="medgap reproduce demo", context=context,
                      report=report, seconds=1.0, trained_seconds=1.0, reused=0).read_text(encoding="utf-8")
    sanity = page.split("## Sanity references", 1)[1].split("\n## ", 1)[0]
    assert "| **logistic regression on raw pixels (both)** | classical | accuracy (%) | 95.80 |" in sanity
    assert "| ↳ zero-filling, 100 % | network | accuracy (%) | 27.60 | ⚠ below the reference |" in sanity
    assert "| ↳ ShaSpec, 100 % | network | accuracy (%) | 97 |  |" in sanity
    deviations = page.split("## Where medgap differs from the paper and the official code", 1)[1]
    assert "| what | medgap | official code / paper |" in deviations and "HeMIS" in deviations
    assert "**reproduced**" in page.split("## Claims check", 1)[1]


def test_convergence_note_names_the_runs_still_rising(tmp_path):
    import json

    from medgap.reproduce.runner import Run, convergence_note, still_rising

    def run(name, curve):
        folder = tmp_path / name
        folder.mkdir()
        rows = [{"step": 10 * i, "loss": 1.0} for i in range(len(curve))]
        rows += [{"step": 10 * i, "val_dice": value, "val_loss": 0.0} for i, value in enumerate(curve)]
        (folder / "metrics.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
        return Run(folder, "x.yaml", {})

    runs = [run("flat", [0.1, 0.5, 0.6, 0.61, 0.6]), run("rising", [0.1, 0.2, 0.3, 0.5]),
            run("short", [0.1, 0.9]), run("late_small", [0.1, 0.5, 0.58, 0.6])]
    assert [still_rising(r.run_dir) for r in runs] == [False, True, None, False]
    note = convergence_note(runs)
    assert "2 of 3 runs flattened, 1 still rising" in note and "`rising`" in note and "`flat`" not in note
