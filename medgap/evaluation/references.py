"""Sanity references for the results pages: what a network must at least reach on the same split, so that a reader
can tell a method that lost from a network that did not learn.

- classification (``digits-av``): logistic regression on the raw pixels of one modality or of all of them
  (:func:`classical_reference` with ``model="logistic"``; accuracy);
- ordinal grading (``fundus-genetics``): ridge regression on block-averaged pixels, rounded to the nearest grade
  (``model="ridge"``; quadratic-weighted kappa, the paper's metric);
- segmentation: the supervised upper bound at the same budget — a network run, turned into a row by
  :func:`network_reference`;
- positive controls (e.g. a GWAS on the true traits) are rows of the same kind built by the paper modules.

:func:`below_reference` is the page's rule: a network row whose score falls below its classical reference is
flagged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medgap.errors import DatasetError

KINDS = ("classical", "upper bound", "positive control")


@dataclass(frozen=True)
class Reference:
    """One sanity row: ``score`` in ``metric`` (higher is better unless ``higher_is_better`` is False) and the
    per-case quantity behind it (1/0 correctness, squared grade error, Dice ...)."""

    name: str
    kind: str
    metric: str
    score: float
    per_case: dict[str, float] = field(default_factory=dict)
    higher_is_better: bool = True


def raw_pixels(dataset_dir: str | os.PathLike, case_ids: Sequence[str], *, channels: Sequence[int] | None = None,
               size: int | None = None) -> np.ndarray:
    """``(cases, features)``: the cases' images, the chosen channels (default all; a missing file is zeros),
    block-averaged to at most ``size`` pixels per side when given, flattened."""
    from medgap.data.cases import discover_cases
    from medgap.data.dataset_json import load_dataset_json
    from medgap.data.io import read_image

    spec = load_dataset_json(dataset_dir)
    cases = {case.case_id: case for case in discover_cases(dataset_dir, spec)}
    missing = [case_id for case_id in case_ids if case_id not in cases]
    if missing:
        raise DatasetError(f"{dataset_dir}: no images for cases {missing[:3]}")
    rows = []
    for case_id in case_ids:
        case = cases[case_id]
        chosen = range(len(case.image_paths)) if channels is None else channels
        arrays = [None if case.image_paths[i] is None else read_image(case.image_paths[i])[0] for i in chosen]
        if any(array is None for array in arrays):  # a missing modality is zeros of the case's image shape
            shape = read_image(case.first_image_path)[0].shape
            arrays = [np.zeros(shape, np.float32) if array is None else array for array in arrays]
        rows.append(np.concatenate([_downsample(array, size).ravel() for array in arrays]))
    return np.stack(rows)


def _downsample(image: np.ndarray, size: int | None) -> np.ndarray:
    """Block average so that no side exceeds ``size`` (sides are cropped to a multiple of the block)."""
    if size is None or max(image.shape) <= size:
        return image
    block = math.ceil(max(image.shape) / size)
    cropped = image[tuple(slice(0, (s // block) * block) for s in image.shape)]
    shape = [part for s in cropped.shape for part in (s // block, block)]
    return cropped.reshape(shape).mean(axis=tuple(range(1, len(shape), 2)))


def classical_reference(dataset_dir: str | os.PathLike, train_ids: Sequence[str], test_ids: Sequence[str], *,
                        model: str = "logistic", channels: Sequence[int] | None = None, size: int | None = None,
                        name: str | None = None) -> Reference:
    """A classical model on raw pixels, fitted on ``train_ids`` and scored on ``test_ids`` of a classification
    dataset (``labelsTr.csv``).

    ``model="logistic"``: standardised pixels → multinomial logistic regression (L2, C = 1), accuracy (%); the
    per-case quantity is 1 for a correct prediction, else 0. ``model="ridge"``: standardised pixels → ridge
    regression on the grade index (α by leave-one-out CV over 1e-1 … 1e5), rounded and clipped to the grades,
    quadratic-weighted kappa; the per-case quantity is the squared grade error.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import cohen_kappa_score
    from sklearn.preprocessing import StandardScaler

    from medgap.data.classification import load_class_labels
    from medgap.data.dataset_json import load_dataset_json

    spec = load_dataset_json(dataset_dir)
    labels = load_class_labels(dataset_dir, spec)
    unlabelled = [case for case in [*train_ids, *test_ids] if case not in labels]
    if unlabelled:
        raise DatasetError(f"{Path(dataset_dir) / 'labelsTr.csv'}: no class for cases {unlabelled[:3]}")
    train_x = raw_pixels(dataset_dir, train_ids, channels=channels, size=size)
    test_x = raw_pixels(dataset_dir, test_ids, channels=channels, size=size)
    scaler = StandardScaler().fit(train_x)
    train_x, test_x = scaler.transform(train_x), scaler.transform(test_x)
    train_y = np.array([labels[case] for case in train_ids])
    test_y = np.array([labels[case] for case in test_ids])
    which = "all channels" if channels is None else "+".join(spec.channel_names[i] for i in channels)
    if model == "logistic":
        predicted = LogisticRegression(max_iter=2000).fit(train_x, train_y).predict(test_x)
        correct = (predicted == test_y).astype(float)
        return Reference(name or f"logistic regression on raw pixels ({which})", "classical", "accuracy (%)",
                         float(correct.mean() * 100), dict(zip(test_ids, correct.tolist())))
    if model == "ridge":
        grades = len(spec.classes)
        ridge = RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(train_x, train_y)
        predicted = np.clip(np.rint(ridge.predict(test_x)), 0, grades - 1).astype(int)
        kappa = cohen_kappa_score(test_y, predicted, weights="quadratic", labels=list(range(grades)))
        errors = ((predicted - test_y) ** 2).astype(float)
        return Reference(name or f"ridge regression on {size or 'full'}-px pixels ({which})", "classical",
                         "quadratic kappa", float(kappa), dict(zip(test_ids, errors.tolist())))
    raise ValueError(f"classical_reference: unknown model {model!r} (logistic or ridge)")


