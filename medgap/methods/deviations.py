"""Where medgap differs from a paper or its official code: one :class:`Deviation` list (``DEVIATIONS``) at the end
of each method module, rendered as one Markdown table for ``docs/methods/<method>.md`` and the results pages, so
the table cannot drift from the code.

``python -m medgap.methods.deviations`` rewrites the table between the marker comments of every method page; a
test fails when a committed page differs from what this module generates.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgap.atomic import write_text

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs" / "methods"
# docs/methods/<page>.md → the method modules whose deviations it lists
PAGES = {
    "shaspec": ("shaspec", "zero_filling"),
    "ss_net": ("ss_net", "mean_teacher"),
    "contig": ("contig", "simclr", "classifier"),
    "amvlm": ("amvlm", "amvlm_ssmis"),
}
BEGIN = "<!-- deviations:begin (generated from the DEVIATIONS lists: python -m medgap.methods.deviations) -->"
END = "<!-- deviations:end -->"
REGENERATE = "python -m medgap.methods.deviations"


@dataclass(frozen=True)
class Deviation:
    """One difference from the paper or the official code.

    Attributes:
        what: the piece that differs (a loss term, a default, the evaluation ...).
        medgap: what medgap does.
        official: what the official code and/or the paper does (say which).
        why: the reason (a bug in the official code, the paper's text, CPU scale ...).
        option: config overrides that give the official behaviour (``{"method.missing_feature": "copy"}``);
            None when it is not available.
        source: where the official behaviour is stated (a spec section, an official file, the paper).
    """

    what: str
    medgap: str
    official: str
    why: str
    option: dict[str, Any] | None = None
    source: str = ""


def option_text(option: dict[str, Any] | None) -> str:
    if not option:
        return "no"
    return "yes: " + ", ".join(f"`{key}: {value if isinstance(value, str) else json.dumps(value)}`"
                               for key, value in option.items())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def deviation_table(modules: Sequence[str]) -> str:
    """One Markdown table of the ``DEVIATIONS`` of each module, in order: a plain name is
    ``medgap.methods.<name>``, a dotted one is imported as it is (e.g. a reproduction's own list)."""
    from medgap.evaluation.reports import markdown_table

    header = ["what", "medgap", "official code / paper", "why", "official behaviour as an option", "source"]
    rows = []
    for module in modules:
        path = module if "." in module else f"medgap.methods.{module}"
        label = "reproduction" if path.startswith("medgap.reproduce.") else module
        for item in importlib.import_module(path).DEVIATIONS:
            cells = [item.what, item.medgap, item.official, item.why, option_text(item.option), item.source]
            rows.append(([f"`{label}`"] if len(modules) > 1 else []) + [_cell(cell) for cell in cells])
    return markdown_table((["method"] if len(modules) > 1 else []) + header, rows)


def embed(page_text: str, table: str) -> str:
    """``page_text`` with the part between the markers replaced by ``table``."""
    pattern = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(page_text):
        raise ValueError(f"no deviation markers ({BEGIN} ... {END}) in the page")
    return pattern.sub(lambda _: f"{BEGIN}\n{table}{END}", page_text, count=1)


def expected_page(page: str) -> str:
    """The text ``docs/methods/<page>.md`` should have."""
    path = DOCS_DIR / f"{page}.md"
    return embed(path.read_text(encoding="utf-8"), deviation_table(PAGES[page]))


def main(argv: Sequence[str] | None = None) -> int:
    for page in PAGES:
        path = DOCS_DIR / f"{page}.md"
        text = expected_page(page)
        if text != path.read_text(encoding="utf-8"):
            write_text(path, text)
            print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
