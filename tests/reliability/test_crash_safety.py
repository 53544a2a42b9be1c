"""Crash safety: a SIGKILL while a checkpoint is being written leaves the previous one loadable, and resuming
after the kill reaches the same weights as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from conftest import tiny_config
from medgap.config import save_config
from medgap.errors import RunFolderError
from medgap.training.checkpoint import load_checkpoint
from medgap.training.loop import train
from medgap.training.run_folder import RunLock

KILLER = textwrap.dedent("""
    import io, sys, time
    from pathlib import Path
    import torch
    import medgap.training.checkpoint as checkpoint
    from medgap.config import load_config
    from medgap.training.loop import train

    real_save, marker = torch.save, Path(sys.argv[3])

    def slow_save(obj, path, *args, **kwargs):
        # The second write of last.pt stops half-way and hangs, so the parent can kill it mid-write.
        if Path(path).name.startswith(".last.pt.") and (Path(path).parent / "last.pt").exists():
            buffer = io.BytesIO()
            real_save(obj, buffer)
            data = buffer.getvalue()
            with open(path, "wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
            marker.write_text("writing")
            time.sleep(120)
        return real_save(obj, path, *args, **kwargs)

    checkpoint.torch.save = slow_save
    train(load_config(sys.argv[1]), sys.argv[2])
""")


@pytest.mark.slow
def test_sigkill_during_checkpoint_write_keeps_previous_checkpoint(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset)
    save_config(config, tmp_path / "config.yaml")
    run, marker = tmp_path / "run", tmp_path / "marker"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "config.yaml"), str(run), str(marker)],
                               cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.time() + 240
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the training subprocess never reached the second checkpoint"
    process.send_signal(signal.SIGKILL)
    process.wait(30)

    state = load_checkpoint(run / "checkpoints" / "last.pt")  # the previous checkpoint, intact
    assert state["step"] == 3
    assert list((run / "checkpoints").glob(".last.pt.*")), "the half-written temporary file should be left over"

    train(config, run, resume=True)  # the stale lock (dead PID) and temporary file do not get in the way
    assert not list((run / "checkpoints").glob(".last.pt.*"))
    train(config, tmp_path / "straight")
    resumed = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["model"]
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_lock_stops_a_second_writer(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, **{"trainer.max_steps": 1, "trainer.val_every": 1})
    run = tmp_path / "run"
    train(config, run)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(str(holder.pid))
        with pytest.raises(RunFolderError, match=f"in use by another run \\(process {holder.pid}"):
            train(config, run, resume=True)
        with pytest.raises(RunFolderError, match="in use by another run"):
            train(config, run, overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    with RunLock(run):
        assert (run / ".lock").read_text() == str(os.getpid())
    assert not (run / ".lock").exists()