def network_reference(name: str, per_case: Mapping[str, float], metric: str, *, kind: str = "upper bound",
                      scale: float = 1.0, higher_is_better: bool = True) -> Reference:
    """A network run as a sanity row (e.g. the supervised upper bound at the same budget): its score is the mean
    of the finite per-case values × ``scale``."""
    if kind not in KINDS:
        raise ValueError(f"network_reference: kind must be one of {KINDS}, got {kind!r}")
    values = np.array([v for v in per_case.values() if math.isfinite(v)], dtype=np.float64)
    return Reference(name, kind, metric, float(values.mean() * scale) if values.size else math.nan, dict(per_case),
                     higher_is_better)


def below_reference(score: float, reference: Reference) -> bool:
    """The page's flag: True when a network's ``score`` (same metric and scale as the reference) is worse than the
    reference's. A NaN on either side is not flagged (nothing to compare)."""
    if math.isnan(score) or math.isnan(reference.score):
        return False
    return score < reference.score if reference.higher_is_better else score > reference.score


@dataclass(frozen=True)
class SanityCheck:
    """A reference and the network rows judged against it (``{row label: score}`` in the reference's metric)."""

    reference: Reference
    networks: dict[str, float] = field(default_factory=dict)


def flag(score: float, reference: Reference) -> str:
    """The flag of a network row: below a classical reference or a positive control, or above an upper bound (a
    sign that the upper bound itself is under-trained)."""
    if reference.kind == "upper bound":
        if math.isnan(score) or math.isnan(reference.score):
            return ""
        above = score > reference.score if reference.higher_is_better else score < reference.score
        return "⚠ above the upper bound (under-trained?)" if above else ""
    return "⚠ below the reference" if below_reference(score, reference) else ""


def sanity_table(checks: Sequence[SanityCheck]) -> str:
    """Markdown: one line per reference, then one per network row judged against it, with :func:`flag`."""
    from medgap.evaluation.reports import markdown_table

    rows = []
    for check in checks:
        reference = check.reference
        rows.append([f"**{reference.name}**", reference.kind, reference.metric, _score(reference.score), ""])
        for label, score in check.networks.items():
            rows.append([f"↳ {label}", "network", reference.metric, _score(score), flag(score, reference)])
    return markdown_table(["row", "kind", "metric", "score (test split)", "flag"], rows)


def _score(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value.is_integer():  # counts (GWAS loci), exact accuracies
        return f"{int(value)}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"
    return f"{value:.3f}" if abs(value) < 1.5 else f"{value:.2f}"
