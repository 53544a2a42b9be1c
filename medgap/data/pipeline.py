"""From a :class:`DataConfig` to checked, split, preprocessed cases and a training loader."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from medgap.atomic import is_within, write_json
from medgap.config import AugmentationConfig, DataConfig
from medgap.data.cases import Case, discover_cases
from medgap.data.classification import ClassificationDataset, load_class_labels
from medgap.data.dataset_json import DatasetSpec, load_dataset_json
from medgap.data.datasets import PatchDataset, collate
from medgap.data.preprocess import PreprocessedCase, preprocess_cases
from medgap.data.samplers import TwoStreamBatchSampler
from medgap.data.splits import load_splits, make_splits
from medgap.data.transforms import Augmentation, SpatialAugmentation
from medgap.errors import ConfigError, DatasetError
from medgap.phases import timed


@dataclass
class PreparedData:
    spec: DatasetSpec
    cases: dict[str, Case]
    splits: dict
    preprocessed: dict[str, PreprocessedCase]
    class_labels: dict[str, int] | None = None  # classification datasets: case id → class index

    def split_cases(self, name: str) -> list[PreprocessedCase]:
        return [self.preprocessed[case_id] for case_id in self.splits[name] if case_id in self.preprocessed]


def default_cache_dir(dataset_dir: str | os.PathLike, run_dir: str | os.PathLike, spec: DatasetSpec) -> Path:
    """Beside the run folders (never inside the input dataset): ``<runs>/.medgap_cache/<name>-<hash of path>``."""
    key = hashlib.sha256(str(Path(dataset_dir).resolve()).encode()).hexdigest()[:10]
    return Path(run_dir).resolve().parent / ".medgap_cache" / f"{Path(dataset_dir).name}-{key}"


@timed('preprocess')
def prepare_data(config: DataConfig, seed: int, run_dir: str | os.PathLike, *, write_splits: bool = True,
                 only_splits: tuple[str, ...] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> PreparedData:
    """Validate the dataset folder, fix the split (persisted in the run folder), preprocess into the cache.

    The split is, in order of precedence: the run folder's ``splits.json`` (resume/evaluate), the dataset
    folder's ``splits.json`` (from a converter; its labelled part is re-drawn if a ratio/count is configured),
    or a new seeded split.
    """
    if not config.dataset_dir:
        raise ConfigError("data.dataset_dir is not set")
    dataset_dir = Path(config.dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"{dataset_dir}: dataset folder not found")
    spec = load_dataset_json(dataset_dir)
    cases = {case.case_id: case for case in discover_cases(dataset_dir, spec, "Tr")}
    class_labels = load_class_labels(dataset_dir, spec, set(cases)) if spec.task == "classification" else None
    has_label = set(class_labels) if class_labels is not None else {c for c, case in cases.items() if case.labelled}
    run_dir = Path(run_dir)
    run_splits = run_dir / "splits.json"
    if run_splits.is_file():
        splits = load_splits(run_splits, list(cases))
    else:
        if (dataset_dir / "splits.json").is_file():
            splits = load_splits(dataset_dir / "splits.json", list(cases))
            if config.labelled_ratio is not None or config.labelled_count is not None:
                redrawn = make_splits(splits["train"], {c for c in splits["train"] if c in has_label}, seed=seed,
                                      val_fraction=0.0, test_fraction=0.0, labelled_ratio=config.labelled_ratio,
                                      labelled_count=config.labelled_count, label_groups=spec.groups)
                splits.update(labelled=redrawn["labelled"], unlabelled=redrawn["unlabelled"])
        else:
            from medgap.data.genetics import case_groups  # several images of one individual: split by individual

            splits = make_splits(list(cases), has_label, seed=seed,
                                 val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                                 labelled_ratio=config.labelled_ratio, labelled_count=config.labelled_count,
                                 groups=spec.groups or case_groups(dataset_dir, spec.genetics, cases),
                                 label_groups=spec.groups)
        if write_splits:
            write_json(run_splits, splits)
    wanted = sorted({c for name in (only_splits or ("train", "val", "test")) for c in splits[name]})
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir(dataset_dir, run_dir, spec)
    if is_within(cache_dir, dataset_dir):
        raise ConfigError(
            f"{cache_dir}: the preprocessing cache (data.cache_dir) must not be inside the dataset folder")
    handles = preprocess_cases([cases[c] for c in wanted], spec, cache_dir, normalisation=config.normalisation,
                               max_bytes=int(config.max_image_mib * 2**20), skip_bad_cases=config.skip_bad_cases,
                               progress=progress)
    return PreparedData(spec=spec, cases=cases, splits=splits, preprocessed={h.case_id: h for h in handles},
                        class_labels=class_labels)


def build_augmentation(config: AugmentationConfig) -> tuple[Augmentation, SpatialAugmentation | None]:
    """The per-patch augmentation and, with ``nnunet``, nnU-Net's spatial one (``None`` without: nothing drawn)."""
    gamma = (config.gamma_probability, config.gamma_inverted_probability) if config.nnunet else (0.0, 0.0)
    augmentation = Augmentation(tuple(config.flip_axes), config.flip_probability, config.intensity_scale,
                                config.intensity_shift, config.noise_std, config.rot90_flip_probability, *gamma,
                                tuple(config.gamma_range))
    if not config.nnunet:
        return augmentation, None
    return augmentation, SpatialAugmentation(
        config.rotation_probability, config.rotation_degrees, config.scaling_probability,
        tuple(config.scaling_range), config.elastic_probability, tuple(config.elastic_scale),
        tuple(config.elastic_magnitude))


