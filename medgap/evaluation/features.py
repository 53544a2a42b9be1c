"""ShaSpec's feature visualisation: shared vs specific features embedded in 2-D with t-SNE, coloured by modality.

If the shared encoder does its job (DAO), shared features of different modalities of the same case mix; specific
features (DCO) form one cluster per modality. The silhouette score by modality (scikit-learn, in the 2-D
embedding's source space) puts a number on it: near 0 or below = mixed, near 1 = separated.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from medgap.evaluation.plots import _save, plt
from medgap.methods.base import ClassificationMethod, SegmentationMethod
from medgap.phases import timed


@torch.inference_mode()
def pooled_features(method, cases, config, max_items: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global-average-pooled bottleneck features of every present modality.

    Returns:
        ``shared (M, C)``, ``specific (M, C)``, ``modality (M,)`` over (case, window/image, present modality)
        items, at most ``max_items`` cases/windows.
    """
    from medgap.data.classification import whole_images
    from medgap.data.transforms import crop_patch

    method.eval()
    device = next(method.parameters()).device
    if isinstance(method, ClassificationMethod):
        image, availability = whole_images(cases[:max_items], config.data.patch_size)
    else:  # one patch per case around the tumour/foreground (where the modalities differ most)
        patches, masks = [], []
        for case in cases[:max_items]:
            rng = np.random.default_rng(0)
            foreground = case.foreground() if case.labelled else None
            patch, _ = crop_patch(np.asarray(case.image()), None, tuple(config.data.patch_size), rng, foreground, 1.0)
            patches.append(patch)
            masks.append(case.availability)
        image, availability = torch.from_numpy(np.stack(patches)), torch.from_numpy(np.stack(masks))
    features = method.encoder(image.float().to(device), availability.to(device))
    shared = features.shared.flatten(3).mean(-1).cpu()  # (B, N, C)
    specific = features.specific.flatten(3).mean(-1).cpu()
    keep = availability.cpu()
    modality = torch.arange(keep.shape[1]).expand_as(keep)
    return shared[keep].numpy(), specific[keep].numpy(), modality[keep].numpy()


@timed('plots')
def plot_shared_specific(method, cases, config, path: str | os.PathLike, *, seed: int = 0,
                         channel_names: tuple[str, ...] | None = None) -> Path:
    """Two t-SNE panels (shared | specific) coloured by modality, with silhouette scores in the titles.

    The scores are also written beside the image (``path`` with ``.json``: ``silhouette_shared``,
    ``silhouette_specific``, ``points``). The silhouette needs 2 ≤ modalities ≤ points − 1 (one case gives one
    point per modality): otherwise it is NaN and ``note`` says why; t-SNE needs more points than its perplexity,
    so fewer than 4 points are drawn as they are (no embedding)."""
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    from medgap.atomic import write_json

    shared, specific, modality = pooled_features(method, cases, config)
    points, groups = len(modality), len(set(modality.tolist()))
    silhouette_defined = 2 <= groups <= points - 1
    scores = {} if silhouette_defined else {"note": f"silhouette undefined for {points} points in {groups} "
                                                    "modalities (needs 2 <= modalities <= points - 1)"}
    spec = method.targets.spec if isinstance(method, SegmentationMethod) else method.spec
    names = channel_names or spec.channel_names
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    colours = plt.get_cmap("tab10")
    for axis, (title, values) in zip(axes, (("shared features r", shared), ("specific features s", specific))):
        perplexity = float(max(2, min(30, (len(values) - 1) // 3)))
        if len(values) > perplexity + 1:
            embedded = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(values)
        else:  # too few points for t-SNE: show the first two feature dimensions
            embedded = np.pad(values[:, :2], ((0, 0), (0, max(0, 2 - values.shape[1]))))
        score = silhouette_score(values, modality) if silhouette_defined else float("nan")
        scores[f"silhouette_{title.split()[0]}"] = float(score)
        for index, name in enumerate(names):
            chosen = modality == index
            axis.scatter(*embedded[chosen].T, s=10, color=colours(index % 10), label=name, alpha=0.8)
        axis.set_title(f"{title} (silhouette by modality {score:.2f})", fontsize=10)
        axis.set_xticks([]), axis.set_yticks([])
    axes[1].legend(fontsize=8, loc="best")
    figure.suptitle("ShaSpec features, t-SNE: shared should mix, specific should separate")
    write_json(Path(path).with_suffix(".json"), {**scores, "points": int(points)})
    return _save(figure, path)
