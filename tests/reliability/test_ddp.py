"""Scale-out through Lightning Fabric: 2 CPU processes (gloo DDP) match one process with the doubled batch."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from medgap.training.checkpoint import load_checkpoint
from medgap.training.run_folder import read_jsonl


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_train(dataset, run_dir, batch, *extra, expect_code=0):
    # A clean environment: nothing from the test runner's process (threads, ranks) leaks into the launch.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONPATH": os.getcwd(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1"}
    overrides = [f"data.dataset_dir={dataset}", "data.patch_size=[16,16,16]", f"data.labelled_batch_size={batch}",
                 "data.num_workers=0", "model.features=[8,16,32]", "trainer.max_steps=4", "trainer.val_every=4",
                 "trainer.checkpoint_every=4", "trainer.log_every=1", "trainer.progress=false",
                 # CE only: its batch mean splits exactly over ranks (batch Dice does not)
                 "method.dice_weight=0.0", "optim.grad_clip=null",
                 # SGD: Adam's m/sqrt(v) turns float-summation noise in near-zero gradients into lr-sized steps
                 "optim.name=sgd", "optim.lr=0.05", "optim.momentum=0.9"]
    config = run_dir.parent / f"{run_dir.name}.yaml"
    config.write_text("method: {name: supervised}\n")
    result = subprocess.run([sys.executable, "-m", "medgap.cli", "train", str(config), *overrides, "--run-dir", str(run_dir),
                             "--accelerator", "cpu", *extra], env=env, capture_output=True, text=True, timeout=600,
                            cwd=os.getcwd())
    assert result.returncode == expect_code, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_process_ddp_equals_single_process_with_doubled_batch(tiny_dataset, tmp_path):
    run_train(tiny_dataset, tmp_path / "single", 4)
    run_train(tiny_dataset, tmp_path / "ddp", 2, "--devices", "2", "--strategy", "ddp")
    single = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")["model"]
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["model"]
    for key in single:
        if single[key].is_floating_point():
            torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
    # Only rank 0 wrote the run folder: one log row per step, one summary that knows both ranks.
    steps = [row["step"] for row in read_jsonl(tmp_path / "ddp" / "metrics.jsonl") if "loss" in row]
    assert steps == [1, 2, 3, 4]
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["world_size"] == 2
    assert not (tmp_path / "ddp" / ".lock").exists()


@pytest.mark.slow
def test_a_refused_run_folder_stops_every_rank_with_a_clear_error(tiny_dataset, tmp_path):
    """Rank 0 refuses an existing run folder; rank 1 must not wait at a barrier for ever (timeout = hang)."""
    run_dir = tmp_path / "taken"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("someone else's folder")
    result = run_train(tiny_dataset, run_dir, 2, "--devices", "2", "--strategy", "ddp", expect_code=2)
    assert "run folder already exists" in result.stderr
    assert "rank 1: stopped because rank 0 failed" in result.stderr  # rank 1 learns why, rather than timing out
    assert (run_dir / "notes.txt").read_text() == "someone else's folder" and len(list(run_dir.iterdir())) == 1
