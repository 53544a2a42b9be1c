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
