"""Synthetic datasets: valid nnU-Net folders, deterministic per case, and the contrast physics the methods rely on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from medgap.data.dataset_json import load_dataset_json
from medgap.data.io import read_image, read_label
from medgap.data.synthetic import GENERATORS, generate
from medgap.data.synthetic.brain_tumour import BrainTumourOptions, load_atlas, make_case
from medgap.errors import MedgapError

# Small versions keep the whole module well under a minute; brain-tumour runs at its default 3 mm grid.
SMALL = {
    "brain-tumour": {},
    "atrium-3d": {"spacing": 2.5, "shape": (48, 48, 32)},
    "cardiac-2d": {"size": (64, 64), "spacing": (3.0, 3.0, 10.0)},
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return {name: generate(name, root / name, cases=3, seed=0, test_cases=1, **options)
            for name, options in SMALL.items()}


def load_case(folder, subset, case_id, channels):
    images = [read_image(folder / f"images{subset}" / f"{case_id}_{c:04d}.nii.gz") for c in range(channels)]
    label = read_label(folder / f"labels{subset}" / f"{case_id}.nii.gz")
    return images, label


def cases_of(folder, subset="Tr"):
    return sorted(path.name[: -len(".nii.gz")] for path in (folder / f"labels{subset}").glob("*.nii.gz"))


@pytest.mark.parametrize("name", list(SMALL))
def test_folder_is_a_valid_nnunet_dataset(datasets, name):
    folder = datasets[name]
    spec = load_dataset_json(folder)
    generator = GENERATORS[name]
    assert spec.channel_names == generator.channel_names
    assert spec.num_training == 3 and spec.file_ending == ".nii.gz"
    assert spec.raw["synthetic"]["seed"] == 0 and spec.raw["synthetic"]["test_cases"] == 1
    for subset, count in (("Tr", 3), ("Ts", 1)):
        ids = cases_of(folder, subset)
        assert ids == [generator.case_id(index, subset) for index in range(count)]
        assert len(list((folder / f"images{subset}").glob("*.nii.gz"))) == count * spec.num_channels
        for case_id in ids:
            images, (label, label_geometry) = load_case(folder, subset, case_id, spec.num_channels)
            assert set(np.unique(label)) <= set(spec.label_values)
            assert (label > 0).any()
            for image, geometry in images:
                assert geometry.matches(label_geometry) and image.shape == label.shape
                assert image.dtype == np.float32 and image.min() >= 0.0 and image.max() > 100.0
            assert np.allclose(np.abs(np.diag(label_geometry.affine)[:3]), label_geometry.spacing)
    assert not set(cases_of(folder, "Tr")) & set(cases_of(folder, "Ts"))  # held-out cases have their own names
    # Label files are stored as uint8, images as float32.
    import nibabel as nib

    case_id = cases_of(folder)[0]
    assert nib.load(folder / "labelsTr" / f"{case_id}.nii.gz").get_data_dtype() == np.uint8
    assert nib.load(folder / "imagesTr" / f"{case_id}_0000.nii.gz").get_data_dtype() == np.float32


def test_brain_tumour_dataset_json(datasets):
    spec = load_dataset_json(datasets["brain-tumour"])
    assert spec.channel_names == ("FLAIR", "T1", "T1c", "T2")
    assert spec.raw["labels"] == {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}  # nnU-Net v2 regions
    assert spec.regions == {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)} and spec.regions_class_order == (1, 2, 3)
    images, (label, geometry) = load_case(datasets["brain-tumour"], "Tr", "BrainTumour_000", 4)
    assert geometry.spacing == (3.0, 3.0, 3.0) and max(label.shape) <= 96
    # Skull-stripped like BraTS: zero outside the brain, and the corners are background.
    assert all(image[0, 0, 0] == 0.0 for image, _ in images)


def _region_means(folder, case_id):
    """Mean intensity per contrast of ET, NCR, oedema and normal white matter (non-tumour brain voxels in the
    brightest third on T1 and the darkest third on T2: a WM proxy that does not use the generator's internals)."""
    images, (label, _) = load_case(folder, "Tr", case_id, 4)
    flair, t1, t1c, t2 = (image for image, _ in images)
    normal = (label == 0) & (t1 > 0)
    wm = normal & (t1 > np.quantile(t1[normal], 2 / 3)) & (t2 < np.quantile(t2[normal], 1 / 3))
    regions = {"ET": label == 3, "NCR": label == 2, "ED": label == 1, "WM": wm}
    return {contrast: {region: float(image[mask].mean()) for region, mask in regions.items() if mask.any()}
            for contrast, image in zip(("FLAIR", "T1", "T1c", "T2"), (flair, t1, t1c, t2))}


def test_brain_tumour_contrasts_follow_brats(datasets):
    folder = datasets["brain-tumour"]
    high_grade = 0
    for case_id in cases_of(folder):
        means = _region_means(folder, case_id)
        assert means["FLAIR"]["ED"] > 1.3 * means["FLAIR"]["WM"]          # oedema bright on FLAIR
        assert means["T2"]["ED"] > 1.3 * means["T2"]["WM"]                # ... and on T2
        assert means["T1"]["ED"] < means["T1"]["WM"]                      # ... slightly dark on T1
        assert means["T1"]["NCR"] < 0.8 * means["T1"]["WM"]               # core dark on T1
        assert means["T2"]["NCR"] > 1.3 * means["T2"]["WM"]               # ... bright on T2
        if "ET" not in means["T1c"]:
            continue
        high_grade += 1
        t1c, t1 = means["T1c"], means["T1"]
        assert t1c["ET"] > 1.3 * t1c["NCR"] and t1c["ET"] > t1c["WM"]     # enhancing rim: bright on T1c only
        assert abs(np.log(t1["ET"] / t1["NCR"])) < 0.5 * abs(np.log(t1c["ET"] / t1c["NCR"]))
        for contrast in ("FLAIR", "T2"):
            assert abs(np.log(means[contrast]["ET"] / means[contrast]["NCR"])) < 0.25
    assert high_grade >= 2


def test_brain_tumour_low_grade_and_scalp_options():
    options = BrainTumourOptions(spacing=6.0, low_grade_fraction=1.0)
    case = make_case(load_atlas(options), options, np.random.default_rng(0))
    assert set(np.unique(case.label)) == {0, 1, 2}                      # oedema + non-enhancing core only
    with_head = BrainTumourOptions(spacing=6.0, skull_stripped=False)
    head = make_case(load_atlas(with_head), with_head, np.random.default_rng(0))
    brain_voxels = (case.images[1] > 0).sum()
    assert (head.images[1] > 0).sum() > 1.3 * brain_voxels              # skull and scalp around the brain
    assert head.images[1][0, 0, 0] == 0.0                                # air stays zero


def test_atrium_single_component_among_bright_blood_pools(datasets):
    folder = datasets["atrium-3d"]
    for subset in ("Tr", "Ts"):
        for case_id in cases_of(folder, subset):
            [(image, geometry)], (label, _) = load_case(folder, subset, case_id, 1)
            atrium = label > 0
            assert ndimage.label(atrium)[1] == 1
            volume_ml = atrium.sum() * np.prod(geometry.spacing) / 1000.0
            assert 15.0 < volume_ml < 150.0
            # Blood pools elsewhere look like the atrium: thresholding alone cannot find it.
            low, high = np.quantile(image[atrium], [0.1, 0.9])
            far = ~ndimage.binary_dilation(atrium, iterations=2)
            assert (far & (image >= low) & (image <= high)).sum() > 0.5 * atrium.sum()


def test_cardiac_anatomy(datasets):
    folder = datasets["cardiac-2d"]
    for case_id in cases_of(folder):
        [(image, geometry)], (label, _) = load_case(folder, "Tr", case_id, 1)
        slices = label.shape[2]
        assert 6 <= slices <= 10 and geometry.spacing == (3.0, 3.0, 10.0)
        assert (label[:, :, 0] == 1).any()                               # RV present at the base
        assert not (label[:, :, -1] == 1).any()                          # ... and gone at the apex
        for z in range(slices // 3, 2 * slices // 3 + 1):                # mid slices
            lv = label[:, :, z] == 3
            assert lv.any()
            ring = ndimage.binary_dilation(lv, structure=np.ones((3, 3))) & ~lv
            assert (label[:, :, z][ring] == 2).all()                     # LV touches only myocardium
        blood, muscle = image[label == 3].mean(), image[label == 2].mean()
        assert blood > 2.0 * muscle                                      # bright blood, dark myocardium


@pytest.mark.parametrize("name", ["atrium-3d", "cardiac-2d"])
def test_deterministic_per_case(tmp_path, name):
    options = SMALL[name]
    two = generate(name, tmp_path / "two", cases=2, seed=0, test_cases=1, **options)
    three = generate(name, tmp_path / "three", cases=3, seed=0, test_cases=1, **options)
    other = generate(name, tmp_path / "other", cases=2, seed=1, test_cases=1, **options)
    prefix = GENERATORS[name].case_prefix
    for subset, index in (("Tr", 0), ("Tr", 1), ("Ts", 0)):
        case_id = f"{prefix}_{index:03d}" if subset == "Tr" else f"{prefix}_test{index:03d}"
        [(a, _)], (label_a, _) = load_case(two, subset, case_id, 1)
        [(b, _)], (label_b, _) = load_case(three, subset, case_id, 1)
        [(c, _)], _ = load_case(other, subset, case_id, 1)
        assert np.array_equal(a, b) and np.array_equal(label_a, label_b)
        assert a.shape != c.shape or not np.array_equal(a, c)
    # Held-out cases come from another stream than training cases.
    [(train, _)], _ = load_case(two, "Tr", f"{prefix}_000", 1)
    [(test, _)], _ = load_case(two, "Ts", f"{prefix}_test000", 1)  # never a training case's name
    assert train.shape != test.shape or not np.array_equal(train, test)


def test_brain_tumour_deterministic(datasets, tmp_path):
    again = generate("brain-tumour", tmp_path / "again", cases=2, seed=0, test_cases=0)
    for index in range(2):
        case_id = f"BrainTumour_{index:03d}"
        first, (label_first, _) = load_case(datasets["brain-tumour"], "Tr", case_id, 4)
        second, (label_second, _) = load_case(again, "Tr", case_id, 4)
        assert np.array_equal(label_first, label_second)
        assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, second))


