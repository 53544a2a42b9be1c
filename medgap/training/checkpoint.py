"""Checkpoints are plain state dicts (tensors, numbers, strings), saved atomically, loaded with ``weights_only``.

Loading never unpickles arbitrary objects: ``torch.load(..., weights_only=True)`` refuses them. A checkpoint
whose parameter names or shapes differ from the model is refused with the mismatching keys listed.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import torch
from torch import nn

from medgap.atomic import atomic_path
from medgap.errors import CheckpointError
from medgap.phases import timed


# What ``last.pt`` holds besides the weights: without them a run cannot continue exactly.
RESUME_KEYS = ("model", "optimizer", "scheduler", "step", "best", "rng")


@timed('checkpoints')
def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` with ``torch.save`` to a temporary file, then rename: a crash leaves the old file intact.

    A failed write (disk full, quota, permissions) is one line naming the file and the cause; the previous
    checkpoint is untouched."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as error:  # torch reports a full disk as RuntimeError ("file write failed")
        cause = error.strerror if isinstance(error, OSError) and error.strerror else _first_line(error)
        free = _free_bytes(path.parent)
        if free is not None and free < 2**20:
            cause = f"no space left on the device: {free / 2**20:.2g} MiB free"
        kept = "; the previous checkpoint is kept" if path.is_file() else ""
        raise CheckpointError(f"{path}: could not write the checkpoint ({cause}){kept}") from None


def load_checkpoint(path: str | os.PathLike, *, resume: bool = False) -> dict:
    """Load a medgap checkpoint as plain data (never unpickling objects); ``resume`` also requires the
    optimiser, schedule and RNG state that ``last.pt`` holds."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        blocked = re.search(r"unsupported GLOBAL (\S+)", str(error))
        what = f" ({blocked.group(1)})" if blocked else ""
        raise CheckpointError(f"{path}: refused: the file holds Python objects{what}, not only tensors and plain "
                              "values; medgap loads state dicts only") from None
    except Exception as error:  # torch raises RuntimeError, EOFError, ... for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, or not written by torch.save: "
                              f"{_first_line(error)[:80]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        found = f"a {type(state).__name__}" if not isinstance(state, dict) else (
            f"a dict without a 'model' state dict (keys: {', '.join(map(str, list(state)[:5]))})")
        raise CheckpointError(f"{path}: not a medgap checkpoint (found {found})")
    if resume:
        missing = [key for key in RESUME_KEYS if key not in state]
        if missing:
            raise CheckpointError(f"{path}: cannot resume from it: it has no {', '.join(missing)} (weights only, "
                                  "like best.pt); restore the run's own last.pt or train again with --overwrite")
    return state


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def load_model_state(model: nn.Module, state_dict: dict, path: str | os.PathLike) -> None:
    """Load strictly; on mismatch list the missing/unexpected/mis-shaped keys in one line."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(key for key in set(own) & set(state_dict)  # extra states (e.g. a vocabulary) have no shape
                    if hasattr(own[key], "shape") and tuple(own[key].shape) != tuple(getattr(state_dict[key], "shape",
                                                                                             ())))
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''} ({len(keys)})")
        raise CheckpointError(f"{path}: checkpoint does not match the model ({'; '.join(parts)})")
    model.load_state_dict(state_dict, strict=True)
