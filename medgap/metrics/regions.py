"""Binary masks of the structures to evaluate, computed from an integer label map.

BraTS is evaluated on nested regions, not on its labels: whole tumour WT = {1, 2, 4}, tumour core TC = {1, 4},
enhancing tumour ET = {4} (BraTS 2018-2021 labels: 1 necrosis / non-enhancing core, 2 oedema, 4 enhancing;
BraTS 2023 renumbered enhancing to 3). Regions are always taken from the label values, never from the order
of a network's output channels, so a model trained on regions and one trained on labels are scored alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medgap.metrics.overlap import MetricInputError, to_numpy


def label_to_masks(
    label_map: Any,
    regions: Mapping[str, Sequence[int]] | None = None,
    labels: Mapping[str, int | Sequence[int]] | None = None,
) -> dict[str, np.ndarray]:
    """One boolean mask per evaluated structure of an integer label map.

    Args:
        label_map: integer array or tensor, shape ``(H, W[, D])``.
        regions: ``{name: label values}``, e.g. ``{"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}``; the mask of
            a region is ``np.isin(label_map, values)``. Takes precedence over ``labels`` when given.
        labels: ``{name: value}`` as in ``dataset.json`` (``{"background": 0, "LA": 1}``), used when
            ``regions`` is None: one mask ``label_map == value`` per foreground label; value 0 (background)
            is skipped. A tuple value (nnU-Net's region notation) is treated as a region.

    Returns:
        ``{name: bool array of label_map's shape}``, in the order of the mapping given.

    Raises:
        MetricInputError: neither ``regions`` nor ``labels`` is given.
    """
    label_np = to_numpy(label_map)
    if regions is not None:
        return {name: np.isin(label_np, np.asarray(values)) for name, values in regions.items()}
    if labels is None:
        raise MetricInputError("label_to_masks needs regions or labels to know which structures to evaluate")
    masks = {}
    for name, value in labels.items():
        if isinstance(value, (int, np.integer)):
            if int(value) != 0:
                masks[name] = label_np == int(value)
        else:
            masks[name] = np.isin(label_np, np.asarray(value))
    return masks


def brats_regions(label_map: Any, enhancing_label: int = 4) -> dict[str, np.ndarray]:
    """BraTS whole tumour, tumour core and enhancing tumour masks from a label map.

    Args:
        label_map: integer array or tensor, shape ``(H, W, D)``; 1 = necrosis / non-enhancing core,
            2 = oedema, ``enhancing_label`` = enhancing tumour.
        enhancing_label: 4 for BraTS 2018-2021, 3 for BraTS 2023.

    Returns:
        ``{"WT": isin {1, 2, ET}, "TC": isin {1, ET}, "ET": == ET}`` as boolean arrays.
    """
    return label_to_masks(
        label_map,
        regions={"WT": (1, 2, enhancing_label), "TC": (1, enhancing_label), "ET": (enhancing_label,)},
    )
