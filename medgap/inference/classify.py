"""Whole-image class prediction for classification methods (validation, ``medgap evaluate``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medgap.data.classification import whole_image_batches


@torch.inference_mode()
def predict_classes(method, cases, config, device=None, subset: Sequence[bool] | None = None,
                    batch_size: int = 256) -> np.ndarray:
    """Predicted class indices ``(len(cases),)`` of whole images, with only ``subset`` modalities kept."""
    device = device or next(method.parameters()).device
    predictions = []
    for _, image, availability in whole_image_batches(cases, config.data.patch_size, batch_size):
        if subset is not None:
            availability = availability & torch.tensor(subset)
        image = image * availability.reshape(*availability.shape, *[1] * (image.ndim - 2))
        logits = method.predict_logits(image.to(device), availability.to(device))
        predictions.append(logits.argmax(1).cpu().numpy())
    return np.concatenate(predictions) if predictions else np.zeros(0, np.int64)
