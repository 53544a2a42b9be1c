"""``SegmentationMetrics``: collects per-(case, structure) metric records and summarises them (MONAI-style).

Typical use in evaluation::

    metrics = SegmentationMetrics(empty_penalty=None, voxel_units_too=True)
    for case in cases:
        metrics.update(case.id, brats_regions(prediction), brats_regions(label), spacing=case.spacing,
                       subset="FLAIR+T1")
    metrics.aggregate(group_by=("subset", "structure"))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medgap.metrics.overlap import MetricInputError, dice, jaccard, to_binary_pair
from medgap.metrics.stats import aggregate as aggregate_records
from medgap.metrics.surface import check_hd95_definition, extract_surfaces, metrics_from_surfaces, normalise_spacing
from medgap.phases import timed

SUPPORTED_METRICS = ("dice", "jaccard", "hd95", "asd")
SURFACE_METRICS = ("hd95", "asd")


class SegmentationMetrics:
    """Accumulates Dice / Jaccard / HD95 / ASD per case and structure.

    Args:
        metrics: which of ``("dice", "jaccard", "hd95", "asd")`` to compute.
        hd95_definition: "medpy" (pooled 95th percentile, default) or "monai" (max of directed ones); see
            :mod:`medgap.metrics.surface`.
        empty_penalty: HD95 / ASD when exactly one mask is empty (default NaN, counted apart by
            :meth:`aggregate`).
        voxel_units_too: also record ``hd95_vox`` / ``asd_vox`` with spacing 1, for comparison with papers
            that used medpy without a spacing. The surfaces are extracted once for both; ``empty_penalty`` is
            used as given in both columns.
    """

    def __init__(
        self,
        metrics: Sequence[str] = SUPPORTED_METRICS,
        hd95_definition: str = "medpy",
        empty_penalty: float | None = None,
        voxel_units_too: bool = False,
    ) -> None:
        unknown = [m for m in metrics if m not in SUPPORTED_METRICS]
        if unknown:
            raise MetricInputError(f"unknown metrics {unknown}; supported: {SUPPORTED_METRICS}")
        check_hd95_definition(hd95_definition)
        self.metrics = tuple(metrics)
        self.hd95_definition = hd95_definition
        self.empty_penalty = empty_penalty
        self.voxel_units_too = voxel_units_too
        self._records: list[dict[str, Any]] = []

    @property
    def metric_columns(self) -> tuple[str, ...]:
        """The metric keys of each record, in order (``hd95_vox`` / ``asd_vox`` included when enabled)."""
        surface = [m for m in self.metrics if m in SURFACE_METRICS]
        return self.metrics + (tuple(f"{m}_vox" for m in surface) if self.voxel_units_too else ())

    @property
    def records(self) -> list[dict[str, Any]]:
        """One dict per (case, structure), in update order: ``case``, ``structure``, the metrics,
        ``gt_empty``, ``pred_empty`` and the extra columns given to :meth:`update`."""
        return list(self._records)

    @timed("metrics")
    def update(
        self,
        case_id: str,
        pred_masks: Mapping[str, Any],
        gt_masks: Mapping[str, Any],
        spacing: Sequence[float] | float | None = None,
        **extra_columns: Any,
    ) -> list[dict[str, Any]]:
        """Compute the metrics of every structure of one case and append one record per structure.

        Args:
            case_id: the case identifier written in the ``case`` column.
            pred_masks: ``{structure: mask}``, masks of shape ``(H, W[, D])``, bool or 0/1, numpy or torch.
            gt_masks: ``{structure: mask}`` with the same structures.
            spacing: voxel size per axis in mm; None = voxel units.
            **extra_columns: constant columns added to each record (e.g. ``subset="T1+T2"``, ``run="ss_net"``).

        Returns:
            The new records.
        """
        if set(pred_masks) != set(gt_masks):
            raise MetricInputError(
                f"case {case_id}: structures differ, pred {sorted(pred_masks)} vs gt {sorted(gt_masks)}"
            )
        reserved = {"case", "structure", "gt_empty", "pred_empty", *self.metric_columns}
        clashing = sorted(reserved & set(extra_columns))
        if clashing:
            raise MetricInputError(f"case {case_id}: extra columns {clashing} would overwrite metric record fields")
        surface_wanted = [m for m in self.metrics if m in SURFACE_METRICS]
        new_records = []
        for structure, gt in gt_masks.items():
            try:
                pred_np, gt_np = to_binary_pair(pred_masks[structure], gt)
                if surface_wanted:
                    normalise_spacing(spacing, gt_np.ndim)
            except MetricInputError as error:
                raise MetricInputError(f"case {case_id}, structure {structure}: {error}") from error
            record: dict[str, Any] = {"case": case_id, "structure": structure}
            if "dice" in self.metrics:
                record["dice"] = dice(pred_np, gt_np)
            if "jaccard" in self.metrics:
                record["jaccard"] = jaccard(pred_np, gt_np)
            if surface_wanted:
                surfaces = extract_surfaces(pred_np, gt_np)
                values = metrics_from_surfaces(surfaces, spacing, self.hd95_definition, self.empty_penalty)
                record.update({m: values[m] for m in surface_wanted})
                if self.voxel_units_too:
                    # In voxel units only the distance transforms differ; the surfaces are reused.
                    if spacing is not None and any(s != 1.0 for s in normalise_spacing(spacing, gt_np.ndim)):
                        values = metrics_from_surfaces(surfaces, None, self.hd95_definition, self.empty_penalty)
                    record.update({f"{m}_vox": values[m] for m in surface_wanted})
            record["gt_empty"] = not gt_np.any()
            record["pred_empty"] = not pred_np.any()
            record.update(extra_columns)
            new_records.append(record)
        self._records.extend(new_records)
        return new_records

    def aggregate(self, group_by: Sequence[str] = ("structure",)) -> list[dict[str, Any]]:
        """Mean ± std per group over the records so far; see :func:`medgap.metrics.stats.aggregate`."""
        return aggregate_records(self._records, group_by, self.metric_columns)

    def reset(self) -> None:
        """Forget all records."""
        self._records = []
