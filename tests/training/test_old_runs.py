"""Run folders written before the method kinds existed (commit 861fdc8) still load, evaluate and resume.

``data/run_861fdc8`` is a supervised run of the old code on ``write_tiny_dataset(cases=6)``, interrupted after
step 2 of 4 (``checkpoints/last.pt`` with optimiser, schedule and RNG state; ``best.pt`` at step 2);
``data/summary_861fdc8.json`` is the summary of the same config trained straight through by the old code.
Made by running the old code with a crash injected in ``on_after_optimizer_step`` at step index 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import write_tiny_dataset
from medgap.config import load_config
from medgap.evaluation.evaluate import evaluate_run, load_run
from medgap.methods.base import SegmentationMethod
from medgap.training.checkpoint import load_checkpoint
from medgap.training.loop import train
from medgap.training.run_folder import read_jsonl

DATA = Path(__file__).parent / "data"


@pytest.fixture()
def old_run(tmp_path) -> Path:
    dataset = write_tiny_dataset(tmp_path / "Dataset001_Tiny", cases=6)  # the data the old run was trained on
    run = tmp_path / "run"
    shutil.copytree(DATA / "run_861fdc8", run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["dataset_dir"] = str(dataset)
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run


def test_old_best_checkpoint_loads_and_scores_what_the_old_code_logged(old_run):
    config, data, method = load_run(old_run, "val", "best")
    assert isinstance(method, SegmentationMethod)
    with torch.inference_mode():
        scores = method.validation_scores(data, config, None, "val")
    logged = next(row for row in read_jsonl(old_run / "metrics.jsonl") if "val_dice" in row)
    assert scores == pytest.approx({key[4:]: value for key, value in logged.items() if key.startswith("val_")},
                                   abs=1e-6)
    assert load_checkpoint(old_run / "checkpoints" / "best.pt")["val_dice"] == pytest.approx(scores["dice"], abs=1e-6)
    result = evaluate_run(old_run, checkpoint="best")
    assert result["cases"] == 1 and Path(result["paths"]["md"]).is_file()


@pytest.fixture()
def one_thread():
    """The fixture's first two steps were computed by the old code on one CPU thread; float sums in convolutions
    depend on the thread count, so the resumed and the straight run must use one thread too to agree bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_old_interrupted_run_resumes_bit_identically_with_the_old_summary_keys(old_run, tmp_path, one_thread):
    config = load_config(old_run / "config.yaml")
    resumed = train(config, old_run, resume=True)
    straight = train(config, tmp_path / "straight")
    old_summary = json.loads((DATA / "summary_861fdc8.json").read_text())

    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == 4
    for summary in (resumed, straight):
        # every old key is still there; added since: the wall-clock stop's fields
        assert set(summary) - set(old_summary) == {"max_steps", "stopped_by", "train_seconds"}
        assert set(old_summary) <= set(summary)
        assert summary["best_val_dice"] == pytest.approx(old_summary["best_val_dice"], abs=1e-6)
        assert summary["best_step"] == old_summary["best_step"]
    final = {name: load_checkpoint(run / "checkpoints" / "last.pt")["model"] for name, run in
             (("resumed", old_run), ("straight", tmp_path / "straight"))}
    assert final["resumed"].keys() == final["straight"].keys()
    for key in final["straight"]:
        assert torch.equal(final["resumed"][key], final["straight"][key]), key  # bit-identical on CPU
