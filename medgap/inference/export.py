"""Export a trained run's network for use without medgap: TorchScript (``torch.jit.trace``), a ``torch.export``
program (``.pt2``) or ONNX (needs the ``onnx`` extra).

The exported module is the method's ``predict_logits``: ``forward(image (B, C, *P) float32, availability (B, C)
bool) -> logits (B, K, *P)`` (segmentation) or ``(B, K)`` (classification), traced at the run's inference patch
``P`` (``inference.patch_size``, else ``data.patch_size``). What stays outside, as in ``medgap predict``: intensity
normalisation (``data.normalisation``), the sliding window over a whole image, and the mapping of ``K`` outputs to
labels (softmax argmax, or sigmoid per region); ``export.json`` beside the model records them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from medgap.atomic import atomic_path, write_json
from medgap.errors import MedgapError
from medgap.optional import require

FORMATS = {"torchscript": ".ts.pt", "pt2": ".pt2", "onnx": ".onnx"}


class ExportedLogits(nn.Module):
    """``forward(image, availability) -> logits``: the method's inference entry point as a plain module."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self.method.predict_logits(image, availability)


def example_inputs(config, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``image (1, C, *P)`` and an all-present ``availability (1, C)`` at the size the model runs on."""
    from medgap.inference.predict import inference_patch

    size = config.data.patch_size if spec.task == "classification" else inference_patch(config)
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(1, spec.num_channels, *size, generator=generator),
            torch.ones(1, spec.num_channels, dtype=torch.bool))


def export_run(run_dir: str | os.PathLike, fmt: str, *, checkpoint: str = "best",
               out: str | os.PathLike | None = None) -> Path:
    """Export ``run_dir/checkpoints/<checkpoint>.pt`` as ``fmt`` (see :data:`FORMATS`) to ``out`` (default
    ``run_dir/export/<checkpoint><suffix>``), with ``export.json`` beside it; returns the model's path."""
    from medgap.data.dataset_json import load_dataset_json
    from medgap.evaluation.evaluate import load_run_config, load_trained_method

    if fmt not in FORMATS:
        raise MedgapError(f"export format {fmt!r} unknown (choose from {', '.join(FORMATS)})")
    if fmt == "onnx":  # before any work: the message says what to install
        require("onnx", "medgap export --format onnx")
        require("onnxscript", "medgap export --format onnx")
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    spec = load_dataset_json(config.data.dataset_dir)
    module = ExportedLogits(load_trained_method(run_dir, config, spec, checkpoint)).eval()
    inputs = example_inputs(config, spec)
    path = Path(out) if out is not None else run_dir / "export" / f"{checkpoint}{FORMATS[fmt]}"
    with torch.no_grad(), warnings.catch_warnings(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer notes: the test checks outputs
        try:
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(module, inputs), str(tmp))
            elif fmt == "pt2":
                torch.export.save(torch.export.export(module, inputs), str(tmp))
            else:
                torch.onnx.export(module, inputs, str(tmp), input_names=["image", "availability"],
                                  output_names=["logits"], dynamo=True, verbose=False)
        except MedgapError:
            raise
        except Exception as error:  # tracer/exporter limits depend on the model (data-dependent control flow, ops)
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise MedgapError(f"{run_dir}: {config.method.name} could not be exported as {fmt} "
                              f"({type(error).__name__}: {first})") from None
    write_json(path.parent / "export.json", {
        "model": path.name, "format": fmt, "run_dir": str(run_dir), "checkpoint": checkpoint,
        "method": config.method.name, "inputs": {"image": list(inputs[0].shape), "availability": list(inputs[1].shape)},
        "channel_names": list(spec.channel_names), "normalisation": config.data.normalisation,
        "task": spec.task, "output": getattr(module.method, "output", "softmax"),
        "outputs": list(spec.classes) if spec.task == "classification" else list(spec.output_names),
    })
    return path
