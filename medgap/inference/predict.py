"""Predict label maps for preprocessed cases (validation/evaluation) and for a folder of NIfTI files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medgap.atomic import is_within
from medgap.config import ExperimentConfig
from medgap.data.cases import Case, discover_images, load_case
from medgap.data.preprocess import PreprocessedCase
from medgap.data.transforms import normalise
from medgap.errors import ConfigError, DatasetError, MedgapError
from medgap.inference.sliding_window import keep_largest_component, predict_probabilities


def inference_patch(config: ExperimentConfig) -> list[int]:
    return list(config.inference.patch_size or config.data.patch_size)


def window_overlap(config: ExperimentConfig) -> float | list[float]:
    """MONAI's overlap: ``inference.overlap``, or per axis ``(window − stride) / window`` when a stride is given.

    SS-Net/UA-MT describe the sliding window by its stride (18×18×4 voxels on 112×112×80 windows). MONAI steps by
    ``int(window × (1 − overlap))``; the tiny margin keeps that from rounding 18.0 down to 17.
    """
    inference, window = config.inference, inference_patch(config)
    if inference.stride is None:
        return inference.overlap
    if len(inference.stride) != len(window) or not all(0 < s <= w for s, w in zip(inference.stride, window)):
        raise ConfigError(f"inference.stride {inference.stride} must give 1..window voxels per axis of {window}")
    return [max((w - s) / w - 1e-6, 0.0) for s, w in zip(inference.stride, window)]


def predict_array(method, image: np.ndarray, availability: np.ndarray, config: ExperimentConfig,
                  device: torch.device | None = None, name: str = "image") -> tuple[np.ndarray, torch.Tensor]:
    """Normalised ``image (C, *S)`` → (label map with the dataset's values, probabilities ``(K, *S)``).

    ``name`` (a case id or file) names the input in the error raised when no modality is available."""
    _require_a_modality(availability, name)
    probabilities = _probabilities(method, image, availability, config, device)
    return _label_map(method, probabilities, config), probabilities


def _require_a_modality(availability: np.ndarray, name: str) -> None:
    if not np.asarray(availability).any():
        raise MedgapError(f"{name}: no modality available (empty availability): nothing to predict from")


def _probabilities(method, image: np.ndarray, availability: np.ndarray, config: ExperimentConfig,
                   device: torch.device | None) -> torch.Tensor:
    inference = config.inference
    return predict_probabilities(
        method, image, availability, inference_patch(config), overlap=window_overlap(config), mode=inference.mode,
        sw_batch_size=inference.sw_batch_size, device=device)


def _label_map(method, probabilities: torch.Tensor, config: ExperimentConfig) -> np.ndarray:
    label = method.targets.to_label_map(probabilities)
    return keep_largest_component(label) if config.inference.largest_component else label


def predict_case(method, case: PreprocessedCase, config: ExperimentConfig, availability: np.ndarray | None = None,
                 device: torch.device | None = None) -> np.ndarray:
    """Label map for a preprocessed case; ``availability`` may drop modalities (they are zeroed)."""
    image = np.array(case.image(), dtype=np.float32)
    present = case.availability if availability is None else (case.availability & availability)
    image[~present] = 0.0
    return predict_array(method, image, present, config, device, name=f"case {case.case_id}")[0]


def predict_case_subsets(method, case: PreprocessedCase, config: ExperimentConfig, subsets: list[np.ndarray],
                         device: torch.device | None = None) -> list[np.ndarray]:
    """Label maps of a preprocessed case under each availability of ``subsets`` (each ``(C,)`` bool, intersected
    with the case's), equal to :func:`predict_case` per subset.

    A method with ``predict_subsets_logits`` (ShaSpec: what an encoder computes for a modality does not depend on
    the others) gets all subsets in one sliding-window pass, each window encoded once; others go subset by subset.
    """
    if not hasattr(method, "predict_subsets_logits") or len(subsets) < 2:
        return [predict_case(method, case, config, availability=subset, device=device) for subset in subsets]
    present = np.stack([case.availability & np.asarray(subset) for subset in subsets])
    for row in present:
        _require_a_modality(row, f"case {case.case_id}")
    image = np.array(case.image(), dtype=np.float32)
    image[~case.availability] = 0.0
    probabilities = _probabilities(method, image, present, config, device)  # (M, K, *S)
    return [_label_map(method, per_subset, config) for per_subset in probabilities]


def predict_folder(method, config: ExperimentConfig, input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                   *, overwrite: bool = False, progress: Callable[[int, int, str], None] | None = None) -> list[Path]:
    """Predict every case ``CASE_XXXX<ending>`` of ``input_dir`` into ``output_dir/CASE<ending>``.

    Absent channel files are missing modalities (zero-filled, and passed as the availability mask to methods
    that model them). Predictions carry the affine and header of the case's first present channel. The output
    folder may not be the input folder or the run's dataset folder or lie inside them, an input file is never
    overwritten, and an existing file of the output folder only with ``overwrite`` (checked before anything is
    written). Temporary files a killed earlier prediction left beside its targets are removed.
    """
    spec = method.targets.spec
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    if not input_dir.is_dir():
        raise MedgapError(f"{input_dir}: input folder not found")
    for folder, what in ((input_dir, "input folder"), (spec.path.parent.resolve(), "dataset folder")):
        if is_within(output_dir, folder):
            raise MedgapError(f"{output_dir}: output folder must not be the {what} or inside it ({folder})")
    if output_dir.exists() and not output_dir.is_dir():
        raise MedgapError(f"{output_dir}: output folder is an existing file")
    images = discover_images(input_dir, spec)
    if not images:
        raise MedgapError(f"{input_dir}: no files named CASE_XXXX{spec.file_ending}")
    targets = {case_id: output_dir / f"{case_id}{spec.file_ending}" for case_id in images}
    existing = [target for target in targets.values() if os.path.lexists(target)]
    if existing and not overwrite:
        raise MedgapError(f"{existing[0]}: prediction would replace an existing file ({len(existing)} in "
                          f"{output_dir}); use --overwrite or another output folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    for target in targets.values():  # atomic_path's temporaries from a killed run (the rename never happened)
        for stale in output_dir.glob(f".{target.name}.*.tmp{spec.file_ending}"):
            stale.unlink()
    written = []
    max_bytes = int(config.data.max_image_mib * 2**20)
    window = inference_patch(config)
    from medgap.data.io import write_image

    for done, (case_id, paths) in enumerate(sorted(images.items()), start=1):
        case = Case(case_id=case_id, image_paths=tuple(paths))
        data = load_case(case, spec, max_bytes=max_bytes)
        if data.image.ndim - 1 < len(window):  # 2-D windows over 3-D volumes are fine (slices)
            raise DatasetError(f"{case.first_image_path}: {data.image.ndim - 1}-D image "
                               f"{data.geometry.shape}, but the run's inference patch {window} is {len(window)}-D")
        image = normalise(data.image, data.availability, config.data.normalisation)
        label, _ = predict_array(method, image, data.availability, config, name=str(case.first_image_path))
        target = targets[case_id]
        if target.resolve() in {Path(p).resolve() for p in paths if p is not None}:
            raise MedgapError(f"{target}: refusing to overwrite an input file")
        write_image(target, label.astype(np.uint8 if label.max() < 256 else np.uint16), data.geometry)
        written.append(target)
        if progress is not None:
            progress(done, len(images), case_id)
    return written
