"""Bad inputs → one clear line, exit code 2, nothing lost (issue 9).

Every row corrupts a copy of a built-in synthetic dataset (or a config, or an output path), runs one CLI command
in-process and asserts: exit status 2, exactly one line on stderr naming the file/case/key and the problem, and
every input folder byte-identical afterwards (no file changed, added or removed).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medgap.cli import main
from medgap.data.io import write_nifti
from medgap.data.synthetic import generate

# The smallest datasets the generators allow: a few cases, small grids.
SYNTHETIC = {
    "brain-tumour": dict(cases=2, spacing=6.0),
    "atrium-3d": dict(cases=3, shape=(16, 16, 16), spacing=6.0),
    "cardiac-2d": dict(cases=2, size=(32, 32), slices=(2, 2)),
    "chest-xray-text": dict(cases=3, size=32),
    "fundus-genetics": dict(cases=20, image_size=32),
    "digits-av": dict(cases=4),
}
TINY_TRAINING = {  # a config that trains one step in a second on atrium-3d
    "data": {"patch_size": [16, 16, 16], "num_workers": 0, "labelled_batch_size": 1, "val_fraction": 0.34,
             "test_fraction": 0.0},
    "model": {"features": [4, 8]},
    "trainer": {"max_steps": 1, "val_every": 1, "checkpoint_every": 1, "log_every": 1, "progress": False,
                "accelerator": "cpu"},
    "inference": {"sw_batch_size": 1},
}


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """``synthetic(name)`` → a session-wide generated dataset (generated on first use; never modified)."""
    root, made = tmp_path_factory.mktemp("synthetic"), {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = generate(name, root / name, seed=0, test_cases=0, **SYNTHETIC[name])
        return made[name]

    return get


@pytest.fixture(scope="session")
def trained_run(synthetic, tmp_path_factory):
    """A one-step run on atrium-3d for the ``predict`` rows."""
    run = tmp_path_factory.mktemp("trained") / "run"
    config = write_config(run.parent / "tiny.yaml", synthetic("atrium-3d"))
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    return run


def write_config(path: Path, dataset: Path, extra: dict | None = None) -> Path:
    raw = copy.deepcopy(TINY_TRAINING)
    raw["data"]["dataset_dir"] = str(dataset)
    for section, values in (extra or {}).items():
        raw.setdefault(section, {}).update(values)
    path.write_text(json.dumps(raw))  # JSON is YAML
    return path


def snapshot(*roots: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under ``roots`` (a changed, added or removed file changes it)."""
    return {f"{root.name}/{path.relative_to(root)}": hashlib.sha256(path.read_bytes()).hexdigest()
            for root in roots for path in sorted(root.rglob("*")) if path.is_file()}


def assert_refused(argv: list, inputs: list[Path], pattern: str, capsys) -> str:
    """Run the CLI; exit 2, one stderr line ``error: ...`` matching ``pattern``, inputs untouched."""
    before = snapshot(*inputs)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert snapshot(*inputs) == before
    return lines[0]


def copy_of(synthetic, name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synthetic(name), tmp_path / name))


