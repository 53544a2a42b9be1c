"""trainer.loggers (Fabric's CSV / TensorBoard) and the plain progress lines printed off a terminal."""

import csv
import importlib.util
import io
import re

import pytest
from rich.console import Console

from conftest import tiny_config
from medgap.errors import MedgapError
from medgap.training.loggers import TrainingLog
from medgap.training.loop import train
from medgap.training.run_folder import read_jsonl


def csv_rows(run):
    with open(run / "csv" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_logger_holds_the_metrics_rows_once_even_after_resume(tiny_dataset, tmp_path, monkeypatch):
    from medgap.methods import supervised

    run = tmp_path / "run"
    config = tiny_config(tiny_dataset, **{"trainer.loggers": "[csv]", "trainer.max_steps": 4, "trainer.val_every": 2,
                                          "trainer.checkpoint_every": 2})
    original = supervised.Supervised.on_after_optimizer_step

    def crash_at_step_four(self, step):
        if step == 3:
            raise KeyboardInterrupt
        original(self, step)

    monkeypatch.setattr(supervised.Supervised, "on_after_optimizer_step", crash_at_step_four)
    with pytest.raises(KeyboardInterrupt):
        train(config, run)
    assert [int(r["step"]) for r in csv_rows(run) if r["loss"]] == [1, 2, 3]  # step 3 is past last.pt (step 2)
    monkeypatch.setattr(supervised.Supervised, "on_after_optimizer_step", original)
    train(config, run, resume=True)

    rows = csv_rows(run)
    assert [int(r["step"]) for r in rows if r["loss"]] == [1, 2, 3, 4]
    assert [int(r["step"]) for r in rows if r["val_dice"]] == [2, 4]
    jsonl = read_jsonl(run / "metrics.jsonl")
    loss = {r["step"]: r["loss"] for r in jsonl if "loss" in r}
    assert [float(r["loss"]) for r in rows if r["loss"]] == pytest.approx([loss[step] for step in (1, 2, 3, 4)])


def test_tensorboard_logger_gets_the_same_scalars(tiny_dataset, tmp_path):
    """Runs where the tensorboard package is installed (medgap[tensorboard]); skipped otherwise."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset, **{"trainer.loggers": "[tensorboard]", "trainer.max_steps": 2,
                                       "trainer.val_every": 2}), run)
    events = accumulator.EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    jsonl = read_jsonl(run / "metrics.jsonl")
    assert [event.step for event in events.Scalars("loss")] == [1, 2]
    assert [event.value for event in events.Scalars("loss")] == pytest.approx([r["loss"] for r in jsonl if "loss" in r])
    assert [event.step for event in events.Scalars("val_dice")] == [2]


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"),
                    reason="a TensorBoard package is installed")
def test_tensorboard_without_its_package_is_one_line_naming_the_extra(tiny_dataset, tmp_path):
    with pytest.raises(MedgapError, match=r"^trainer.loggers: \[tensorboard\] needs the optional package tensorboard, "
                                          r"not installed: pip install 'medgap\[tensorboard\]'$"):
        train(tiny_config(tiny_dataset, **{"trainer.loggers": "[tensorboard]"}), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


class Config:
    class trainer:  # noqa: N801 (a stand-in for config.trainer)
        max_steps, loggers, progress = 10, [], True


def test_plain_lines_off_a_terminal_carry_step_loss_and_the_last_validation(tmp_path, capsys, monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 40.0, 41.0, 90.0, 100.0, 101.0, 102.0])
    monkeypatch.setattr("medgap.training.loggers.time.perf_counter", lambda: next(clock))
    file = Console(file=io.StringIO())  # not a terminal: no bar
    with TrainingLog(Config, tmp_path, enabled=True, console=file, line_every_s=30.0) as log:  # started at 0
        log.step(1, 0.9)            # t=1: the first line
        log.step(2, 0.8)            # t=2: within 30 s, no line
        log.step(3, 0.7)            # t=40: a line
        log.validation(3, {"dice": 0.61234, "dice_a": 0.5})  # t=41: a line with the score
        log.step(9, 0.5)            # t=90: a line, the score still shown
        log.step(10, 0.4)           # t=100: within 30 s
        log.validation(10, {"dice": 0.7, "dice_a": 0.6})  # t=101: a line; no second one at the end
    with TrainingLog(Config, tmp_path / "other", enabled=True, console=file, start_step=9) as log:  # t=102
        pass  # nothing done: no line
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "train step 1/10  loss 0.9000  elapsed 0:00:01  ETA 0:00:09",
        "train step 3/10  loss 0.7000  elapsed 0:00:40  ETA 0:01:33",
        "train step 3/10  loss 0.7000 · val dice 0.6123 @ 3  elapsed 0:00:41  ETA 0:01:36",
        "train step 9/10  loss 0.5000 · val dice 0.6123 @ 3  elapsed 0:01:30  ETA 0:00:10",
        "train step 10/10  loss 0.4000 · val dice 0.7000 @ 10  elapsed 0:01:41  ETA 0:00:00",
    ]
    assert read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 3, "val_dice": 0.61234, "val_dice_a": 0.5},
                                                      {"step": 10, "val_dice": 0.7, "val_dice_a": 0.6}]
    assert file.file.getvalue() == ""


def test_the_last_step_gets_a_line_at_the_end(tmp_path, capsys, monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 3.0])
    monkeypatch.setattr("medgap.training.loggers.time.perf_counter", lambda: next(clock))
    with TrainingLog(Config, tmp_path, enabled=True, console=Console(file=io.StringIO())) as log:
        log.step(1, 0.9)
        log.step(10, 0.4)  # no validation after it
    assert capsys.readouterr().out.splitlines()[-1] == "train step 10/10  loss 0.4000  elapsed 0:00:03  ETA 0:00:00"


def test_the_bar_shows_the_last_validation_score(tmp_path, capsys):
    terminal = Console(file=io.StringIO(), force_terminal=True, width=200)
    with TrainingLog(Config, tmp_path, enabled=True, console=terminal) as log:
        log.validation(5, {"dice": 0.5})
        log.step(6, 0.25)
        log.bar.refresh()
    assert "loss 0.2500 · val dice 0.5000 @ 5" in re.sub(r"\x1b\[[0-9;]*m", "", terminal.file.getvalue())
    assert capsys.readouterr().out == ""  # no plain lines beside a bar


def test_training_curves_show_a_pretraining_runs_validation_scores():
    """A pretraining run validates retrieval and a negative loss, not Dice: its right panel must not be empty."""
    import matplotlib.pyplot as plt

    from medgap.training.curves import training_curves_figure

    rows = [{"step": 10, "loss": 4.1}, {"step": 20, "loss": 3.9},
            {"step": 20, "val_retrieval_top1": 0.05, "val_neg_contrastive_loss": -4.0},
            {"step": 40, "loss": 3.5}, {"step": 40, "val_retrieval_top1": 0.20, "val_neg_contrastive_loss": -3.2}]
    figure = training_curves_figure(rows)
    left, right = figure.axes
    lines = {line.get_label(): list(line.get_ydata()) for line in right.get_lines()}
    assert lines == {"neg_contrastive_loss": [-4.0, -3.2], "retrieval_top1": [0.05, 0.20]}
    assert right.get_ylim()[0] < -3.2  # a negative loss is not clipped by a [0, 1] axis
    plt.close(figure)

    segmenter = training_curves_figure([{"step": 5, "loss": 1.0}, {"step": 5, "val_dice": 0.4}])
    assert segmenter.axes[1].get_ylim() == (0.0, 1.0)
    plt.close(segmenter)
    assert training_curves_figure([{"step": 1, "lr": 0.01}]) is None
