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
    """A marked folder without checkpoints/last.pt (killed while preprocessing) is not a run to protect."""
    run = tmp_path / "run"
    run.mkdir()
    (run / ".medgap_run").write_text("{}")
    (run / "config.yaml").write_text("name: half-made\n")
    config = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"))
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    assert (run / "checkpoints" / "last.pt").is_file()


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
