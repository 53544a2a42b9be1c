"""``medgap reproduce PAPER --budget tiny``: every table of the results page and the claims check are there, and a
second invocation reuses the finished runs."""

import importlib
import re

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
    claims = page.split("## Claims check", 1)[1]
    verdicts = re.findall(r"^\| .+? \| (\*\*yes\*\*|\*\*no\*\*|not measurable) \|", claims, re.M)
    assert len(verdicts) >= 2
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page):  # every linked plot exists beside the page
        assert (tmp_path / "results" / image).is_file(), image
    # A second invocation trains nothing: every finished run is reused.
    again = run_tiny(paper, tmp_path, capsys)
    assert re.search(r"runs: (\d+) \(\1 reused from an earlier invocation\)", again)