# ------------------------------------------------------------------------------------------ corruptions
def truncate(relative: str):
    def corrupt(root: Path):
        data = (root / relative).read_bytes()
        (root / relative).write_bytes(data[: len(data) // 2])
    return corrupt


def overwrite(relative: str, data: bytes):
    def corrupt(root: Path):
        (root / relative).write_bytes(data)
    return corrupt


def remap_nifti(relative: str, change):
    """Rewrite a NIfTI file as ``change(array, affine) -> Nifti1Image`` gives it."""
    def corrupt(root: Path):
        image = nib.load(root / relative)
        nib.save(change(np.asarray(image.dataobj), image.affine.copy()), root / relative)
    return corrupt


def rewrite_nifti(relative: str, change):
    """Rewrite a NIfTI file with medgap's writer; ``change(array, affine) -> (array, affine)``."""
    def corrupt(root: Path):
        image = nib.load(root / relative)
        write_nifti(root / relative, *change(np.asarray(image.dataobj).copy(), image.affine.copy()))
    return corrupt


def set_voxel(array, value, index=(0, 0, 0)):
    array[index] = value
    return array


def shifted(affine, mm=5.0):
    affine[0, 3] += mm
    return affine


def edit_json(relative: str, change):
    def corrupt(root: Path):
        raw = json.loads((root / relative).read_text())
        change(raw)
        (root / relative).write_text(json.dumps(raw))
    return corrupt


def edit_text(relative: str, change):
    def corrupt(root: Path):
        (root / relative).write_text(change((root / relative).read_text()))
    return corrupt


def rename(old: str, new: str):
    def corrupt(root: Path):
        (root / old).rename(root / new)
    return corrupt


def png_value(relative: str, value: int):
    def corrupt(root: Path):
        array = np.array(Image.open(root / relative))
        array[0, 0] = value
        Image.fromarray(array).save(root / relative)
    return corrupt


def replace_with(relative: str, make):
    """Replace a file by what ``make(path)`` creates there (a symlink, a FIFO)."""
    def corrupt(root: Path):
        (root / relative).unlink()
        make(root / relative)
    return corrupt


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A 60-byte PNG whose header declares ``width × height`` 1-bit pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def both(*corruptions):
    def corrupt(root: Path):
        for corruption in corruptions:
            corruption(root)
    return corrupt


def rgb_voxels(array, affine):
    rgb = np.zeros(array.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    return nib.Nifti1Image(rgb, affine)


BT, AT, CA = "imagesTr/BrainTumour_000", "imagesTr/Atrium_000", "imagesTr/Cardiac_001"

# (id, dataset, corruption, extra verify arguments, stderr pattern)
VERIFY_ROWS = [
    ("truncated-nifti", "brain-tumour", truncate(f"{BT}_0001.nii.gz"), [],
     rf"{BT}_0001\.nii\.gz: corrupt or truncated NIfTI"),
    ("garbage-nifti", "brain-tumour", overwrite(f"{BT}_0002.nii.gz", b"not an image" * 40), [],
     rf"{BT}_0002\.nii\.gz: not a readable NIfTI file"),
    ("gzipped-garbage-nifti", "atrium-3d", overwrite(f"{AT}_0000.nii.gz", gzip.compress(b"x" * 999)), [],
     rf"{AT}_0000\.nii\.gz: not a readable NIfTI file"),
    ("truncated-png", "chest-xray-text", truncate("imagesTr/CXR_000_0000.png"), [],
     r"imagesTr/CXR_000_0000\.png: not a readable PNG \(image file is truncated"),
    ("garbage-png", "digits-av", overwrite("imagesTr/Digit_0360_0001.png", b"\x89PNG garbage"), [],
     r"imagesTr/Digit_0360_0001\.png: not a readable PNG \(cannot identify image file 'Digit_0360_0001\.png'\)"),
    ("png-decompression-bomb", "chest-xray-text", overwrite("imagesTr/CXR_000_0000.png", bomb_png()), [],
     r"imagesTr/CXR_000_0000\.png: PNG refused as a decompression bomb \(Image size \(10000000000 pixels\) exceeds"),
    ("complex-voxels", "atrium-3d",
     remap_nifti(f"{AT}_0000.nii.gz", lambda a, m: nib.Nifti1Image(a.astype(np.complex64), m)), [],
     rf"{AT}_0000\.nii\.gz: unsupported voxel type complex64"),
    ("rgb-voxels", "atrium-3d", remap_nifti(f"{AT}_0000.nii.gz", rgb_voxels), [],
     rf"{AT}_0000\.nii\.gz: unsupported voxel type"),
    ("fractional-label", "atrium-3d",
     remap_nifti("labelsTr/Atrium_001.nii.gz", lambda a, m: nib.Nifti1Image(a.astype(np.float32) + 0.5, m)), [],
     r"labelsTr/Atrium_001\.nii\.gz: label map has non-integer values"),
    ("2d-image-in-3d-dataset", "atrium-3d", both(rewrite_nifti(f"{AT}_0000.nii.gz", lambda a, m: (a[:, :, 0], m)),
                                                 rewrite_nifti("labelsTr/Atrium_000.nii.gz",
                                                               lambda a, m: (a[:, :, 0], m))), [],
     rf"{AT}_0000\.nii\.gz: 2-D image \(16, 16\), but most cases are 3-D"),
    ("2d-image-3d-label", "atrium-3d", rewrite_nifti(f"{AT}_0000.nii.gz", lambda a, m: (a[:, :, 0], m)), [],
     r"labelsTr/Atrium_000\.nii\.gz: label geometry shape \(16, 16, 16\) does not match image "
     r"Atrium_000_0000\.nii\.gz \(16, 16\)"),
    ("4d-image", "atrium-3d", rewrite_nifti(f"{AT}_0000.nii.gz", lambda a, m: (np.stack([a, a], -1), m)), [],
     rf"{AT}_0000\.nii\.gz: expected a 2-D or 3-D image, got shape \(16, 16, 16, 2\)"),
    ("channel-shapes-disagree", "brain-tumour", rewrite_nifti(f"{BT}_0002.nii.gz", lambda a, m: (a[1:], m)), [],
     rf"{BT}_0002\.nii\.gz: geometry shape \(\d+, \d+, \d+\) does not match BrainTumour_000_0000\.nii\.gz"),
    ("channel-affines-disagree", "brain-tumour", rewrite_nifti(f"{BT}_0003.nii.gz", lambda a, m: (a, shifted(m))),
     [], rf"{BT}_0003\.nii\.gz: geometry affine does not match BrainTumour_000_0000\.nii\.gz \(differs by up to 5 mm"),
    ("label-affine-disagrees", "brain-tumour",
     rewrite_nifti("labelsTr/BrainTumour_001.nii.gz", lambda a, m: (a, shifted(m, 2.0))), [],
     r"labelsTr/BrainTumour_001\.nii\.gz: label geometry affine does not match image BrainTumour_001_0000"),
    ("nan-inf-voxels", "cardiac-2d",
     rewrite_nifti(f"{CA}_0000.nii.gz", lambda a, m: (set_voxel(set_voxel(a, np.nan), np.inf, (1, 1, 0)), m)), [],
     rf"{CA}_0000\.nii\.gz: 2 NaN/Inf voxels"),
    ("label-value-not-in-dataset-json", "cardiac-2d",
     rewrite_nifti("labelsTr/Cardiac_001.nii.gz", lambda a, m: (set_voxel(a, 7), m)), [],
     r"labelsTr/Cardiac_001\.nii\.gz: label value\(s\) \[7\] not declared in dataset\.json"),
    ("brats-label-4-undeclared", "brain-tumour",  # nnU-Net v2 region labels are 0-3: BraTS's raw 4 is refused
     rewrite_nifti("labelsTr/BrainTumour_000.nii.gz", lambda a, m: (set_voxel(a, 4), m)), [],
     r"labelsTr/BrainTumour_000\.nii\.gz: label value\(s\) \[4\] not declared in dataset\.json "
     r"\(declared \[0, 1, 2, 3\]"),
    # issue 21 item 6: 65537 used to wrap through int16 to 1 (a declared value); 2**40 sized a 1 TiB lookup
    ("label-value-beyond-int16", "atrium-3d",
     remap_nifti("labelsTr/Atrium_001.nii.gz", lambda a, m: nib.Nifti1Image(set_voxel(a.astype(np.int32), 65537), m)),
     [], r"labelsTr/Atrium_001\.nii\.gz: label value\(s\) \[65537\] not declared in dataset\.json"),
    ("declared-label-value-2-to-40", "atrium-3d", edit_json("dataset.json", lambda raw: raw["labels"].update(huge=2**40)),
     [], r"dataset\.json: label 'huge' has value 1099511627776, above 32767 \(the largest label value medgap accepts\)"),
    ("png-label-255", "chest-xray-text", png_value("labelsTr/CXR_001.png", 255), [],
     r"labelsTr/CXR_001\.png: label value\(s\) \[255\] not declared"),
    ("class-not-in-dataset-json", "digits-av",
     edit_text("labelsTr.csv", lambda t: re.sub(r"\n([^,\n]+),[^\n]*", r"\n\1,11", t, count=1)), [],
     r"labelsTr\.csv:2: class '11' not in dataset\.json classes"),
    ("case-id-with-dotdot", "atrium-3d", rename(f"{AT}_0000.nii.gz", "imagesTr/a..b_0000.nii.gz"), [],
     r"imagesTr/a\.\.b_0000\.nii\.gz: case id 'a\.\.b' is not allowed"),
    ("case-id-with-backslash", "atrium-3d", rename(f"{AT}_0000.nii.gz", "imagesTr/a\\b_0000.nii.gz"), [],
     r"case id 'a\\\\b' is not allowed"),
    ("classification-case-id-path", "digits-av", edit_text("labelsTr.csv", lambda t: t + "../../evil,3\n"), [],
     r"labelsTr\.csv:\d+: case '\.\./\.\./evil' has no image in imagesTr/"),
    ("missing-dataset-json", "atrium-3d", lambda root: (root / "dataset.json").unlink(), [],
     r"atrium-3d/dataset\.json: missing \(every dataset folder needs a dataset\.json\)"),
    ("dataset-json-not-json", "atrium-3d", overwrite("dataset.json", b"{not json"), [],
     r"dataset\.json: not valid JSON"),
    ("dataset-json-not-utf8", "atrium-3d", overwrite("dataset.json", b"\xff\xfe{}"), [],
     r"dataset\.json: not valid JSON \('utf-8' codec can't decode"),
    *[(f"dataset-json-without-{key}", "atrium-3d", edit_json("dataset.json", lambda raw, key=key: raw.pop(key)), [],
       rf"dataset\.json: missing required key\(s\) {key}") for key in ("channel_names", "labels", "file_ending")],
    ("dataset-json-without-classes", "digits-av", edit_json("dataset.json", lambda raw: raw.pop("classes")), [],
     r"dataset\.json: a classification dataset needs 'classes'"),
    ("genetics-duplicate-id", "fundus-genetics",
     edit_text("genetics/pgs.csv", lambda t: t + t.splitlines()[1] + "\n"), [],  # the first row again
     r"genetics/pgs\.csv:\d+: duplicate case id 'F\d+'"),
    ("genetics-non-numeric", "fundus-genetics",
     edit_text("genetics/pgs.csv", lambda t: re.sub(r"\n(F\d+),[^,]*,", r"\n\1,high,", t, count=1)), [],
     r"genetics/pgs\.csv:2: non-numeric value for case 'F\d+'"),
    ("genetics-nan", "fundus-genetics",
     edit_text("genetics/burden.csv", lambda t: re.sub(r"\n(F\d+),[^,]*,", r"\n\1,nan,", t, count=1)), [],
     r"genetics/burden\.csv:2: NaN/Inf value for case 'F\d+'"),
    ("report-not-utf8", "chest-xray-text", overwrite("textTr/CXR_001.txt", "Bilateral infection, ß".encode("latin-1")),
     [], r"textTr/CXR_001\.txt: report is not UTF-8 text"),
    # issue 21 item 2: a name that is there but cannot be read is not a missing modality / an unlabelled case
    ("dangling-symlink-channel", "brain-tumour", replace_with(f"{BT}_0001.nii.gz", lambda p: p.symlink_to("gone")),
     [], rf"{BT}_0001\.nii\.gz: dangling symlink \(its target gone does not exist\)"),
    ("symlink-loop-label", "atrium-3d", replace_with("labelsTr/Atrium_001.nii.gz", lambda p: p.symlink_to(p.name)),
     [], r"labelsTr/Atrium_001\.nii\.gz: cannot be read \(Too many levels of symbolic links\)"),
    ("fifo-label", "cardiac-2d", replace_with("labelsTr/Cardiac_001.nii.gz", os.mkfifo), [],
     r"labelsTr/Cardiac_001\.nii\.gz: expected a file, found a FIFO"),
    ("folder-as-channel", "atrium-3d", replace_with(f"{AT}_0000.nii.gz", Path.mkdir), [],
     rf"{AT}_0000\.nii\.gz: expected a file, found a folder"),
    # the whole case counts: 16³ voxels × (4 + 4 float32 channel as stored and copied, 2 × 4 stacked and normalised,
    # 8 one channel in float64 while normalised, 1 + 2 + 1 label as stored, int16 and index map) = 112 KiB
    ("case-over-memory-budget", "atrium-3d", lambda root: None, ["--max-image-mib", "0.01"],
     rf"{AT}_0000\.nii\.gz: case Atrium_000 needs 0\.109 MiB to load \(1 channel file\(s\) and a label, as stored and "
     r"as float32 copies\), over the memory budget of 0\.01 MiB"),
    ("png-over-memory-budget", "chest-xray-text", lambda root: None, ["--max-image-mib", "0.001"],  # 32² × 25 bytes
     r"imagesTr/CXR_000_0000\.png: case CXR_000 needs 0\.0244 MiB to load \(1 channel file\(s\) and a label"),
    # issue 21 item 4: four channels and a float64 label; each file alone fits the budget as float32 (0.0986 MiB),
    # the case needs 27·33·29 voxels × (4·8 + 4·8 + 8 + 8 + 3) bytes
    ("case-with-float64-label-over-budget", "brain-tumour",
     remap_nifti("labelsTr/BrainTumour_000.nii.gz", lambda a, m: nib.Nifti1Image(a.astype(np.float64), m)),
     ["--max-image-mib", "0.2"], rf"{BT}_0000\.nii\.gz: case BrainTumour_000 needs 2\.05 MiB to load \(4 channel "
     r"file\(s\) and a label"),
]


@pytest.mark.parametrize("name", SYNTHETIC)
def test_untouched_datasets_pass_verify(name, synthetic, capsys):
    """The control for every row below: the uncorrupted dataset is accepted (so the corruption is what fails)."""
    assert main(["verify", str(synthetic(name))]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.rstrip().endswith("no problems found")


@pytest.mark.parametrize("name, corrupt, options, pattern", [row[1:] for row in VERIFY_ROWS],
                         ids=[row[0] for row in VERIFY_ROWS])
def test_verify_refuses_bad_input_with_one_line(name, corrupt, options, pattern, synthetic, tmp_path, capsys):
    root = copy_of(synthetic, name, tmp_path)
    corrupt(root)
    assert_refused(["verify", root, *options], [root], pattern, capsys)


def test_empty_label_map_is_legal_data_with_a_warning(synthetic, tmp_path, capsys):
    """The empty-mask policy scores empty ground truth (Dice 1 for an empty prediction): verify warns, passes."""
    root = copy_of(synthetic, "cardiac-2d", tmp_path)
    rewrite_nifti("labelsTr/Cardiac_001.nii.gz", lambda a, m: (np.zeros_like(a), m))(root)
    assert main(["verify", str(root)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "1 warning(s):" in out and "labelsTr/Cardiac_001.nii.gz: label map is empty (background only)" in out
    assert out.rstrip().endswith("no problems found")


def test_several_problems_are_listed_and_summarised_in_one_line(synthetic, tmp_path, capsys):
    root = copy_of(synthetic, "atrium-3d", tmp_path)
    both(truncate(f"{AT}_0000.nii.gz"), edit_json("dataset.json", lambda raw: raw.update(numTraining=7)))(root)
    line = assert_refused(["verify", root], [root], r"numTraining is 7 but imagesTr has 3 cases "
                          r"\(and 1 more problem\(s\), listed above\)", capsys)
    assert line.startswith(f"error: {root / 'dataset.json'}")


# ------------------------------------------------------------------------------------------ train
# (id, dataset, corruption of the dataset copy, config changes, extra CLI arguments, stderr pattern)
TRAIN_ROWS = [
    ("config-unknown-key", "atrium-3d", None, {"trainer": {"max_stepz": 1}}, [],
     r"tiny\.yaml: unknown key 'trainer\.max_stepz' \(did you mean 'trainer\.max_steps'\?\)"),
    ("config-wrong-type", "atrium-3d", None, {"data": {"patch_size": 16}}, [],
     r"tiny\.yaml: data\.patch_size must be"),
    ("override-wrong-type", "atrium-3d", None, {}, ["trainer.max_steps=many"],
     r"override 'trainer\.max_steps=many': trainer\.max_steps must be int, got 'many' \(str\)"),
    ("override-unknown-key", "atrium-3d", None, {}, ["model.featurez=[4]"], r"unknown key 'model\.featurez'"),
    ("config-not-yaml", "atrium-3d", None, b"data: [unclosed", [],
     r"tiny\.yaml: not valid YAML \(line 1: expected ',' or ']', but got '<stream end>'\)"),
    # issue 21 item 9: nine levels of nine aliases (9**9 values once copied) under a dict-typed key; a second
    # trainer: block; a list that contains itself
    ("config-billion-laughs", "atrium-3d", None, ("method:\n  name: contig\n  encoder:\n    l0: &l0 [lol, lol, lol, lol, "
     "lol, lol, lol, lol, lol]\n" + "".join(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)))
     .encode(), [], r"tiny\.yaml: not valid YAML \(aliases expand to more than 100000 values\)"),
    ("config-duplicate-section", "atrium-3d", None, b"trainer:\n  max_steps: 1\ndata:\n  num_workers: 0\ntrainer:\n"
     b"  val_every: 1\n", [], r"tiny\.yaml: not valid YAML \(line 5: duplicate key 'trainer' \(first on line 1\)\)"),
    ("config-duplicate-key", "atrium-3d", None, b"trainer:\n  max_steps: 1\n  max_steps: 5000\n", [],
     r"tiny\.yaml: not valid YAML \(line 3: duplicate key 'max_steps' \(first on line 2\)\)"),
    ("config-recursive-alias", "atrium-3d", None, b"model:\n  features: &f [4, *f]\n", [],
     r"tiny\.yaml: not valid YAML \(a recursive alias"),
    ("config-not-utf8", "atrium-3d", None, b"name: r\xe9sum\xe9\n", [], r"tiny\.yaml: not UTF-8 text"),
    ("truncated-nifti", "atrium-3d", truncate("labelsTr/Atrium_002.nii.gz"), {}, [],
     r"labelsTr/Atrium_002\.nii\.gz: corrupt or truncated NIfTI"),
    ("case-over-memory-budget", "atrium-3d", None, {"data": {"max_image_mib": 0.01}}, [],
     r"imagesTr/Atrium_00\d_0000\.nii\.gz: case Atrium_00\d needs 0\.109 MiB to load .* over the memory budget"),
    ("2d-case-for-3d-patches", "atrium-3d",
     both(rewrite_nifti(f"{AT}_0000.nii.gz", lambda a, m: (a[:, :, 0], m)),
          rewrite_nifti("labelsTr/Atrium_000.nii.gz", lambda a, m: (a[:, :, 0], m))), {}, [],
     rf"{AT}_0000\.nii\.gz: 2-D image \(16, 16\), but data\.patch_size \[16, 16, 16\] is 3-D"),
    ("fifo-label", "atrium-3d", replace_with("labelsTr/Atrium_002.nii.gz", os.mkfifo), {}, [],
     r"labelsTr/Atrium_002\.nii\.gz: expected a file, found a FIFO"),
    ("run-folder-inside-dataset", "atrium-3d", None, {}, ["--run-dir", "{dataset}/imagesTr/run"],
     r"imagesTr/run: run folder must not be the dataset folder .*atrium-3d, inside it or contain it"),
    ("run-folder-is-dataset", "atrium-3d", None, {}, ["--run-dir", "{dataset}", "--overwrite"],
     r"atrium-3d: run folder must not be the dataset folder"),
    ("cache-inside-dataset", "atrium-3d", None, {"data": {"cache_dir": "{dataset}/cache"}}, [],
     r"atrium-3d/cache: the preprocessing cache \(data\.cache_dir\) must not be inside the dataset folder"),
    ("alternative-report-not-utf8", "chest-xray-text", overwrite("textTr/CXR_002.alt.txt", b"\xe9t\xe9\n"),
     {"method": {"name": "amvlm"}, "data": {"patch_size": [32, 32], "labelled_batch_size": 2}}, [],
     r"textTr/CXR_002\.alt\.txt: report is not UTF-8 text"),
]


@pytest.mark.parametrize("name, corrupt, config_change, arguments, pattern", [row[1:] for row in TRAIN_ROWS],
                         ids=[row[0] for row in TRAIN_ROWS])
def test_train_refuses_bad_input_with_one_line(name, corrupt, config_change, arguments, pattern, synthetic,
                                               tmp_path, capsys):
    root = copy_of(synthetic, name, tmp_path / "data")
    if corrupt is not None:
        corrupt(root)
    config = tmp_path / "configs" / "tiny.yaml"
    config.parent.mkdir()
    if isinstance(config_change, bytes):
        config.write_bytes(config_change)
    else:
        changes = json.loads(json.dumps(config_change).replace("{dataset}", str(root)))
        write_config(config, root, changes)
    arguments = [a.replace("{dataset}", str(root)) for a in arguments]
    if "--run-dir" not in arguments:
        arguments += ["--run-dir", tmp_path / "runs" / "run"]
    assert_refused(["train", config, *arguments], [root, config.parent], pattern, capsys)


@pytest.mark.slow  # a fresh interpreter imports torch (seconds)
def test_one_line_and_status_2_from_a_real_process(synthetic, tmp_path):
    """The same contract seen from outside: the process's status and stderr, no traceback."""
    config = write_config(tmp_path / "tiny.yaml", synthetic("atrium-3d"), {"trainer": {"max_stepz": 1}})
    result = subprocess.run([sys.executable, "-m", "medgap.cli", "train", str(config)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {config}: unknown key 'trainer.max_stepz' (did you mean "
                                          "'trainer.max_steps'?)"]


# ------------------------------------------------------------------------------------------ predict
# (id, corruption of a copy of imagesTr, output folder (relative to tmp_path, or "{inputs}", "{dataset}", "{run}"),
#  stderr pattern); the run was trained on the atrium-3d dataset
PREDICT_ROWS = [
    ("truncated-input", truncate("Atrium_001_0000.nii.gz"), "pred",
     r"inputs/Atrium_001_0000\.nii\.gz: corrupt or truncated NIfTI"),
    ("nan-input", rewrite_nifti("Atrium_002_0000.nii.gz", lambda a, m: (set_voxel(a, np.nan), m)), "pred",
     r"inputs/Atrium_002_0000\.nii\.gz: 1 NaN/Inf voxels"),
    ("2d-input", rewrite_nifti("Atrium_002_0000.nii.gz", lambda a, m: (a[:, :, 0], m)), "pred",
     r"inputs/Atrium_002_0000\.nii\.gz: 2-D image \(16, 16\), but the run's inference patch \[16, 16, 16\] is 3-D"),
    ("case-id-with-dotdot", rename("Atrium_000_0000.nii.gz", "x..y_0000.nii.gz"), "pred",
     r"inputs/x\.\.y_0000\.nii\.gz: case id 'x\.\.y' is not allowed"),
    ("dangling-symlink-input", replace_with("Atrium_001_0000.nii.gz", lambda p: p.symlink_to("gone")), "pred",
     r"inputs/Atrium_001_0000\.nii\.gz: dangling symlink \(its target gone does not exist\)"),
    ("output-is-input-folder", None, "{inputs}", r"inputs: output folder must not be the input folder or inside it"),
    ("output-inside-input-folder", None, "{inputs}/pred",
     r"inputs/pred: output folder must not be the input folder or inside it"),
    ("output-is-an-input-file", None, "{inputs}/Atrium_000_0000.nii.gz",
     r"inputs/Atrium_000_0000\.nii\.gz: output folder must not be the input folder or inside it"),
    ("output-into-dataset-labels", None, "{dataset}/labelsTr",
     r"atrium-3d/labelsTr: output folder must not be the dataset folder or inside it"),
    ("output-is-an-existing-file", None, "{run}/config.yaml", r"config\.yaml: output folder is an existing file"),
]


@pytest.mark.parametrize("corrupt, output, pattern", [row[1:] for row in PREDICT_ROWS],
                         ids=[row[0] for row in PREDICT_ROWS])
def test_predict_refuses_bad_input_with_one_line(corrupt, output, pattern, trained_run, synthetic, tmp_path, capsys):
    dataset = synthetic("atrium-3d")
    inputs = Path(shutil.copytree(dataset / "imagesTr", tmp_path / "inputs"))
    if corrupt is not None:
        corrupt(inputs)
    output = output.format(inputs=inputs, dataset=dataset, run=trained_run)
    output = output if output.startswith("/") else tmp_path / output
    assert_refused(["predict", trained_run, inputs, output], [inputs, dataset, trained_run], pattern, capsys)
