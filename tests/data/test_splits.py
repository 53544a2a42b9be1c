import pytest

from medgap.data.splits import load_splits, make_splits
from medgap.errors import DatasetError

IDS = [f"c{i:02d}" for i in range(20)]


def test_split_is_seeded_disjoint_and_uses_labelled_cases_for_evaluation():
    labelled = set(IDS[:16])
    a = make_splits(IDS, labelled, seed=3, val_fraction=0.1, test_fraction=0.2, labelled_ratio=0.25)
    b = make_splits(list(reversed(IDS)), labelled, seed=3, val_fraction=0.1, test_fraction=0.2, labelled_ratio=0.25)
    assert a == b
    assert len(a["val"]) == 2 and len(a["test"]) == 4
    assert not set(a["train"]) & set(a["val"]) and not set(a["train"]) & set(a["test"])
    assert set(a["val"]) | set(a["test"]) <= labelled
    assert set(IDS[16:]) <= set(a["unlabelled"])  # no label file → unlabelled
    assert len(a["labelled"]) == round(0.25 * len(a["train"]))
    assert set(a["labelled"]) | set(a["unlabelled"]) == set(a["train"])
    c = make_splits(IDS, labelled, seed=4, val_fraction=0.1, test_fraction=0.2, labelled_ratio=0.25)
    assert c["test"] != a["test"]


def test_labelled_count_and_errors():
    split = make_splits(IDS, set(IDS), seed=0, val_fraction=0.0, test_fraction=0.0, labelled_count=4)
    assert len(split["labelled"]) == 4 and len(split["unlabelled"]) == 16
    with pytest.raises(DatasetError, match="only 16 have labels"):
        make_splits(IDS, set(IDS[:16]), seed=0, val_fraction=0.0, test_fraction=0.0, labelled_count=17)
    with pytest.raises(DatasetError, match="not both"):
        make_splits(IDS, set(IDS), seed=0, labelled_count=2, labelled_ratio=0.1)


def test_persisted_split_is_checked(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text('{"train": ["c00", "c01"], "val": ["c01"], "test": []}')
    with pytest.raises(DatasetError, match="in more than one split"):
        load_splits(path, IDS)
    path.write_text('{"train": ["zz"], "val": [], "test": []}')
    with pytest.raises(DatasetError, match="unknown case"):
        load_splits(path, IDS)
    path.write_text('{"train": ["c00", "c01"], "val": ["c02"], "test": ["c03"]}')
    assert load_splits(path, IDS)["labelled"] == ["c00", "c01"]


def test_split_without_groups_is_unchanged():
    """The split every existing run folder holds (computed with the code before label groups existed)."""
    ids = [f"case_{i:03d}" for i in range(10)]
    split = make_splits(ids, set(ids), seed=3, labelled_count=3)
    assert split["val"] == ["case_000", "case_002"] and split["test"] == ["case_006", "case_009"]
    assert split["labelled"] == ["case_001", "case_004", "case_007"]
    assert split["unlabelled"] == ["case_003", "case_005", "case_008"]


def test_label_groups_label_both_frames_of_a_patient():
    """ACDC: two frames per patient; SS-Net's "7 labelled" are patients, so labelled_count counts groups."""
    ids = [f"patient{p:03d}_frame{f:02d}" for p in range(1, 11) for f in (1, 12)]
    patients = {case: case.split("_")[0] for case in ids}
    for seed in range(5):
        split = make_splits(ids, set(ids), seed=seed, val_fraction=0.2, test_fraction=0.2, labelled_count=3,
                            groups=patients, label_groups=patients)
        for part in ("train", "val", "test", "labelled", "unlabelled"):  # every patient on one side, both frames
            assert all(case.replace("frame01", "frame12") in split[part] for case in split[part] if "frame01" in case)
        assert len(split["labelled"]) == 6 and len({patients[c] for c in split["labelled"]}) == 3
        assert len(split["train"]) == 12
    ratio = make_splits(ids, set(ids), seed=0, val_fraction=0.0, test_fraction=0.0, labelled_ratio=0.25,
                        label_groups=patients)
    assert len(ratio["labelled"]) == 6  # 25 % of 10 patients, rounded half up: 3 patients, 6 frames
    with pytest.raises(DatasetError, match=r"asked for 11 labelled training groups \(data.labelled_count counts "
                                           r"groups\), only 10 have labels"):
        make_splits(ids, set(ids), seed=0, val_fraction=0.0, test_fraction=0.0, labelled_count=11,
                    label_groups=patients)
