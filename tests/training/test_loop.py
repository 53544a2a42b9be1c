import pickle

import pytest
import torch

from conftest import tiny_config, train_interrupted_then_resumed
from medgap.errors import CheckpointError, RunFolderError, TrainingError
from medgap.evaluation.evaluate import load_trained_method
from medgap.methods import build_method
from medgap.data.dataset_json import load_dataset_json
from medgap.training.checkpoint import load_checkpoint, load_model_state
from medgap.training.loop import train
from medgap.training.run_folder import read_jsonl


class Interrupt(Exception):
    pass


def final_parameters(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def test_run_folder_contents(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    summary = train(tiny_config(tiny_dataset), run)
    for name in ("config.yaml", "splits.json", "checkpoints/last.pt", "checkpoints/best.pt", "metrics.jsonl",
                 "summary.json", "plots/training_curves.png"):
        assert (run / name).is_file(), name
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in rows if "val_dice" in r] == [3, 6]
    assert summary["steps"] == 6 and summary["environment"]["torch"] == torch.__version__
    assert summary["splits"]["test"] == 2 and summary["splits"]["val"] == 2


def test_resume_after_interruption_matches_uninterrupted_run(tiny_dataset, tmp_path, monkeypatch):
    config = tiny_config(tiny_dataset, **{"model.dropout": 0.2, "data.num_workers": 1})
    train(config, tmp_path / "straight")

    from medgap.methods import supervised

    assert train_interrupted_then_resumed(config, tmp_path / "interrupted", monkeypatch, supervised.Supervised) == 3

    straight, resumed = final_parameters(tmp_path / "straight"), final_parameters(tmp_path / "interrupted")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key  # bit-identical on CPU
    steps = [r["step"] for r in read_jsonl(tmp_path / "interrupted" / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # rows after the checkpoint were rewritten, not duplicated

    # Resuming with another config would not continue the same training: refused, naming the keys.
    changed = tiny_config(tiny_dataset, **{"model.dropout": 0.2, "data.num_workers": 0, "trainer.max_steps": 9})
    with pytest.raises(TrainingError, match=r"config.yaml: --resume with a different config \(trainer.max_steps 6 -> 9\)"):
        train(changed, tmp_path / "interrupted", resume=True)
    assert final_parameters(tmp_path / "interrupted").keys() == straight.keys()  # nothing was touched


def test_max_minutes_stops_with_a_validation_and_a_checkpoint_and_resumes_exactly(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset), tmp_path / "straight")
    run = tmp_path / "capped"
    capped = tiny_config(tiny_dataset, **{"trainer.max_minutes": 1e-9})  # out of time after the first step
    summary = train(capped, run)
    assert (summary["steps"], summary["max_steps"], summary["stopped_by"]) == (1, 6, "max_minutes")
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["step"] == 1 and last["train_seconds"] > 0
    assert load_checkpoint(run / "checkpoints" / "best.pt")["step"] == 1
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "val_dice" in r] == [1]

    with pytest.raises(TrainingError, match=r"last.pt: the run already trained .* min, trainer.max_minutes is 1e-09; "
                                            r"raise it to continue"):
        train(capped, run, resume=True)
    # The cap may change on resume; the seconds already spent count, and the run continues the same training.
    resumed = train(tiny_config(tiny_dataset, **{"trainer.max_minutes": 60}), run, resume=True)
    assert (resumed["steps"], resumed["stopped_by"], resumed["resumed_from_step"]) == (6, None, 1)
    # Both summary figures are rounded to 0.1 s, hence the tolerance.
    spent = last["train_seconds"] + resumed["train_seconds_this_session"]
    assert resumed["train_seconds"] == pytest.approx(spent, abs=0.11)
    straight, continued = final_parameters(tmp_path / "straight"), final_parameters(run)
    for key in straight:
        assert torch.equal(straight[key], continued[key]), key


def test_existing_run_folder_is_refused_unless_resume_or_overwrite(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    config = tiny_config(tiny_dataset, **{"trainer.max_steps": 1, "trainer.val_every": 1})
    train(config, run)
    with pytest.raises(RunFolderError, match="already exists"):
        train(config, run)
    train(config, run, overwrite=True)
    data_folder = tmp_path / "not_a_run"
    data_folder.mkdir()
    (data_folder / "precious.nii.gz").write_bytes(b"x")
    with pytest.raises(RunFolderError, match="not a medgap run folder"):
        train(config, data_folder, overwrite=True)
    assert (data_folder / "precious.nii.gz").exists()
    with pytest.raises(RunFolderError, match="nothing to resume"):
        train(config, tmp_path / "empty", resume=True)


def test_nan_loss_stops_with_the_step_and_keeps_last_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    from medgap.methods import supervised

    original = supervised.Supervised.training_step

    def poisoned(self, batch, step):
        output = original(self, batch, step)
        if step == 4:
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(supervised.Supervised, "training_step", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"step 5: loss is nan .* last good checkpoint kept"):
        train(tiny_config(tiny_dataset), run)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_checkpoints_refuse_pickles_and_other_architectures(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    config = tiny_config(tiny_dataset, **{"trainer.max_steps": 1, "trainer.val_every": 1})
    train(config, run)
    spec = load_dataset_json(tiny_dataset)
    method = load_trained_method(run, config, spec)  # loads fine
    assert not method.training

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": Interrupt()}))
    with pytest.raises(CheckpointError, match="evil.pt: refused: the file holds Python objects"):
        load_checkpoint(evil)

    other = build_method(tiny_config(tiny_dataset, **{"model.features": [8, 16, 32, 64]}), spec)
    state = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    with pytest.raises(CheckpointError, match=r"does not match the model \(missing: net\.decoder.*\(14\)"):
        load_model_state(other, state, "best.pt")
    wider = build_method(tiny_config(tiny_dataset, **{"model.features": [4, 16, 32]}), spec)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model_state(wider, state, "best.pt")
