"""PyTorch datasets over preprocessed cases: random training patches and whole evaluation volumes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from medgap.data.preprocess import PreprocessedCase
from medgap.data.samplers import Sample
from medgap.data.transforms import Augmentation, SpatialAugmentation, crop_patch


class PatchDataset(Dataset):
    """Random patches for training; indexed by ``(case index, sample seed)`` from a batch sampler.

    Each item: ``image (C, *patch)`` float32, ``label (*patch)`` int64 label indices (zeros when unlabelled),
    ``availability (C,)`` bool, ``labelled`` bool, ``case`` str, ``text`` str or None (the case's report; with
    text, use a 2-D patch as large as the image and no left/right flips so the crop still matches the report).

    Args:
        cases: preprocessed cases.
        patch_size: spatial patch; 2 entries on 3-D volumes = slice-wise 2-D training.
        labelled: per case, whether its label may be used (False for cases in the unlabelled partition,
            even if a label file exists).
        augmentation: applied to every patch, or ``None``.
        foreground_probability: chance of centring a labelled patch on foreground.
        spatial: rotation/scaling/elastic deformation applied while cropping (nnU-Net's), or ``None``.
    """

    def __init__(self, cases: list[PreprocessedCase], patch_size: tuple[int, ...], labelled: list[bool],
                 augmentation: Augmentation | None = None, foreground_probability: float = 0.33,
                 spatial: SpatialAugmentation | None = None):
        self.cases, self.patch_size, self.labelled = cases, tuple(patch_size), labelled
        self.augmentation, self.foreground_probability = augmentation, foreground_probability
        self.spatial = spatial

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, item: Sample) -> dict:
        index, seed = item
        case = self.cases[index]
        rng = np.random.default_rng(seed)
        use_label = self.labelled[index]
        label = case.label() if use_label else None
        foreground = case.foreground() if use_label else None

        def crop(size: tuple[int, ...], rng: np.random.Generator):
            return crop_patch(case.image(), label, size, rng, foreground, self.foreground_probability)

        # the spatial transform draws only when configured, so without it every sample is as before
        image, label = crop(self.patch_size, rng) if self.spatial is None else self.spatial(self.patch_size, rng, crop)
        if self.augmentation is not None:
            image, label = self.augmentation(image, label, case.availability, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "label": torch.from_numpy(np.zeros(self.patch_size, np.int64) if label is None else label.astype(np.int64)),
            "availability": torch.from_numpy(case.availability.copy()),
            "labelled": torch.tensor(use_label),
            "case": case.case_id,
            "text": case.text,  # the report or None; collate keeps a list of strings
        }


def collate(samples: list[dict]) -> dict:
    """Stack tensors; keep strings as lists."""
    batch = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