def training_loader(data: PreparedData, config: DataConfig, seed: int, *, rank: int = 0, world_size: int = 1,
                    start_step: int = 0) -> DataLoader:
    """An endless loader of two-stream batches (labelled first), positioned at ``start_step``."""
    for case in data.preprocessed.values():  # a 3-D patch cannot come from a 2-D image (2-D from 3-D can: slices)
        if len(case.shape) < len(config.patch_size):
            raise DatasetError(f"{data.cases[case.case_id].first_image_path}: {len(case.shape)}-D image {case.shape}, but data.patch_size "
                               f"{list(config.patch_size)} is {len(config.patch_size)}-D")
    train = data.split_cases("train")
    if config.train_requires_genetics:  # ContIG's inner aggregation: the dataset holds complete individuals only
        required = set(config.train_requires_genetics)
        train = [case for case in train if required <= set(data.cases[case.case_id].genetics)]
        if not train:
            raise DatasetError(f"{config.dataset_dir}: no training case has every genetic modality of "
                               f"data.train_requires_genetics {sorted(required)}")
    labelled_ids = set(data.splits["labelled"])
    classes = data.class_labels
    labelled_flags = [case.case_id in labelled_ids and (case.labelled if classes is None else case.case_id in classes)
                      for case in train]
    labelled = [i for i, flag in enumerate(labelled_flags) if flag]
    unlabelled = [i for i, flag in enumerate(labelled_flags) if not flag]
    if config.labelled_batch_size > 0 and not labelled:
        raise DatasetError(f"{config.dataset_dir}: no labelled training cases")
    if config.unlabelled_batch_size > 0 and not unlabelled:
        raise DatasetError(f"{config.dataset_dir}: data.unlabelled_batch_size > 0 but there are no unlabelled cases")
    augmentation, spatial = build_augmentation(config.augmentation)
    if data.class_labels is not None:
        dataset = ClassificationDataset(train, tuple(config.patch_size), classes, labelled_flags, augmentation)
    else:
        dataset = PatchDataset(train, tuple(config.patch_size), labelled_flags, augmentation,
                               config.foreground_probability, spatial)
    sampler = TwoStreamBatchSampler(labelled, unlabelled, config.labelled_batch_size, config.unlabelled_batch_size,
                                    seed, rank, world_size, start_step)
    # An explicit generator keeps DataLoader from drawing its base seed from the global torch RNG, which would
    # make a resumed run's dropout/augmentation stream differ from an uninterrupted one.
    return DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers, collate_fn=collate,
                      persistent_workers=config.num_workers > 0, generator=torch.Generator().manual_seed(seed),
                      prefetch_factor=4 if config.num_workers > 0 else None)
