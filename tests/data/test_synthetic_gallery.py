"""The dataset gallery (docs/datasets.md's example slices): renders each generator's PNG, shows ``realistic`` beside
``easy`` wherever a generator offers it, and the slices it shows are the data's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medgap.data.synthetic.gallery import TINY_OPTIONS, display_slice, main, render_gallery
from medgap.errors import MedgapError


def test_gallery_renders_easy_and_realistic_side_by_side(tmp_path):
    shown = render_gallery(tmp_path, names=("chest-xray-text", "cardiac-2d"), cases=1, options=TINY_OPTIONS)
    chest = shown["chest-xray-text"]
    assert list(chest) == ["easy", "realistic"]            # chest-xray-text has the option
    easy, realistic = chest["easy"][0], chest["realistic"][0]
    assert easy.image.shape == realistic.image.shape == (48, 48)
    assert not np.array_equal(easy.image, realistic.image) and not np.array_equal(easy.label, realistic.label)
    assert easy.label.any() or realistic.label.any()

    for name in ("chest-xray-text", "cardiac-2d"):
        path = tmp_path / f"{name}.png"
        assert path.stat().st_size < 150_000
        with Image.open(path) as handle:
            pixels = np.asarray(handle.convert("RGB")).astype(int)
        assert pixels.std() > 10                           # not a blank canvas
        red = (pixels[..., 0] > 200) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)
        assert red.sum() > 20                              # label 1's outline (#ff3b30) is drawn
    assert not list(tmp_path.glob("*.tmp*"))               # written atomically: no temporary files left


def test_volume_slice_is_the_one_with_most_label():
    image = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    label = np.zeros((4, 5, 6), dtype=np.uint8)
    label[1:3, 1:4, 4] = 1
    label[1, 1, 2] = 2
    shown_image, shown_label, where = display_slice(image, label)
    assert where == "z=4 of 6"
    np.testing.assert_array_equal(shown_image, image[:, :, 4].T)
    assert shown_label.shape == (5, 4) and shown_label.sum() == 6


def test_unknown_generator_is_one_line(tmp_path, capsys):
    with pytest.raises(MedgapError, match="gallery: unknown generator"):
        render_gallery(tmp_path, names=("lung-ct",))
    assert main(["--names", "lung-ct", "--out", str(tmp_path)]) == 2
    assert "unknown generator(s) lung-ct" in capsys.readouterr().out
