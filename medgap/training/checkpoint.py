"""Checkpoints are plain state dicts (tensors, numbers, strings), saved atomically, loaded with ``weights_only``.

Loading never unpickles arbitrary objects: ``torch.load(..., weights_only=True)`` refuses them. A checkpoint
whose parameter names or shapes differ from the model is refused with the mismatching keys listed.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from medgap.atomic import atomic_path
from medgap.errors import CheckpointError


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` with ``torch.save`` to a temporary file, then rename: a crash leaves the old file intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a loadable state-dict checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a medgap checkpoint (no 'model' state dict)")
    return state


def load_model_state(model: nn.Module, state_dict: dict, path: str | os.PathLike) -> None:
    """Load strictly; on mismatch list the missing/unexpected/mis-shaped keys in one line."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(key for key in set(own) & set(state_dict)  # extra states (e.g. a vocabulary) have no shape
                    if hasattr(own[key], "shape") and tuple(own[key].shape) != tuple(state_dict[key].shape))
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''} ({len(keys)})")
        raise CheckpointError(f"{path}: checkpoint does not match the model ({'; '.join(parts)})")
    model.load_state_dict(state_dict, strict=True)
