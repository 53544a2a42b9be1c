"""``medgap verify``: check a dataset folder the way nnU-Net's integrity check does, and summarise it.

Every case is read in full; problems are collected (one line each) rather than stopping at the first. Legal but
suspicious data (an empty label map: the empty-mask policy scores it) is a warning, which does not fail the check.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medgap.data.cases import discover_cases, load_case, load_genetics
from medgap.data.classification import load_class_labels
from medgap.data.dataset_json import DatasetSpec, load_dataset_json
from medgap.errors import DatasetError


@dataclass
class VerifyReport:
    spec: DatasetSpec | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cases: int = 0
    labelled: int = 0
    with_text: int = 0
    availability: Counter = field(default_factory=Counter)  # pattern (tuple of bool) -> cases
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    spacings: list[tuple[float, ...]] = field(default_factory=list)
    label_counts: Counter = field(default_factory=Counter)  # label value -> cases containing it
    region_counts: Counter = field(default_factory=Counter)  # region name -> cases containing it
    genetics: dict[str, int] = field(default_factory=dict)  # modality -> cases having it

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(dataset_dir: str | os.PathLike, *, max_bytes: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    dataset_dir = Path(dataset_dir)
    try:
        spec = load_dataset_json(dataset_dir)
        cases = discover_cases(dataset_dir, spec, "Tr")
        class_labels = (load_class_labels(dataset_dir, spec, {case.case_id for case in cases})
                        if spec.task == "classification" else None)
    except DatasetError as error:
        return VerifyReport(spec=None, problems=[str(error)])
    report = VerifyReport(spec=spec, cases=len(cases))
    if spec.num_training is not None and spec.num_training != len(cases):
        report.problems.append(f"{spec.path}: numTraining is {spec.num_training} but imagesTr has {len(cases)} cases")
    if spec.text:
        missing = [case.case_id for case in cases if case.text_path is None]
        if missing:
            report.problems.append(f"{dataset_dir / 'textTr'}: no report for {len(missing)} case(s), e.g. {missing[0]}")
    _check_genetics_ids(report, dataset_dir, spec, [case.case_id for case in cases])
    first_files: list[Path] = []  # per entry of report.shapes: the case's first image file (dimension check)
    for done, case in enumerate(cases, start=1):
        report.availability[tuple(bool(a) for a in case.availability)] += 1
        for name, _ in case.genetics.items():
            report.genetics[name] = report.genetics.get(name, 0) + 1
        try:
            data = load_case(case, spec, max_bytes=max_bytes)
        except DatasetError as error:
            report.problems.append(str(error))
            continue
        first_files.append(case.first_image_path)
        report.shapes.append(data.geometry.shape)
        report.spacings.append(tuple(round(s, 4) for s in data.geometry.spacing))
        report.with_text += data.text is not None
        if class_labels is not None:  # classification: labelled = listed in labelsTr.csv
            if case.case_id in class_labels:
                report.labelled += 1
                report.label_counts[class_labels[case.case_id]] += 1
        elif data.label is not None:
            report.labelled += 1
            values = np.unique(data.label)
            report.label_counts.update(int(v) for v in values)
            report.region_counts.update(name for name, members in (spec.regions or {}).items()
                                        if np.isin(values, members).any())
            if len(values) == 1 and values[0] == 0:
                report.warnings.append(f"{case.label_path}: label map is empty (background only)")
        if progress is not None:
            progress(done, len(cases))
    _check_dimensions(report, first_files)
    return report


def _check_genetics_ids(report: VerifyReport, dataset_dir: Path, spec: DatasetSpec, case_ids: list[str]) -> None:
    """A genetics table whose ids match no case (or individual) would leave every case without that modality."""
    from medgap.data.genetics import case_groups

    try:
        tables = load_genetics(dataset_dir / "genetics")
        individual = case_groups(dataset_dir, spec.genetics, case_ids) or {}
    except DatasetError as error:
        report.problems.append(str(error))
        return
    keys = {individual.get(case_id, case_id) for case_id in case_ids}
    what = "individual ids of individuals.csv" if individual else "case ids of imagesTr"
    for name, rows in tables.items():
        unmatched = sorted(set(rows) - keys)
        path = dataset_dir / "genetics" / f"{name}.csv"
        if rows and len(unmatched) == len(rows):
            report.problems.append(f"{path}: none of its {len(rows)} ids matches the {what} "
                                   f"(first id {unmatched[0]!r}, e.g. {sorted(keys)[0]!r} expected)")
        elif unmatched:
            report.warnings.append(f"{path}: {len(unmatched)} of {len(rows)} ids match no case "
                                   f"(e.g. {unmatched[0]!r}); those rows are not used")


def _check_dimensions(report: VerifyReport, first_files: list[Path]) -> None:
    """Every case must have as many spatial axes as most cases; the others are problems (and leave the summary)."""
    dimensions = Counter(len(shape) for shape in report.shapes)
    if len(dimensions) < 2:
        return
    usual = dimensions.most_common(1)[0][0]
    for shape, path in zip(report.shapes, first_files):
        if len(shape) != usual:
            report.problems.append(f"{path}: {len(shape)}-D image {shape}, but most cases are {usual}-D")
    keep = [i for i, shape in enumerate(report.shapes) if len(shape) == usual]
    report.shapes = [report.shapes[i] for i in keep]
    report.spacings = [report.spacings[i] for i in keep]


def format_report(report: VerifyReport, *, first_problem_elsewhere: bool = False) -> str:
    """Human-readable summary: counts, the modality-availability matrix, geometry, then every warning and problem.

    ``first_problem_elsewhere``: the caller prints the first problem itself (the CLI's one-line error), so the
    list holds only the others instead of repeating it.
    """
    lines = []
    spec = report.spec
    if spec is not None:
        lines.append(f"dataset {spec.name}: {report.cases} cases, {report.labelled} labelled, "
                     f"{report.cases - report.labelled} unlabelled, {report.with_text} with reports")
        lines.append("modality availability (● present, ○ missing):")
        width = max(len(name) for name in spec.channel_names)
        lines.append("  " + "  ".join(name.rjust(width) for name in spec.channel_names) + "  cases")
        for pattern, count in sorted(report.availability.items(), key=lambda item: -item[1]):
            lines.append("  " + "  ".join(("●" if p else "○").rjust(width) for p in pattern) + f"  {count}")
        totals = np.sum([np.array(p) * c for p, c in report.availability.items()], axis=0) if report.availability else []
        if len(totals):
            lines.append("  per modality: " + ", ".join(f"{n} {int(t)}/{report.cases}" for n, t in zip(spec.channel_names, totals)))
        if report.shapes:
            shapes = np.array(report.shapes)
            spacings = np.array(report.spacings)
            lines.append(f"shapes: min {_fmt(shapes.min(0))}, median {_fmt(np.median(shapes, 0).astype(int))}, "
                         f"max {_fmt(shapes.max(0))}")
            lines.append(f"spacings (mm): min {_fmt(spacings.min(0))}, median {_fmt(np.median(spacings, 0))}, "
                         f"max {_fmt(spacings.max(0))}")
        if report.label_counts:
            if spec.task == "classification":
                names, title = dict(enumerate(spec.classes)), "classes (cases in each)"
            else:
                names, title = {value: name for name, value in spec.labels.items()}, "labels (cases containing each)"
            if any(isinstance(v, list) for v in spec.raw.get("labels", {}).values()):  # nnU-Net region-based:
                names, title = {}, "label values (cases containing each)"       # values have no names
            lines.append(f"{title}: " + ", ".join(
                f"{names.get(v, v)}={c}" for v, c in sorted(report.label_counts.items())))
        if spec.regions and report.labelled:
            lines.append("regions (cases containing each): " + ", ".join(
                f"{name}={report.region_counts.get(name, 0)}" for name in spec.regions))
        if report.genetics:
            lines.append("genetics: " + ", ".join(f"{m} {c}/{report.cases}" for m, c in report.genetics.items()))
    if report.warnings:
        lines.append(f"{len(report.warnings)} warning(s):")
        lines += [f"  - {warning}" for warning in report.warnings]
    if report.problems and first_problem_elsewhere:
        others = report.problems[1:]
        lines.append(f"{len(report.problems)} problem(s); the first is the error line below"
                     + (", the others:" if others else ""))
        lines += [f"  - {problem}" for problem in others]
    elif report.problems:
        lines.append(f"{len(report.problems)} problem(s):")
        lines += [f"  - {problem}" for problem in report.problems]
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in np.asarray(values).tolist()) + ")"
