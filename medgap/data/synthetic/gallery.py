"""Example slices of the segmentation generators for docs/datasets.md: one PNG per generator, a row per case, a
column per difficulty, the label outlined on the first channel.

Every generator is shown at ``easy``; ``realistic`` is added wherever the generator accepts it (found by asking
it, so a generator that gains the option appears with it the next time the gallery is rendered)::

    python -m medgap.data.synthetic.gallery                      # → docs/images/datasets/<name>.png
    python -m medgap.data.synthetic.gallery --names chest-xray-text --cases 1 --out /tmp/gallery

The cases are generated into a temporary folder and read back as the data loader reads them (NIfTI or PNG).
"""

from __future__ import annotations

import argparse
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medgap.atomic import write_bytes
from medgap.data.io import read_image, read_label
from medgap.data.synthetic import GENERATORS, generate
from medgap.errors import MedgapError

SEGMENTATION = ("brain-tumour", "atrium-3d", "cardiac-2d", "chest-xray-text")
DIFFICULTIES = ("easy", "realistic")
# Options for the docs: the default grids (brain-tumour at its default 3 mm), so the slices look as the data do.
DOC_OPTIONS: dict[str, dict] = {name: {} for name in SEGMENTATION}
# The smallest grids that still show each anatomy (tests).
TINY_OPTIONS: dict[str, dict] = {
    "brain-tumour": {"spacing": 4.0}, "atrium-3d": {"spacing": 2.5, "shape": (48, 48, 32)},
    "cardiac-2d": {"size": (64, 64), "spacing": (3.0, 3.0, 10.0)}, "chest-xray-text": {"size": 48},
}
OUTLINE_COLOURS = ("#ff3b30", "#ffd60a", "#30d158", "#0a84ff", "#bf5af2")  # label 1, 2, 3, ...


class ExampleSlice(NamedTuple):
    """One panel: ``image`` and ``label`` ``(rows, columns)`` as displayed, and where it comes from."""

    image: np.ndarray
    label: np.ndarray
    case_id: str
    where: str   # "slice z=31 of 56" for volumes, "" for 2-D images


def display_slice(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The 2-D view of a case: a PNG's ``(H, W)`` as is; of a volume ``(X, Y, Z)``, the axial slice with the most
    labelled voxels (the middle one if the label is empty), transposed so rows run along Y (shown bottom-up)."""
    if image.ndim == 2:
        return image, label, ""
    counts = (label > 0).sum(axis=(0, 1))
    z = int(np.argmax(counts)) if counts.any() else image.shape[2] // 2
    return image[:, :, z].T, label[:, :, z].T, f"z={z} of {image.shape[2]}"


def example_slices(name: str, difficulty: str, cases: int, work_dir: Path, options: dict) -> list[ExampleSlice] | None:
    """Generate ``cases`` training cases of ``name`` at ``difficulty`` into ``work_dir`` and cut one slice each;
    None when the generator has no ``difficulty`` option (or not this value)."""
    extra = {} if difficulty == "easy" else {"difficulty": difficulty}
    folder = work_dir / f"{name}_{difficulty}"
    try:
        generate(name, folder, cases=cases, test_cases=0, seed=0, **options, **extra)
    except MedgapError as error:
        if extra and ("bad option" in str(error) or "difficulty must be" in str(error)):
            return None
        raise
    generator = GENERATORS[name]
    ending = ".png" if (folder / "imagesTr" / f"{generator.case_id(0)}_0000.png").is_file() else ".nii.gz"
    slices = []
    for index in range(cases):
        case_id = generator.case_id(index)
        image, _ = read_image(folder / "imagesTr" / f"{case_id}_0000{ending}")
        label, _ = read_label(folder / "labelsTr" / f"{case_id}{ending}")
        shown_image, shown_label, where = display_slice(image, label)
        slices.append(ExampleSlice(shown_image, shown_label, case_id, where))
    return slices


def render(name: str, panels: dict[str, list[ExampleSlice]], path: Path, panel_inches: float = 2.3) -> Path:
    """One figure: a row per case, a column per difficulty, the label's outline per value; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    difficulties = list(panels)
    rows = max(len(slices) for slices in panels.values())
    figure, axes = plt.subplots(rows, len(difficulties), figsize=(panel_inches * len(difficulties), panel_inches * rows),
                                squeeze=False)
    channel = GENERATORS[name].channel_names[0]
    origin = "upper" if panels[difficulties[0]][0].where == "" else "lower"
    for column, difficulty in enumerate(difficulties):
        for row, panel in enumerate(panels[difficulty]):
            axis = axes[row][column]
            low, high = np.percentile(panel.image, [0.5, 99.5])
            axis.imshow(panel.image, cmap="gray", vmin=low, vmax=high, origin=origin, interpolation="nearest")
            for value in np.unique(panel.label[panel.label > 0]):
                axis.contour(panel.label == value, levels=[0.5], colors=OUTLINE_COLOURS[(int(value) - 1) % 5],
                             linewidths=0.8, origin=origin)
            axis.set_title(f"{difficulty} · {panel.case_id} {panel.where}".strip(), fontsize=7)
            axis.axis("off")
    figure.suptitle(f"{name} ({channel}, label outlined)", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    plt.close(figure)
    write_bytes(path, buffer.getvalue())
    return path


def render_gallery(out_dir: str | Path, names: Sequence[str] = SEGMENTATION, cases: int = 2,
                   options: dict[str, dict] | None = None) -> dict[str, dict[str, list[ExampleSlice]]]:
    """Render ``out_dir/<name>.png`` for every generator in ``names``; returns the panels (name → difficulty →
    slices), a difficulty absent where the generator does not offer it."""
    options = DOC_OPTIONS if options is None else options
    unknown = [name for name in names if name not in GENERATORS]
    if unknown:
        raise MedgapError(f"gallery: unknown generator(s) {', '.join(unknown)}; known: {', '.join(GENERATORS)}")
    shown = {}
    with tempfile.TemporaryDirectory(prefix="medgap-gallery-") as work:
        for name in names:
            panels = {}
            for difficulty in DIFFICULTIES:
                slices = example_slices(name, difficulty, cases, Path(work), options.get(name, {}))
                if slices is not None:
                    panels[difficulty] = slices
            render(name, panels, Path(out_dir) / f"{name}.png")
            shown[name] = panels
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medgap.data.synthetic.gallery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/images/datasets", help="folder of the PNGs (default: %(default)s)")
    parser.add_argument("--names", nargs="+", default=list(SEGMENTATION), help="generators (default: all four)")
    parser.add_argument("--cases", type=int, default=2, help="cases (rows) per generator (default: %(default)s)")
    parser.add_argument("--tiny", action="store_true", help="the smallest grids (fast; for a quick look)")
    args = parser.parse_args(argv)
    try:
        shown = render_gallery(args.out, args.names, args.cases, TINY_OPTIONS if args.tiny else DOC_OPTIONS)
    except MedgapError as error:
        print(f"error: {error}")
        return 2
    for name, panels in shown.items():
        print(f"{Path(args.out) / (name + '.png')}: {', '.join(panels)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
