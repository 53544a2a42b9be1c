"""Paper-style result tables: Markdown for reading, CSV/JSON for tools.

Every Markdown table medgap writes (run results, modality subsets, comparisons, the ``reproduce`` pages) is built
by :func:`markdown_table`, and every p-value cell by :func:`p_value_cell`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from medgap.atomic import write_json, write_text
from medgap.data.io import PILLOW_ENDINGS

# (record key, column title, scale) — Dice/Jaccard as percentages as the papers print them.
METRIC_COLUMNS = {
    "dice": ("Dice (%)", 100.0),
    "jaccard": ("Jaccard (%)", 100.0),
    "hd95": ("HD95 ({unit})", 1.0),
    "asd": ("ASD ({unit})", 1.0),
    "hd95_vox": ("HD95 (vox)", 1.0),
    "asd_vox": ("ASD (vox)", 1.0),
}

# 2-D image formats that carry no voxel spacing: their surface distances are in pixels, not mm.


def distance_unit(file_ending: str) -> str:
    """Unit of HD95/ASD for a dataset's ``file_ending``: ``px`` for PNG/TIFF (no spacing stored), else ``mm``."""
    return "px" if file_ending.lower() in PILLOW_ENDINGS else "mm"


def metric_notes(hd95_definition: str, empty_penalty: float | None, unit: str) -> list[str]:
    """The lines every result table carries: how cases are averaged, the HD95 definition, the empty-mask policy."""
    from medgap.metrics import EMPTY_MASK_POLICY

    return [
        f"Mean ± std over cases. HD95 definition: {hd95_definition}; distances in {unit} "
        + ("from the voxel spacing." if unit == "mm" else "(the image files store no spacing)."),
        f"Empty-mask policy: {EMPTY_MASK_POLICY['description']} Configured penalty for HD95/ASD when exactly one "
        f"mask is empty: {'none (NaN, counted apart)' if empty_penalty is None else empty_penalty}.",
    ]


def mean_std(mean: float, std: float, scale: float = 1.0, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (cells as given, ``str()`` of non-strings), ending in a newline."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def p_value_cell(test: dict | None, digits: int = 3, missing: str = "–") -> str:
    """The cell of a test result of :func:`medgap.metrics.paired_ttest`: ``p`` to ``digits`` significant digits,
    ``*`` when significant (p < 0.05); ``missing`` when there is no test or p is NaN."""
    if not test or math.isnan(test["p"]):
        return missing
    return f"{test['p']:.{digits}g}{'*' if test['significant'] else ''}"


def summary_table(aggregated: list[dict], metrics: Sequence[str], unit: str = "mm",
                  label_key: str = "structure") -> str:
    """One row per structure (mean ± std over cases) plus their mean, like a paper's results table."""
    header = [label_key.capitalize(), *(METRIC_COLUMNS[m][0].format(unit=unit) for m in metrics), "n"]
    rows = []
    for row in aggregated:
        cells = [row[label_key]]
        for metric in metrics:
            title, scale = METRIC_COLUMNS[metric]
            text = mean_std(row[metric], row[f"{metric}_std"], scale)
            if row.get(f"{metric}_nan"):
                text += f" ({row[f'{metric}_nan']} NaN)"
            cells.append(text)
        rows.append([*cells, row["n"]])
    if len(aggregated) > 1:
        means = []
        for metric in metrics:
            scale = METRIC_COLUMNS[metric][1]
            values = [row[metric] for row in aggregated if row[metric] is not None and not math.isnan(row[metric])]
            means.append(f"{sum(values) / len(values) * scale:.2f}" if values else "–")
        rows.append(["**Mean**", *means, ""])
    return markdown_table(header, rows)


def records_to_csv(records: list[dict]) -> str:
    if not records:
        return ""
    columns = list(records[0])
    for record in records[1:]:
        columns += [key for key in record if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def write_results(out_dir: str | os.PathLike, *, title: str, intro: Sequence[str], table_markdown: str,
                  aggregated: list[dict], records: list[dict], extra: dict | None = None,
                  stem: str = "results") -> dict[str, Path]:
    """Write ``results.md`` (title, context lines, table), ``results.csv`` (aggregated rows),
    ``per_case.csv`` (one row per case × structure) and ``results.json`` (everything)."""
    out_dir = Path(out_dir)
    markdown = f"# {title}\n\n" + "".join(f"{line}\n" for line in intro) + "\n" + table_markdown
    paths = {"md": out_dir / f"{stem}.md", "csv": out_dir / f"{stem}.csv",
             "per_case": out_dir / ("per_case.csv" if stem == "results" else f"{stem}_per_case.csv"),
             "json": out_dir / f"{stem}.json"}
    write_text(paths["md"], markdown)
    write_text(paths["csv"], records_to_csv(aggregated))
    write_text(paths["per_case"], records_to_csv(records))
    write_json(paths["json"], {"title": title, "aggregated": aggregated, "per_case": records, **(extra or {})})
    return paths
