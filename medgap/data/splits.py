"""Seeded train/val/test splits and the labelled/unlabelled partition, chosen by case id and persisted.

The same (case ids, seed, fractions, labelled ratio/count) always gives the same split. A ``splits.json``
placed in the dataset folder by a converter (e.g. LA's official train/test lists) is used as it is.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from medgap.errors import DatasetError

SPLIT_KEYS = ("train", "val", "test")


def make_splits(
    case_ids: list[str], labelled_ids: set[str], *, seed: int, val_fraction: float = 0.2,
    test_fraction: float = 0.2, labelled_ratio: float | None = None, labelled_count: int | None = None,
    groups: dict[str, str] | None = None, label_groups: dict[str, str] | None = None,
) -> dict:
    """Partition cases into train/val/test and the training cases into labelled/unlabelled.

    Validation and test cases are drawn from cases that have a label file (they are scored). Of the training
    cases with a label file, ``labelled_count`` (or ``round(labelled_ratio × n_train)``, at least 1) keep their
    label; the others become unlabelled, as do cases without a label file. With neither given, all keep it.

    ``groups`` (case id → group, e.g. the individual of each eye image) keeps every group on one side: whole
    groups are drawn for test and validation until their case counts are reached (ContIG splits by individual).
    ``label_groups`` (case id → group, e.g. ACDC's patient of each frame) makes the labelled draw take whole
    groups: ``labelled_count`` and ``labelled_ratio`` then count groups (SS-Net's "7 labelled" are 7 patients, both
    frames each). Cases absent from a mapping are their own group; without the mappings every case is one.

    Returns:
        ``{"seed", "train", "val", "test", "labelled", "unlabelled", ...}`` with sorted case-id lists.
    """
    if labelled_ratio is not None and labelled_count is not None:
        raise DatasetError("give data.labelled_ratio or data.labelled_count, not both")
    if groups is not None:
        return _grouped_splits(case_ids, labelled_ids, groups, seed=seed, val_fraction=val_fraction,
                               test_fraction=test_fraction, labelled_ratio=labelled_ratio, labelled_count=labelled_count,
                               label_groups=label_groups)
    ids = sorted(case_ids)
    with_label = [case_id for case_id in ids if case_id in labelled_ids]
    without_label = [case_id for case_id in ids if case_id not in labelled_ids]
    rng = np.random.default_rng(seed)
    shuffled = [with_label[i] for i in rng.permutation(len(with_label))]
    n_val = int(round(val_fraction * len(ids)))
    n_test = int(round(test_fraction * len(ids)))
    if n_val + n_test >= len(shuffled) and (n_val or n_test):
        raise DatasetError(
            f"only {len(shuffled)} labelled cases: not enough for {n_val} validation + {n_test} test cases and training")
    test, val, train_labelled = shuffled[:n_test], shuffled[n_test:n_test + n_val], shuffled[n_test + n_val:]
    group_of = label_groups or {}
    units: dict[str, list[str]] = {}  # the labelled draw's units, in draw order: cases, or groups of cases
    for case_id in train_labelled:
        units.setdefault(group_of.get(case_id, case_id), []).append(case_id)
    n_train = len(units) + len({group_of.get(c, c) for c in without_label} - set(units))
    what = "groups (data.labelled_count counts groups)" if label_groups else "cases"
    if labelled_count is not None:
        keep = labelled_count
    elif labelled_ratio is not None:
        if not 0 < labelled_ratio <= 1:
            raise DatasetError(f"data.labelled_ratio must be in (0, 1], got {labelled_ratio}")
        keep = max(1, int(math.floor(labelled_ratio * n_train + 0.5)))
    else:
        keep = len(units)
    if keep > len(units):
        raise DatasetError(f"asked for {keep} labelled training {what}, only {len(units)} have labels")
    names = list(units)
    order = [names[i] for i in np.random.default_rng([seed, 1]).permutation(len(names))]
    labelled = sorted(case_id for unit in order[:keep] for case_id in units[unit])
    unlabelled = sorted({case_id for unit in order[keep:] for case_id in units[unit]} | set(without_label))
    return {
        "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
        "labelled_ratio": labelled_ratio, "labelled_count": labelled_count,
        "train": sorted(labelled + unlabelled), "val": sorted(val), "test": sorted(test),
        "labelled": labelled, "unlabelled": unlabelled,
    }


def _grouped_splits(case_ids, labelled_ids, groups, *, seed, val_fraction, test_fraction, labelled_ratio,
                    labelled_count, label_groups) -> dict:
    """:func:`make_splits` by group: held-out groups are drawn among groups with a labelled case, then the
    training cases (all of the remaining groups) are partitioned into labelled/unlabelled by case as usual."""
    ids = sorted(case_ids)
    members: dict[str, list[str]] = {}
    for case_id in ids:
        members.setdefault(groups.get(case_id, case_id), []).append(case_id)
    scored = sorted(g for g, cases in members.items() if any(c in labelled_ids for c in cases))
    order = [scored[i] for i in np.random.default_rng(seed).permutation(len(scored))]
    targets = {"test": int(round(test_fraction * len(ids))), "val": int(round(val_fraction * len(ids)))}
    held: dict[str, list[str]] = {"test": [], "val": []}
    position = 0
    for name in ("test", "val"):
        while len(held[name]) < targets[name] and position < len(order):
            held[name].extend(members[order[position]])
            position += 1
    train = sorted(c for g in order[position:] for c in members[g]) + sorted(
        c for g, cases in members.items() if g not in scored for c in cases)
    if (targets["test"] or targets["val"]) and not any(c in labelled_ids for c in train):
        raise DatasetError(f"only {len(scored)} labelled groups: not enough for validation, test and training")
    inner = make_splits(sorted(train), {c for c in train if c in labelled_ids}, seed=seed, val_fraction=0.0,
                        test_fraction=0.0, labelled_ratio=labelled_ratio, labelled_count=labelled_count,
                        label_groups=label_groups)
    inner.update(val_fraction=val_fraction, test_fraction=test_fraction, grouped=True,
                 val=sorted(held["val"]), test=sorted(held["test"]))
    return inner


def load_splits(path: str | os.PathLike, case_ids: list[str]) -> dict:
    """Read a persisted ``splits.json`` and check that it names only known cases, each in one split."""
    path = Path(path)
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: unreadable splits file ({error})") from None
    missing = [key for key in SPLIT_KEYS if key not in splits]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {', '.join(missing)}")
    known = set(case_ids)
    seen: set[str] = set()
    for key in SPLIT_KEYS:
        unknown = sorted(set(splits[key]) - known)
        if unknown:
            raise DatasetError(f"{path}: {key} names unknown case(s) {unknown[:5]}")
        overlap = seen & set(splits[key])
        if overlap:
            raise DatasetError(f"{path}: case(s) {sorted(overlap)[:5]} are in more than one split")
        seen |= set(splits[key])
    splits.setdefault("labelled", list(splits["train"]))
    splits.setdefault("unlabelled", sorted(set(splits["train"]) - set(splits["labelled"])))
    return splits
