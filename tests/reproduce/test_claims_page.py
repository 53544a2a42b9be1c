"""The claims check of a results page: effect, 95 % CI, p, MDD and the three-way verdict per claim; sanity rows
with the flag of a network below its reference; the deviation table — rendered by write_page without training."""

import numpy as np

from medgap.evaluation.references import Reference, SanityCheck
from medgap.metrics.stats import compare
from medgap.reproduce.runner import Claim, Context, Report, claims_table, p_text, write_page


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
    assert cells[0][3] == p_text(win.p) and cells[0][4] == f"{win.mdd * 100:.2f} (30 cases × 3 seeds)"
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
    assert "| ↳ ShaSpec, 100 % | network | accuracy (%) | 97.00 |  |" in sanity
    deviations = page.split("## Where medgap differs from the paper and the official code", 1)[1]
    assert "| what | medgap | official code / paper |" in deviations and "HeMIS" in deviations
    assert "**reproduced**" in page.split("## Claims check", 1)[1]
