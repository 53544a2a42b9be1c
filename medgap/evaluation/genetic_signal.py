"""How much of a trait the genetic modalities carry: the ceiling of what ContIG can align an image with.

ContIG's image encoder can only learn from genetics what genetics predicts about the image. On a synthetic cohort the
true traits are known (``truth.json``), so per modality a ridge regression from the ``genetics/<modality>.csv`` row of
a person to the trait, fitted on training people and scored on held-out people, says whether the genetics give the
mechanism a chance at all (issue 19: with 420 training people, raw SNPs predicted vessel calibre with R² 0.05).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from medgap.data.cases import load_genetics
from medgap.errors import DatasetError


def genetic_r2(dataset_dir: str | os.PathLike, trait: str, train_people, test_people,
               modalities: list[str] | None = None, alphas=np.logspace(-2, 5, 15)) -> dict[str, dict[str, float]]:
    """Held-out R² of a ridge regression (α by leave-one-out CV on the training people) from each modality to
    ``trait``.

    Args:
        dataset_dir: a dataset folder with ``genetics/*.csv`` keyed by individual and the truth file named by
            ``dataset.json`` (``"genetics": {"truth": ...}``) holding ``trait_values[trait][person]``.
        trait: e.g. ``"vessel"``.
        train_people, test_people: individual ids; people without the modality are left out of its fit/score.
        modalities: default every ``genetics/*.csv``.

    Returns:
        ``{modality: {"r2": held-out R², "train": people fitted, "test": people scored}}`` (R² may be negative:
        worse than predicting the training mean).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    dataset_dir = Path(dataset_dir)
    spec = json.loads((dataset_dir / "dataset.json").read_text(encoding="utf-8"))
    truth_name = (spec.get("genetics") or {}).get("truth") if isinstance(spec.get("genetics"), dict) else None
    if not truth_name or not (dataset_dir / truth_name).is_file():
        raise DatasetError(f"{dataset_dir}: no truth file (dataset.json genetics.truth) to score genetics against")
    values = json.loads((dataset_dir / truth_name).read_text(encoding="utf-8")).get("trait_values", {}).get(trait)
    if values is None:
        raise DatasetError(f"{dataset_dir / truth_name}: no trait {trait!r}")
    tables = load_genetics(dataset_dir / "genetics")
    result = {}
    for modality in modalities or sorted(tables):
        if modality not in tables:
            raise DatasetError(f"{dataset_dir}/genetics: no modality {modality!r} (found {sorted(tables)})")
        rows = tables[modality]
        train = [p for p in train_people if p in rows and p in values]
        test = [p for p in test_people if p in rows and p in values]
        if len(train) < 3 or len(test) < 2:
            result[modality] = {"r2": float("nan"), "train": len(train), "test": len(test)}
            continue
        scaler = StandardScaler().fit(np.stack([rows[p] for p in train]))
        model = RidgeCV(alphas=alphas).fit(scaler.transform(np.stack([rows[p] for p in train])),
                                           np.array([values[p] for p in train]))
        predicted = model.predict(scaler.transform(np.stack([rows[p] for p in test])))
        result[modality] = {"r2": float(r2_score([values[p] for p in test], predicted)), "train": len(train),
                            "test": len(test)}
    return result