def test_exist_ok_reuses_only_the_same_dataset(tmp_path):
    options = SMALL["atrium-3d"]
    calls = []
    folder = generate("atrium-3d", tmp_path / "d", cases=2, test_cases=1, progress=lambda *a: calls.append(a),
                      **options)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    stamp = (folder / "dataset.json").stat().st_mtime_ns, (folder / "labelsTr" / "Atrium_000.nii.gz").stat().st_mtime_ns

    with pytest.raises(MedgapError, match="exists; pass --exist-ok"):
        generate("atrium-3d", folder, cases=2, test_cases=1, **options)
    assert generate("atrium-3d", folder, cases=2, test_cases=1, exist_ok=True, **options) == folder
    assert stamp == ((folder / "dataset.json").stat().st_mtime_ns,
                     (folder / "labelsTr" / "Atrium_000.nii.gz").stat().st_mtime_ns)
    with pytest.raises(MedgapError, match="different parameters: seed=0"):
        generate("atrium-3d", folder, cases=2, seed=1, test_cases=1, exist_ok=True, **options)
    with pytest.raises(MedgapError, match="different parameters"):
        generate("atrium-3d", folder, cases=2, test_cases=1, exist_ok=True)   # default options differ

    # An interrupted run (no dataset.json) is regenerated, and its surplus cases are removed.
    (folder / "dataset.json").unlink()
    generate("atrium-3d", folder, cases=1, test_cases=1, exist_ok=True, **options)
    assert cases_of(folder) == ["Atrium_000"] and load_dataset_json(folder).num_training == 1
    assert len(list((folder / "imagesTr").iterdir())) == 1

    # A folder holding someone else's dataset is never touched.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "dataset.json").write_text(json.dumps({"name": "real"}))
    with pytest.raises(MedgapError, match="not a synthetic dataset"):
        generate("atrium-3d", foreign, exist_ok=True)


def test_bad_requests(tmp_path):
    with pytest.raises(MedgapError, match="known: brain-tumour, atrium-3d, cardiac-2d"):
        generate("lung-ct", tmp_path / "x")
    with pytest.raises(MedgapError, match="bad option"):
        generate("cardiac-2d", tmp_path / "y", cases=1, thickness=3)
    with pytest.raises(MedgapError, match="cases must be"):
        generate("cardiac-2d", tmp_path / "z", cases=0)
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()
