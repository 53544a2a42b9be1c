"""medgap export: the exported network gives the checkpoint's logits on the same inputs."""

import importlib.util
import json

import pytest
import torch

from conftest import tiny_config
from medgap.cli import main
from medgap.data.dataset_json import load_dataset_json
from medgap.errors import MedgapError
from medgap.evaluation.evaluate import load_run_config, load_trained_method
from medgap.inference.export import export_run
from medgap.training.loop import train


@pytest.fixture(scope="module", params=["supervised", "shaspec"])
def run(request, tiny_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("export") / request.param
    overrides = {"trainer.max_steps": 2, "trainer.val_every": 2, "trainer.checkpoint_every": 2,
                 "method.name": request.param}
    if request.param == "shaspec":
        overrides.update({"data.patch_size": "[16,16]", "model.features": "[4,8]"})  # 2-D slices
    train(tiny_config(tiny_dataset, **overrides), run_dir)
    return run_dir


def reference_logits(run_dir, image, availability, checkpoint="best"):
    config = load_run_config(run_dir)
    method = load_trained_method(run_dir, config, load_dataset_json(config.data.dataset_dir), checkpoint)
    with torch.no_grad():
        return method.predict_logits(image, availability)


def inputs_like(meta, seed):
    image = torch.randn(*meta["inputs"]["image"], generator=torch.Generator().manual_seed(seed))
    availability = torch.ones(*meta["inputs"]["availability"], dtype=torch.bool)
    availability[:, 1] = seed % 2 == 0  # also the missing-modality path (ShaSpec)
    return image * availability[:, :, None, None, *([None] * (image.ndim - 4))], availability


def test_torchscript_export_matches_the_checkpoint(run, capsys):
    assert main(["export", str(run), "--format", "torchscript", "--checkpoint", "last"]) == 0
    path = run / "export" / "last.ts.pt"
    assert f"wrote {path}" in capsys.readouterr().out
    meta = json.loads((run / "export" / "export.json").read_text())
    assert meta["format"] == "torchscript" and meta["channel_names"] == ["A", "B"] and meta["outputs"] == ["outer", "core"]
    exported = torch.jit.load(str(path))
    for seed in (1, 2):
        image, availability = inputs_like(meta, seed)
        expected = reference_logits(run, image, availability, "last")
        assert expected.shape[:2] == (1, 3) and expected.shape[2:] == image.shape[2:]
        torch.testing.assert_close(exported(image, availability), expected, rtol=1e-4, atol=1e-5)


def test_torch_export_program_matches_the_checkpoint(run):
    path = export_run(run, "pt2")
    meta = json.loads((path.parent / "export.json").read_text())
    exported = torch.export.load(str(path)).module()
    image, availability = inputs_like(meta, 3)
    torch.testing.assert_close(exported(image, availability), reference_logits(run, image, availability),
                               rtol=1e-4, atol=1e-5)


def test_onnx_export_matches_the_checkpoint(run):
    """Runs where onnx, onnxscript and onnxruntime are installed (medgap[onnx] + onnxruntime); skipped otherwise."""
    for package in ("onnx", "onnxscript"):
        pytest.importorskip(package)
    onnxruntime = pytest.importorskip("onnxruntime")
    path = export_run(run, "onnx")
    meta = json.loads((path.parent / "export.json").read_text())
    session = onnxruntime.InferenceSession(str(path))
    for seed in (1, 2):
        image, availability = inputs_like(meta, seed)
        feeds = {"image": image.numpy(), "availability": availability.numpy()}
        (logits,) = session.run(None, {item.name: feeds[item.name] for item in session.get_inputs()})
        torch.testing.assert_close(torch.from_numpy(logits), reference_logits(run, image, availability),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(bool(importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxscript")),
                    reason="the ONNX packages are installed")
def test_onnx_without_its_packages_is_one_line_naming_the_extra(run, capsys):
    assert main(["export", str(run), "--format", "onnx"]) == 2
    assert capsys.readouterr().err == ("error: medgap export --format onnx needs the optional package onnx, not "
                                       "installed: pip install 'medgap[onnx]'\n")


def test_a_folder_without_a_run_is_one_line(tmp_path):
    with pytest.raises(MedgapError, match="not a run folder"):
        export_run(tmp_path, "torchscript")


def test_an_exporter_failure_is_one_line(run, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Could not guard on data-dependent expression\nlong details")

    monkeypatch.setattr(torch.export, "export", refuse)
    with pytest.raises(MedgapError, match=r"could not be exported as pt2 \(RuntimeError: Could not guard on "
                                          r"data-dependent expression\)$"):
        export_run(run, "pt2", out=run / "failed.pt2")
    assert not (run / "failed.pt2").exists()
