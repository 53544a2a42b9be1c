"""Reliability and security, round two (issue 21): what an attacker or an unlucky user tried, one test each.

Rows that fit the bad-input tables (corrupt a dataset copy → exit 2, one line, nothing changed) live in
``test_bad_inputs.py``; this file holds the attacks that need their own set-up (run folders, caches, checkpoints,
umask, processes).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from medgap.cli import main
from test_bad_inputs import (assert_refused, snapshot, synthetic, trained_run,  # noqa: F401  (fixtures)
                             write_config)


# ------------------------------------------------------------------------------------------ 1: --overwrite
def project_folder(root: Path) -> Path:
    """A folder that looks like a run by its names (config.yaml, metrics.jsonl, checkpoints/) but is someone's work."""
    for relative, text in {"config.yaml": "thesis: true\n", "metrics.jsonl": "{}\n", "checkpoints/notes.txt": "x",
                           "notes/thesis.tex": "\\chapter{Results}", "src/main.py": "print('hi')\n"}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_overwrite_refuses_a_folder_medgap_did_not_mark(synthetic, tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"))
    project = project_folder(tmp_path / "project")
    assert_refused(["train", config, "--run-dir", project, "--overwrite"], [project],
                   r"project: refusing to overwrite a folder that is not a medgap run folder \(no \.medgap_run marker\)",
                   capsys)


def test_overwrite_of_a_marked_run_removes_only_medgaps_files(synthetic, tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"))
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    assert (run / ".medgap_run").is_file() and (run / "checkpoints" / "last.pt").is_file()
    (run / "my_notes.txt").write_text("keep me")
    (run / "checkpoints" / "mine.txt").write_text("inside a medgap folder: medgap's own, removed with it")
    assert main(["train", str(config), "--run-dir", str(run), "--overwrite"]) == 0
    assert (run / "my_notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def legacy_run(synthetic, tmp_path: Path) -> tuple[Path, Path]:
    """A run as an older medgap wrote it: the usual layout without the marker."""
    config = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"))
    run = tmp_path / "old_run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    (run / ".medgap_run").unlink()
    return config, run


def test_a_legacy_run_is_not_cleared_by_overwrite_but_still_resumes(synthetic, tmp_path, capsys):
    config, run = legacy_run(synthetic, tmp_path)
    assert_refused(["train", config, "--run-dir", run, "--overwrite"], [run],
                   r"old_run: a run of an older medgap \(no \.medgap_run marker\), which --overwrite does not delete; "
                   r"--resume it, remove it yourself \(rm -r .*old_run\)", capsys)
    assert main(["train", str(config), "--run-dir", str(run), "--resume", "trainer.max_steps=2"]) == 2  # other config
    capsys.readouterr()
    assert main(["train", str(run / "config.yaml"), "--run-dir", str(run), "--resume"]) == 0
    assert (run / ".medgap_run").is_file()  # resumed by this medgap: marked from now on


# ------------------------------------------------------------------------------------------ issue 20 item 14
def test_a_failed_train_leaves_no_run_folder_and_the_corrected_rerun_works(synthetic, tmp_path, capsys):
    run = tmp_path / "runs" / "run"
    wrong = write_config(tmp_path / "tiny.yaml", tmp_path / "no_such_dataset")
    assert_refused(["train", wrong, "--run-dir", run], [tmp_path / "runs"] if (tmp_path / "runs").exists() else [],
                   r"no_such_dataset: dataset folder not found", capsys)
    assert not run.exists()
    right = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"))
    assert main(["train", str(right), "--run-dir", str(run)]) == 0


def test_a_run_killed_before_its_first_checkpoint_starts_again(synthetic, tmp_path):
    """A marked folder without checkpoints, log or summary (killed while preprocessing) is not a run to protect;
    one whose checkpoints were deleted to save space still is."""
    run = tmp_path / "run"
    run.mkdir()
    (run / ".medgap_run").write_text("{}")
    (run / "config.yaml").write_text("name: half-made\n")
    config = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"))
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    assert (run / "checkpoints" / "last.pt").is_file()
    shutil.rmtree(run / "checkpoints")
    assert main(["train", str(config), "--run-dir", str(run)]) == 2


# ------------------------------------------------------------------------------------------ 3: cache names
def test_cache_entries_of_case_ids_that_extend_each_other_do_not_collide(synthetic, tmp_path):
    """``Atrium_000`` and ``Atrium_000_seg``: the first one's label cache used to hold the second one's image."""
    from medgap.data.cases import discover_cases, load_case
    from medgap.data.dataset_json import load_dataset_json
    from medgap.data.preprocess import label_to_index, preprocess_cases

    root = Path(shutil.copytree(synthetic("atrium-3d"), tmp_path / "data"))
    (root / "imagesTr" / "Atrium_001_0000.nii.gz").rename(root / "imagesTr" / "Atrium_000_seg_0000.nii.gz")
    (root / "labelsTr" / "Atrium_001.nii.gz").rename(root / "labelsTr" / "Atrium_000_seg.nii.gz")
    spec = load_dataset_json(root)
    cases = discover_cases(root, spec)
    for _ in range(2):  # the second pass reads the cache back (fingerprints valid)
        handles = preprocess_cases(cases, spec, tmp_path / "cache", normalisation="none")
        for case, handle in zip(cases, handles):
            data = load_case(case, spec)
            np.testing.assert_array_equal(handle.image(), data.image)
            np.testing.assert_array_equal(handle.label(), label_to_index(data.label, spec))


def test_a_cache_of_the_old_layout_is_recomputed_not_read(synthetic, tmp_path):
    from medgap.data.cases import discover_cases
    from medgap.data.dataset_json import load_dataset_json
    from medgap.data.preprocess import preprocess_cases

    root = synthetic("atrium-3d")
    spec = load_dataset_json(root)
    cases = discover_cases(root, spec)
    cache = tmp_path / "cache"
    cache.mkdir()
    for case in cases:  # version-1 entries, garbage inside: must not be used
        np.save(cache / f"{case.case_id}.npy", np.full((1, 2, 2, 2), 7.0, np.float32))
        (cache / f"{case.case_id}.json").write_text(json.dumps({"fingerprint": "x", "labelled": True}))
    handles = preprocess_cases(cases, spec, cache)
    assert all(h.image().shape == (1, 16, 16, 16) for h in handles)


# ------------------------------------------------------------------------------------------ 5, 14: predict outputs
def test_predict_refuses_to_replace_files_of_another_folder(trained_run, synthetic, tmp_path, capsys):
    """Ground truth of another dataset, same case names: refused (nothing written) unless --overwrite."""
    inputs = synthetic("atrium-3d") / "imagesTr"
    others = Path(shutil.copytree(synthetic("atrium-3d") / "labelsTr", tmp_path / "other_labels"))
    (others / "unrelated.txt").write_text("x")
    assert_refused(["predict", trained_run, inputs, others], [others],
                   r"other_labels/Atrium_000\.nii\.gz: prediction would replace an existing file \(3 in .*other_labels\); "
                   r"use --overwrite", capsys)
    before = snapshot(others)
    assert main(["predict", str(trained_run), str(inputs), str(others), "--overwrite"]) == 0
    after = snapshot(others)
    assert after["other_labels/unrelated.txt"] == before["other_labels/unrelated.txt"]
    assert after["other_labels/Atrium_000.nii.gz"] != before["other_labels/Atrium_000.nii.gz"]


def test_predict_removes_temporaries_a_killed_prediction_left(trained_run, synthetic, tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    stale = out / ".Atrium_001.nii.gz.k2j4h1.tmp.nii.gz"  # atomic_path's name; the rename never happened
    stale.write_bytes(b"")
    (out / ".notes.tmp.nii.gz").write_bytes(b"mine")  # not one of the targets' temporaries: kept
    assert main(["predict", str(trained_run), str(synthetic("atrium-3d") / "imagesTr"), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".notes.tmp.nii.gz", "Atrium_000.nii.gz", "Atrium_001.nii.gz",
                                                     "Atrium_002.nii.gz"]


# ------------------------------------------------------------------------------------------ 13: crafted checkpoints
class Payload:
    """Unpickling this would run a command: it must be refused, never executed."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def save_as(relative: str, make):
    def craft(run: Path):
        import torch

        torch.save(make(run), run / relative)
    return craft


def load_from(relative: str):
    def read(run: Path):
        import torch

        return torch.load(run / relative, weights_only=True)
    return read


# (id, what is done to a copy of a trained run, command (run folder → argv), stderr pattern)
CHECKPOINT_ROWS = [
    ("tensor-instead-of-state-dict", save_as("checkpoints/best.pt", lambda run: __import__("torch").zeros(3)),
     lambda run: ["evaluate", run], r"checkpoints/best\.pt: not a medgap checkpoint \(found a Tensor\)"),
    ("model-is-a-tensor", save_as("checkpoints/best.pt", lambda run: {"model": __import__("torch").zeros(3)}),
     lambda run: ["evaluate", run], r"best\.pt: not a medgap checkpoint \(found a dict without a 'model' state dict"),
    ("model-values-not-tensors", save_as("checkpoints/best.pt", lambda run: {"model": {"encoder.w": "text"}}),
     lambda run: ["predict", run, run.parent / "in", run.parent / "out"],
     r"best\.pt: checkpoint does not match the model \(missing: .*unexpected: encoder\.w \(1\)"),
    ("pickle-payload", save_as("checkpoints/best.pt", lambda run: {"model": Payload()}),
     lambda run: ["evaluate", run], r"best\.pt: refused: the file holds Python objects \(posix\.system\), not only "
     r"tensors and plain values; medgap loads state dicts only$"),
    ("pickle-payload-resume", save_as("checkpoints/last.pt", lambda run: {"model": Payload()}),
     lambda run: ["train", run / "config.yaml", "--run-dir", run, "--resume"], r"last\.pt: refused: the file holds"),
    ("truncated", lambda run: (run / "checkpoints/best.pt").write_bytes((run / "checkpoints/best.pt").read_bytes()[:99]),
     lambda run: ["evaluate", run], r"best\.pt: not a readable checkpoint \(truncated, or not written by torch\.save"),
    ("best-copied-over-last", lambda run: shutil.copy(run / "checkpoints/best.pt", run / "checkpoints/last.pt"),
     lambda run: ["train", run / "config.yaml", "--run-dir", run, "--resume"],
     r"last\.pt: cannot resume from it: it has no optimizer, scheduler, best, rng \(weights only, like best\.pt\)"),
]


@pytest.mark.parametrize("craft, command, pattern", [row[1:] for row in CHECKPOINT_ROWS],
                         ids=[row[0] for row in CHECKPOINT_ROWS])
def test_crafted_checkpoints_are_refused_with_one_line(craft, command, pattern, trained_run, synthetic, tmp_path,
                                                       capsys, monkeypatch):
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    shutil.copytree(synthetic("atrium-3d") / "imagesTr", tmp_path / "in")
    craft(run)
    monkeypatch.chdir(tmp_path)
    line = assert_refused(command(run), [run], pattern, capsys)
    assert "weights_only" not in line and not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------------------------ 14: disk full
def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous_checkpoint(synthetic, tmp_path, capsys,
                                                                                        monkeypatch):
    import errno

    import torch

    from medgap.training.checkpoint import load_checkpoint

    real_save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        path = Path(path)
        if path.name.startswith(".last.pt.") and (path.parent / "last.pt").exists():
            path.write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    config = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"), {"trainer": {"max_steps": 2}})
    run = tmp_path / "run"
    assert_refused(["train", config, "--run-dir", run], [], r"run/checkpoints/last\.pt: could not write the checkpoint "
                   r"\(No space left on device\); the previous checkpoint is kept$", capsys)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]  # no temporary left


# ------------------------------------------------------------------------------------------ 6: many labels
def test_three_hundred_labels_survive_the_cache(synthetic, tmp_path):
    """int8 label indices crashed above 128 labels and would mislabel above 256."""
    import nibabel as nib

    from medgap.data.cases import discover_cases
    from medgap.data.dataset_json import load_dataset_json
    from medgap.data.preprocess import index_to_label, preprocess_cases

    root = Path(shutil.copytree(synthetic("atrium-3d"), tmp_path / "data"))
    raw = json.loads((root / "dataset.json").read_text())
    raw["labels"] = {"background": 0, **{f"structure_{v}": v for v in range(1, 300)}}
    (root / "dataset.json").write_text(json.dumps(raw))
    path = root / "labelsTr" / "Atrium_000.nii.gz"
    image = nib.load(path)
    label = np.asarray(image.dataobj).astype(np.int16)
    label[0, 0, :3] = [299, 200, 130]
    nib.save(nib.Nifti1Image(label, image.affine), path)
    spec = load_dataset_json(root)
    handle = preprocess_cases(discover_cases(root, spec), spec, tmp_path / "cache")[0]
    np.testing.assert_array_equal(index_to_label(np.asarray(handle.label()), spec), label)


# ------------------------------------------------------------------------------------------ 7: umask
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(umask, mode, tmp_path):
    from medgap.atomic import write_text

    previous = os.umask(umask)
    try:
        write_text(tmp_path / "shared.txt", "for the lab")
        (tmp_path / "plain.txt").write_text("the reference: an ordinary open()")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == mode == (tmp_path / "plain.txt").stat().st_mode & 0o777


# ------------------------------------------------------------------------------------------ 8: 1-bit PNG
def test_one_bit_png_images_and_masks_are_read_as_0_and_1(synthetic, tmp_path, capsys):
    from PIL import Image

    from medgap.data.io import read_image, read_label

    root = Path(shutil.copytree(synthetic("chest-xray-text"), tmp_path / "data"))
    for relative in ("imagesTr/CXR_000_0000.png", "labelsTr/CXR_000.png"):
        path = root / relative
        bits = np.asarray(Image.open(path)) > 0
        Image.fromarray(bits).convert("1").save(path)
        assert Image.open(path).mode == "1"
        np.testing.assert_array_equal(read_image(path)[0], bits.astype(np.float32))
    np.testing.assert_array_equal(read_label(root / "labelsTr/CXR_000.png")[0], bits.astype(np.int16))
    assert main(["verify", str(root)]) == 0, capsys.readouterr().err


# ------------------------------------------------------------------------------------------ 10: h5 inputs
def h5_dataset(root: Path) -> Path:
    """Two 2-D cases in h5 files (``image`` / ``label`` datasets), as the LA/ACDC releases store them."""
    import h5py

    from medgap.data.dataset_json import write_dataset_json

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for case in ("Case_000", "Case_001"):
        with h5py.File(root / "imagesTr" / f"{case}_0000.h5", "w") as handle:
            handle["image"] = rng.normal(size=(8, 8)).astype(np.float32)
        with h5py.File(root / "labelsTr" / f"{case}.h5", "w") as handle:
            handle["label"] = (rng.random((8, 8)) > 0.5).astype(np.uint8)
    write_dataset_json(root, {"name": "H5", "channel_names": {"0": "MRI"}, "labels": {"background": 0, "atrium": 1},
                              "file_ending": ".h5", "numTraining": 2})
    return root


def rewrite_h5(make):
    """Replace Case_000's image file by one ``make(handle, folder)`` fills."""
    def corrupt(root: Path):
        import h5py

        path = root / "imagesTr" / "Case_000_0000.h5"
        path.unlink()
        with h5py.File(path, "w") as handle:
            make(handle, root)
    return corrupt


def _external_raw(handle, root):
    secret = root.parent / "secret.bin"
    secret.write_bytes(np.arange(64, dtype=np.float32).tobytes())
    handle.create_dataset("image", shape=(8, 8), dtype=np.float32, external=[(str(secret), 0, 256)])


def _external_link(handle, root):
    import h5py

    with h5py.File(root.parent / "elsewhere.h5", "w") as other:
        other["image"] = np.ones((8, 8), np.float32)
    handle["image"] = h5py.ExternalLink(str(root.parent / "elsewhere.h5"), "image")


H5_ROWS = [
    ("0-d-image", rewrite_h5(lambda h, root: h.create_dataset("image", data=np.float32(1.0))),
     r"Case_000_0000\.h5: expected a 2-D or 3-D 'image' array, got shape \(\)"),
    ("1-d-image", rewrite_h5(lambda h, root: h.create_dataset("image", data=np.zeros(8, np.float32))),
     r"Case_000_0000\.h5: expected a 2-D or 3-D 'image' array, got shape \(8,\)"),
    ("4-d-image", rewrite_h5(lambda h, root: h.create_dataset("image", data=np.zeros((2, 8, 8, 2), np.float32))),
     r"Case_000_0000\.h5: expected a 2-D or 3-D 'image' array, got shape \(2, 8, 8, 2\)"),
    ("external-raw-storage", rewrite_h5(_external_raw),
     r"Case_000_0000\.h5: 'image' is stored outside the file \(.*secret\.bin\); only data stored in the file itself"),
    ("external-link", rewrite_h5(_external_link),
     r"Case_000_0000\.h5: 'image' is a link \(ExternalLink\); only data stored in the file itself is read"),
    ("group-instead-of-array", rewrite_h5(lambda h, root: h.create_group("image")),
     r"Case_000_0000\.h5: 'image' is a group, not an array"),
]


def test_the_h5_control_dataset_passes_verify(tmp_path, capsys):
    assert main(["verify", str(h5_dataset(tmp_path / "h5"))]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("corrupt, pattern", [row[1:] for row in H5_ROWS], ids=[row[0] for row in H5_ROWS])
def test_verify_refuses_bad_h5_with_one_line(corrupt, pattern, tmp_path, capsys):
    root = h5_dataset(tmp_path / "h5")
    corrupt(root)
    assert_refused(["verify", root], [root], pattern, capsys)


# ------------------------------------------------------------------------------------------ 11: relative dataset_dir
def test_a_relative_dataset_dir_is_stored_absolute_with_where_it_came_from(synthetic, tmp_path, monkeypatch, capsys):
    import yaml

    project = tmp_path / "project"
    shutil.copytree(synthetic("atrium-3d"), project / "data" / "atrium")
    monkeypatch.chdir(project)
    config = write_config(project / "tiny.yaml", Path("data/atrium"))
    assert main(["train", str(config), "--run-dir", "runs/run"]) == 0
    run = project / "runs" / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["dataset_dir"] == str((project / "data" / "atrium").resolve())
    marker = json.loads((run / ".medgap_run").read_text())
    assert (marker["dataset_dir_as_given"], marker["working_directory"]) == ("data/atrium", str(project))
    elsewhere = tmp_path / "elsewhere"  # the same relative path here holds another dataset: it must not be used
    shutil.copytree(synthetic("brain-tumour"), elsewhere / "data" / "atrium")
    monkeypatch.chdir(elsewhere)
    assert main(["predict", str(run), str(project / "data" / "atrium" / "imagesTr"), "pred"]) == 0
    assert len(list((elsewhere / "pred").glob("Atrium_*.nii.gz"))) == 3
    assert main(["train", str(config), "--run-dir", str(run), "--resume", "trainer.max_steps=1"]) == 2  # relative
    assert "--resume with a different config (data.dataset_dir" in capsys.readouterr().err  # ... to another dataset


# ------------------------------------------------------------------------------------------ 12: huge finite voxels
@pytest.mark.parametrize("scheme", ["zscore_nonzero", "zscore", "minmax"])
def test_normalising_voxels_near_the_float32_limit_stays_finite(scheme):
    """Finite float32 voxels near 3e38 overflowed float32 sums (mean → inf) and the loss became NaN."""
    from medgap.data.transforms import normalise

    values = np.array([[3.0e38, -3.0e38, 2.5e38, 1.0, 0.0, -1.0e38]], np.float32)
    out = normalise(values, np.array([True]), scheme)
    assert np.isfinite(out).all()
    reference = values[0].astype(np.float64)
    mask = reference != 0 if scheme == "zscore_nonzero" else np.ones(reference.shape, bool)
    if scheme == "minmax":
        expected = (reference - reference.min()) / (reference.max() - reference.min())
    else:
        expected = np.where(mask, (reference - reference[mask].mean()) / reference[mask].std(), 0.0)
    np.testing.assert_allclose(out[0], expected, rtol=1e-6, atol=1e-7)


def test_training_on_voxels_near_the_float32_limit_works(synthetic, tmp_path, capsys):
    from medgap.data.io import read_image, write_nifti

    root = Path(shutil.copytree(synthetic("atrium-3d"), tmp_path / "data"))
    for path in (root / "imagesTr").glob("*.nii.gz"):
        image, geometry = read_image(path)
        write_nifti(path, (image / np.abs(image).max() * 3.0e38).astype(np.float32), geometry.affine)
    assert main(["verify", str(root)]) == 0
    config = write_config(tmp_path / "tiny.yaml", root)
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0, capsys.readouterr().err


# ------------------------------------------------------------------------------------------ 15: no validation; workers
def test_a_run_without_validation_cases_can_be_evaluated(synthetic, tmp_path, capsys):
    """best.pt used to be written only when a validation score improved: never, without validation cases."""
    config = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"),
                          {"data": {"val_fraction": 0.0, "test_fraction": 0.34}})
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    assert "no validation cases" in capsys.readouterr().out
    import torch

    best, last = (torch.load(run / "checkpoints" / f"{n}.pt", weights_only=True)["model"] for n in ("best", "last"))
    assert best.keys() == last.keys() and all(torch.equal(best[k], last[k]) for k in best)  # the final weights
    assert main(["evaluate", str(run)]) == 0


ORPHAN = """
import os, sys, time
from medgap.reproduce.runner import exit_with_parent
exit_with_parent(kernel_signal=sys.argv[2] == "kernel", interval=0.2)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(120)
"""
PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]])
time.sleep(120)
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"  # zombie: exited
    except FileNotFoundError:
        return True


@pytest.mark.slow  # two interpreters importing medgap (seconds)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("layer", ["kernel", "polling"])
def test_reproduce_workers_exit_when_their_parent_is_killed(layer, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, ORPHAN, str(pid_file), layer],
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.time() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and parent.poll() is None, "the worker never started"
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    assert not _gone(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.time() + 10
    while not _gone(worker) and time.time() < deadline:
        time.sleep(0.1)
    if not _gone(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent")


def test_reproduce_worker_entry_watches_its_parent(monkeypatch):
    import medgap.reproduce as reproduce
    import medgap.reproduce.runner as runner

    calls = []
    monkeypatch.setattr(runner, "exit_with_parent", lambda: calls.append("watch"))
    monkeypatch.setattr(reproduce, "run_one", lambda *a, **k: calls.append("run"))
    reproduce._worker_main(["shaspec", "x", "--budget", "tiny", "--seeds", "1", "--work-dir", "w"])
    assert calls == ["watch", "run"]
