import json

import pytest

from conftest import write_tiny_dataset
from medgap.cli import main


def test_verify_summarises_availability_and_reports_every_problem(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "ds", cases=5, shape=(12, 12, 12), unlabelled=(4,), missing={1: (1,), 2: (0,)})
    assert main(["verify", str(root)]) == 0
    out = capsys.readouterr().out
    assert "5 cases, 4 labelled, 1 unlabelled" in out
    lines = out.splitlines()
    assert "  ●  ●  3" in lines and "  ●  ○  1" in lines and "  ○  ●  1" in lines
    assert "per modality: A 4/5, B 4/5" in out
    assert "no problems found" in out
    data = (root / "imagesTr" / "case_003_0000.nii.gz").read_bytes()
    (root / "imagesTr" / "case_003_0000.nii.gz").write_bytes(data[:100])
    raw = json.loads((root / "dataset.json").read_text())
    raw["numTraining"] = 7
    (root / "dataset.json").write_text(json.dumps(raw))
    assert main(["verify", str(root)]) == 2
    out, err = capsys.readouterr()
    assert "2 problem(s); the first is the error line below, the others:" in out and "case_003_0000.nii.gz" in out
    assert "numTraining is 7 but imagesTr has 5 cases (and 1 more problem(s), listed above)" in err


@pytest.mark.slow
def test_cli_train_evaluate_predict_end_to_end(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "tiny.yaml"
    config.write_text(f"data: {{dataset_dir: {tiny_dataset}, patch_size: [16, 16, 16], num_workers: 0}}\n"
                      "model: {features: [8, 16, 32]}\ntrainer: {max_steps: 40, val_every: 20, progress: false}\n"
                      "optim: {lr: 0.01}\n")
    assert main(["train", str(config), "--run-dir", str(run), "trainer.log_every=5"]) == 0
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "| outer |" in out and "| core |" in out
    results = json.loads((run / "results.json").read_text())
    dice = {row["structure"]: row["dice"] for row in results["aggregated"]}
    assert dice["outer"] > 0.5  # 40 steps are enough to find the sphere
    assert (run / "plots" / "overlay.png").is_file() and (run / "per_case.csv").is_file()
    assert results["empty_penalty"] is None and "none (NaN, counted apart)" in (run / "results.md").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["evaluation"]["per_structure"]["outer"]["dice"] == pytest.approx(dice["outer"])
    assert main(["predict", str(run), str(tiny_dataset / "imagesTr"), str(tmp_path / "pred")]) == 0
    assert len(list((tmp_path / "pred").glob("*.nii.gz"))) == 10
    assert main(["train", str(config), "--run-dir", str(run)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_verify_names_regions_and_prints_each_problem_once(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "ds", cases=3, shape=(12, 12, 12), regions=True)
    assert main(["verify", str(root)]) == 0
    out = capsys.readouterr().out
    assert "label values (cases containing each): 0=3, 1=3, 2=3" in out and "label_1" not in out
    assert "regions (cases containing each): whole=3, core=3" in out
    raw = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**raw, "numTraining": 9}))
    assert main(["verify", str(root)]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"error: {root / 'dataset.json'}: numTraining is 9 but imagesTr has 3 cases"
    assert "numTraining" not in out and "1 problem(s); the first is the error line below" in out


def test_verify_refuses_genetics_whose_ids_match_no_case(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "ds", cases=3, shape=(12, 12, 12))
    (root / "genetics").mkdir()
    (root / "genetics" / "pgs.csv").write_text("individual_id,s1\nUKB1001,0.5\nUKB1002,1.5\n")
    (root / "genetics" / "burden.csv").write_text("individual_id,g1\ncase_000,1\nUKB1002,2\n")
    assert main(["verify", str(root)]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == (f"error: {root / 'genetics' / 'pgs.csv'}: none of its 2 ids matches the case ids of "
                           "imagesTr (first id 'UKB1001', e.g. 'case_000' expected)")
    assert f"{root / 'genetics' / 'burden.csv'}: 1 of 2 ids match no case (e.g. 'UKB1002')" in out


def test_output_into_a_closed_pipe_stops_quietly(tmp_path):
    """`medgap reproduce PAPER --plan | head -1`: the reader leaves early; no traceback, the shell's SIGPIPE status."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe fails with EPIPE, whatever the timing
    try:
        done = subprocess.run([sys.executable, "-m", "medgap.cli", "reproduce", "amvlm", "--plan",
                               "--work-dir", str(tmp_path)], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert done.stderr == ""
