"""``chest-xray-text``: QaTa-COV19-like chest radiographs with infection masks and a report per image (AMVLM).

What it imitates:
    A frontal chest radiograph (PA view) as LViT uses QaTa-COV19: two dark lung fields in a brighter body,
    a bright mediastinum/heart shadow between them, curved ribs across the lung fields, clavicles, a smooth
    exposure gradient and noise. 0–4 infection regions (ground-glass opacities: soft, irregular brightening)
    are placed in distinct lung zones (upper / middle / lower × left / right); the label is the infection mask.
    The report is generated *from the mask* in LViT's QaTa template, e.g. "Bilateral pulmonary infection, two
    infected areas, upper left lung and lower right lung.", so the text tells where and how many lesions there
    are. Each image gets several equivalent phrasings (template, reordered zones, synonyms) -- the
    "alignment multiplicity" AMVLM is about -- and a fraction ``vague_fraction`` of images only gets a vague
    report ("Patchy opacities in the lungs.") that says neither where nor how many.

What it does not imitate:
    Real anatomy (heart shape, diaphragm domes, costophrenic angles), devices, lateral views, COVID-specific
    patterns; the reports have no negations beyond "no infection".

Difficulty:
    ``difficulty="easy"`` (default) is the above: small blobs with sharp borders, cut at the edge of their zone.
    ``"realistic"`` adds the ambiguity of real QaTa-COV19 radiographs (:class:`Realism`;
    docs/datasets.md): larger, confluent lesions as in QaTa, drawn as diffuse ground-glass opacities whose signal
    fades across a wandering border, bronchovascular markings and denser ribs and heart shadow over them, patient
    positioning and anatomy variation, varying exposure, film grain, and masks drawn as another annotator would.
    Every realistic image is infected, as every QaTa-COV19 image is (``easy`` keeps 15 % normal images). The
    reports are generated from the same zones, so the text still says where and how many lesions there are.
    Calibrated on the AMVLM reproduction's ``small`` data (400 images of 64²): the supervised U-Net on all 240
    training labels converges to 77–78 test Dice, against 79.02 for the U-Net on QaTa-COV19 (docs/datasets.md).

Orientation: radiological convention -- the patient's right lung is on the image's left (column 0 side).
Arrays are ``(H, W)`` rows top→bottom, written as 8-bit grayscale PNG.

Layout::

    imagesTr/CXR_000_0000.png    labelsTr/CXR_000.png (0/1)    textTr/CXR_000.txt (the report, one line)
    textTr/CXR_000.alt.txt       every equivalent phrasing of that report, one per line (the first is CXR_000.txt)
    imagesTs/ labelsTs/ textTs/  held-out cases, same layout
    dataset.json                 "text": true, labels background/infection, file_ending .png

``CASE.txt`` is what training reads (one report per image, as LViT); ``CASE.alt.txt`` feeds the uncertainty
analysis (one image vs its equivalent reports) and is ignored by the loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medgap.atomic import write_text
from medgap.data.dataset_json import write_dataset_json
from medgap.data.io import write_png
from medgap.data.synthetic.common import (TEST_STREAM, TRAIN_STREAM, _reuse_existing, annotator_label_noise,
                                          case_name, case_rng, check_difficulty, displacement_field,
                                          infiltrative_fraction, random_rotation, random_tubes, smooth_noise)
from medgap.errors import MedgapError

VERSION = 2  # 2: held-out cases named CXR_test000 (they reused training names)
# The output version of one difficulty where it moved on without the others (as Generator.difficulty_versions):
# 3: realistic calibrated against the U-Net on QaTa-COV19, every image infected (issue 23); easy unchanged.
DIFFICULTY_VERSIONS = {"realistic": 3}
LEVELS = ("upper", "middle", "lower")
SIDES = ("right", "left")  # the patient's side; "right" is on the image's left (radiological convention)
NUMBERS = ("no", "one", "two", "three", "four")
VAGUE_REPORTS = ("Pulmonary infection present.", "Patchy opacities in the lungs.",
                 "Findings consistent with pneumonia.", "Lung infection, extent unclear.")
NORMAL_REPORTS = ("No lung infection found.", "No infected area, lungs are clear.",
                  "Normal lungs without pulmonary infection.", "Clear lung fields, no infection.")


@dataclass
class ChestXrayTextOptions:
    """Keyword options of ``generate``.

    Attributes:
        size: image side in pixels (square); 64 keeps pretraining and SSMIS CPU-sized.
        max_regions: the most infection regions per image (0..6; QaTa's template goes to four).
        empty_fraction: share of images without infection; ``None`` (default) is 0.15 for ``easy`` and 0 for
            ``realistic`` (every QaTa-COV19 image shows infection; an empty mask scores per-image Dice 0 for any
            false positive, which dominated the first calibration's test score).
        vague_fraction: share of images whose report is vague (no location, no count).
        difficulty: ``easy`` (default: small, clearly brighter blobs; the tests and the demo use it) or
            ``realistic`` (the effects of :class:`Realism`; compared with the U-Net on QaTa-COV19 in
            docs/datasets.md).
    """

    size: int = 64
    max_regions: int = 4
    empty_fraction: float | None = None
    vague_fraction: float = 0.1
    difficulty: str = "easy"


@dataclass(frozen=True)
class Realism:
    """Strengths of the ``realistic`` difficulty's effects; lengths are fractions of the image side, so the
    difficulty does not depend on ``size``. The calibration that chose them is in docs/datasets.md.

    Attributes:
        lesion_scale: lesion radii × this (easy 1): real COVID-19 opacities cover much of a lung zone.
        confluent: a lesion may spread beyond its zone over the rest of its lung (easy: cut at the zone's edge).
        lesion_roughness: amplitude of the smooth noise that makes a lesion's outline irregular (easy 0.3).
        opacity_contrast: (lowest, highest) brightening of a lesion's core (easy 0.18–0.3).
        opacity_fade: width of the ramp over which the opacity fades across the drawn border
            (:func:`~medgap.data.synthetic.common.infiltrative_fraction`): vague borders.
        border_wander: std of the smooth shift between the visible and the drawn border.
        opacity_patchiness: std of the multiplicative texture inside a lesion (easy 0.3 × a broad field).
        rib_contrast: brightness of a rib over the lung (easy 0.10).
        vessel_contrast: brightness of the bronchovascular markings in the lungs (easy: none).
        heart_scale: (smallest, largest) heart shadow size relative to easy (cardiomegaly hides the lower left
            lung).
        positioning_degrees: patient rotation (uniform ± this).
        positioning_shift: patient shift (uniform ± this, per axis).
        anatomy_warp: std of a smooth elastic displacement of the whole chest (anatomy variation).
        exposure_gamma: under-/over-exposure: intensities to the power exp(U(± this)).
        exposure_gradient: strength of a linear exposure gradient across the film in a random direction.
        noise_std: std of the white (quantum) noise (easy 0.03), plus half as much film grain.
        label_noise: std of the boundary displacement between the imaged lesion and the drawn mask.
    """

    lesion_scale: float = 2.2
    confluent: bool = True
    lesion_roughness: float = 0.35
    opacity_contrast: tuple[float, float] = (0.18, 0.30)
    opacity_fade: float = 0.01
    border_wander: float = 0.01
    opacity_patchiness: float = 0.25
    rib_contrast: float = 0.11
    vessel_contrast: float = 0.04
    heart_scale: tuple[float, float] = (0.9, 1.35)
    positioning_degrees: float = 5.0
    positioning_shift: float = 0.03
    anatomy_warp: float = 0.02
    exposure_gamma: float = 0.2
    exposure_gradient: float = 0.12
    noise_std: float = 0.03
    label_noise: float = 0.006


REALISTIC = Realism()
EASY_EMPTY_FRACTION = 0.15  # easy's share of normal images, as before the option could be None


def resolve_options(options: ChestXrayTextOptions) -> ChestXrayTextOptions:
    """``options`` with the difficulty's defaults filled in (``empty_fraction``)."""
    if options.empty_fraction is not None:
        return options
    return replace(options, empty_fraction=0.0 if options.difficulty == "realistic" else EASY_EMPTY_FRACTION)


def zone_name(level: str, side: str) -> str:
    return f"{level} {side} lung"


def report_phrasings(zones: list[tuple[str, str]], rng: np.random.Generator, vague: bool = False) -> list[str]:
    """Equivalent reports for the infected ``zones`` [(level, side), ...]; the first is LViT's QaTa template.

    Every phrasing names the same zones and count (they differ in order, wording and synonyms), except when
    ``vague``: then all phrasings are vague. No zone → the normal reports.
    """
    if not zones:
        return list(NORMAL_REPORTS)
    if vague:
        return list(VAGUE_REPORTS)
    count = len(zones)
    sides = {side for _, side in zones}
    extent = "Bilateral" if len(sides) == 2 else "Unilateral"
    areas = f"{NUMBERS[count] if count < len(NUMBERS) else count} infected area{'s' if count > 1 else ''}"
    names = [zone_name(level, side) for level, side in zones]
    shuffled = [names[i] for i in rng.permutation(count)]
    zones_text = " and ".join(names)
    lesions = f"{NUMBERS[count] if count < len(NUMBERS) else count} lesion{'s' if count > 1 else ''}"
    where = "both lungs" if len(sides) == 2 else f"the {next(iter(sides))} lung"
    return [
        f"{extent} pulmonary infection, {areas}, {zones_text}.",
        f"{areas.capitalize()} of pulmonary infection in {' and '.join(shuffled)}.",
        f"Infection of {where} with {lesions}: {', '.join(f'{s} {l} zone' for l, s in zones)}.",
        f"{extent} lung infection showing {areas} located in the {' and the '.join(shuffled)}.",
    ]


def _lung_fields(size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """Soft lung occupancy ``(H, W)`` in [0, 1] and the two hard lung masks (image-left first = patient right)."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / size
    masks = []
    for centre_col in (0.3, 0.7):
        centre = (rng.uniform(0.47, 0.53), centre_col + rng.uniform(-0.02, 0.02))
        radii = (rng.uniform(0.30, 0.34), rng.uniform(0.13, 0.16))
        radius = np.sqrt(((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2)
        # flatten the bottom a little (diaphragm) and keep the apex rounded
        masks.append((radius < 1.0) & (rows < centre[0] + 0.9 * radii[0]))
    lungs = ndimage.gaussian_filter((masks[0] | masks[1]).astype(np.float32), size / 64)
    return lungs, masks


def _zone_mask(lung: np.ndarray, level: int) -> np.ndarray:
    """The third ``level`` (0 upper .. 2 lower) of one lung mask, split by its own row extent."""
    rows = np.flatnonzero(lung.any(1))
    top, bottom = rows.min(), rows.max() + 1
    edges = np.linspace(top, bottom, 4).round().astype(int)
    zone = np.zeros_like(lung)
    zone[edges[level]:edges[level + 1]] = lung[edges[level]:edges[level + 1]]
    return zone


def make_case(options: ChestXrayTextOptions, rng: np.random.Generator, realism: Realism | None = None):
    """One radiograph: ``(image uint8 (H, W), mask uint8 (H, W), phrasings list[str])``.

    ``options.difficulty == "realistic"`` renders the same kind of chest with the effects of :class:`Realism`
    (``realism``, default :data:`REALISTIC`); ``easy`` draws nothing else from ``rng``, so its output is what it
    was before the option existed.
    """
    options = resolve_options(options)
    if options.difficulty != "realistic":
        realism = None
    elif realism is None:
        realism = REALISTIC
    size = options.size
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / size
    lungs, lung_masks = _lung_fields(size, rng)
    body = np.exp(-((cols - 0.5) / 0.48) ** 8)                       # soft body outline, dark air at the sides
    image = 0.55 * body + 0.1 * smooth_noise(rng, (size, size), size / 4) * body
    image -= 0.38 * lungs                                            # aerated lungs are dark
    mediastinum = np.exp(-((cols - 0.5) / rng.uniform(0.07, 0.09)) ** 2) * (rows > 0.15)
    heart_scale = 1.0 if realism is None else rng.uniform(*realism.heart_scale)
    heart = np.exp(-(((rows - 0.68) / (0.16 * heart_scale)) ** 2 + ((cols - 0.55) / (0.15 * heart_scale)) ** 2))
    image += 0.35 * mediastinum + 0.25 * heart
    rib_contrast = 0.10 if realism is None else realism.rib_contrast
    for rib in range(8):                                             # curved ribs across both lungs
        y0 = 0.18 + rib * 0.085 + rng.uniform(-0.01, 0.01)
        curve = y0 + 0.12 * (np.abs(cols - 0.5) - 0.25) ** 2 * 4 - 0.04 * np.abs(cols - 0.5)
        image += rib_contrast * np.exp(-((rows - curve) / 0.012) ** 2) * lungs
    clavicle = 0.12 + 0.1 * np.abs(cols - 0.5)
    image += 0.15 * np.exp(-((rows - clavicle) / 0.012) ** 2) * (np.abs(cols - 0.5) > 0.05) * body
    if realism is not None:
        image += vessel_markings(rng, lungs, realism.vessel_contrast)

    # Infections: distinct zones, each a soft irregular blob inside its zone.
    lesion_scale = 1.0 if realism is None else realism.lesion_scale
    roughness = 0.3 if realism is None else realism.lesion_roughness
    max_regions = int(np.clip(options.max_regions, 0, 6))
    count = 0 if (rng.random() < options.empty_fraction or max_regions == 0) else int(rng.integers(1, max_regions + 1))
    all_zones = [(level, side) for side in range(2) for level in range(3)]
    chosen = sorted(rng.choice(len(all_zones), size=count, replace=False).tolist()) if count else []
    mask = np.zeros((size, size), bool)
    zones = []
    for index in chosen:
        level, side = all_zones[index]
        zone = _zone_mask(lung_masks[side], level)
        points = np.argwhere(ndimage.binary_erosion(zone, iterations=max(1, size // 32)))
        if len(points) == 0:
            continue
        centre = points[rng.integers(len(points))] / size
        radii = rng.uniform(0.05, 0.09, 2)
        if realism is not None:
            radii = radii * lesion_scale
        radius = np.sqrt(((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2)
        # Realistic lesions may spread from their zone over the rest of the lung, as confluent opacities do; the
        # report names the zone they start in.
        extent = zone if realism is None or not realism.confluent else lung_masks[side]
        blob = (radius < 1.0 + roughness * smooth_noise(rng, (size, size), size / 10)) & extent
        if blob.sum() < 4:
            continue
        mask |= blob
        zones.append((LEVELS[level], SIDES[side]))
    if realism is None:
        opacity = ndimage.gaussian_filter(mask.astype(np.float32), size / 80) * rng.uniform(0.18, 0.3)
        image += opacity * (0.7 + 0.3 * smooth_noise(rng, (size, size), size / 16))
        image += rng.normal(0.0, 0.03, image.shape)
    else:
        image += ground_glass_opacity(rng, mask, realism)
        image, mask = patient_positioning(rng, image, mask, realism)
        image = exposure(rng, image, realism)
        image = image + rng.normal(0.0, realism.noise_std, image.shape) \
            + 0.5 * realism.noise_std * smooth_noise(rng, image.shape, 1.5)
        mask = annotator_label_noise(rng, mask.astype(np.uint8), realism.label_noise * size, size / 8).astype(bool)
    image = np.clip(image, 0.0, 1.0)
    vague = rng.random() < options.vague_fraction
    phrasings = report_phrasings(zones, rng, vague)
    # The report training sees is one of the equivalent phrasings, drawn per image: across the data set the same
    # finding is worded in several ways, as in real reports.
    first = int(rng.integers(len(phrasings)))
    phrasings = [phrasings[first]] + phrasings[:first] + phrasings[first + 1:]
    return np.round(image * 255).astype(np.uint8), mask.astype(np.uint8), phrasings


# ----------------------------------------------------------------------------------------------- realistic effects
def vessel_markings(rng: np.random.Generator, lungs: np.ndarray, contrast: float) -> np.ndarray:
    """Bronchovascular markings ``(H, W)``: thin winding bright lines in the lungs, denser towards the hila (the
    image centre), so normal structures cross and border the opacities."""
    size = lungs.shape[0]
    cols = np.arange(size, dtype=np.float32)[None, :] / size
    towards_hila = np.exp(-((np.abs(cols - 0.5) - 0.1) / 0.2) ** 2)
    return contrast * random_tubes(rng, lungs.shape, size / 6, thickness=0.15) * lungs * (0.4 + 0.6 * towards_hila)


def ground_glass_opacity(rng: np.random.Generator, mask: np.ndarray, realism: Realism) -> np.ndarray:
    """The brightening ``(H, W)`` that infected lung adds: patchy, and fading across a border that wanders around
    the drawn one, so where the lesion ends is a judgement, as on real radiographs."""
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.float32)
    size = mask.shape[0]
    wander = realism.border_wander * size * smooth_noise(rng, mask.shape, size / 10)
    occupancy = infiltrative_fraction(mask, realism.opacity_fade * size, wander)
    patches = np.clip(1.0 + realism.opacity_patchiness * smooth_noise(rng, mask.shape, size / 12), 0.0, None)
    return rng.uniform(*realism.opacity_contrast) * occupancy * patches


def patient_positioning(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray,
                        realism: Realism) -> tuple[np.ndarray, np.ndarray]:
    """Rotate, shift and elastically warp the whole chest, image and mask together: patients stand differently
    and their anatomy differs. The zones the report names stay where they were (a few degrees, a few %)."""
    size = image.shape[0]
    centre = (size - 1) / 2.0
    matrix = random_rotation(rng, realism.positioning_degrees, ndim=2)
    shift = rng.uniform(-realism.positioning_shift, realism.positioning_shift, 2) * size
    grid = np.indices(image.shape, dtype=np.float32) - centre
    coordinates = np.tensordot(matrix.astype(np.float32), grid, axes=1) + centre + shift.reshape(2, 1, 1)
    coordinates += displacement_field(rng, image.shape, realism.anatomy_warp * size, size / 4)
    warped = ndimage.map_coordinates(image, coordinates, order=1, mode="nearest")
    warped_mask = ndimage.map_coordinates(mask.astype(np.uint8), coordinates, order=0, mode="constant") > 0
    return warped, warped_mask


def exposure(rng: np.random.Generator, image: np.ndarray, realism: Realism) -> np.ndarray:
    """Film exposure: a power law (under-exposed films are dark and flat, over-exposed ones wash the lungs out)
    and a linear gradient across the film in a random direction."""
    gamma = np.exp(rng.uniform(-realism.exposure_gamma, realism.exposure_gamma))
    size = image.shape[0]
    angle = rng.uniform(0.0, 2.0 * np.pi)
    rows, cols = np.indices(image.shape, dtype=np.float32) / size - 0.5
    gradient = realism.exposure_gradient * (np.cos(angle) * rows + np.sin(angle) * cols)
    return np.clip(image, 0.0, 1.0) ** gamma + gradient


class ChestXrayTextGenerator:
    """Registry entry for ``medgap synth chest-xray-text`` (PNG images + masks + reports)."""

    name = "chest-xray-text"
    case_prefix = "CXR"
    channel_names = ("xray",)
    description = "QaTa-COV19-like chest radiographs, infection masks, LViT-template reports with equivalent phrasings"
    default_cases = 200
    default_test_cases = 20

    def case_id(self, index: int, subset: str = "Tr") -> str:
        return case_name(self.case_prefix, index, subset)

    def generate(self, out_dir: str | os.PathLike, cases: int | None = None, seed: int = 0,
                 test_cases: int | None = None, exist_ok: bool = False,
                 progress: Callable[[int, int], Any] | None = None, **options: Any) -> Path:
        """Write the data set (see the module docstring); case ``k`` depends only on ``(seed, k)``."""
        try:
            resolved = ChestXrayTextOptions(**options)
        except TypeError as error:
            raise MedgapError(f"synth {self.name}: bad option ({error})") from None
        check_difficulty(self.name, resolved.difficulty)
        resolved = resolve_options(resolved)
        cases = self.default_cases if cases is None else int(cases)
        test_cases = self.default_test_cases if test_cases is None else int(test_cases)
        if cases < 1 or test_cases < 0 or resolved.size < 32:
            raise MedgapError(f"synth {self.name}: need cases >= 1, test_cases >= 0, size >= 32")
        out_dir = Path(out_dir)
        synthetic = {"generator": self.name, "version": DIFFICULTY_VERSIONS.get(resolved.difficulty, VERSION),
                     "cases": cases, "seed": int(seed), "test_cases": test_cases, "options": asdict(resolved)}
        if _reuse_existing(out_dir, synthetic, exist_ok):
            return out_dir
        total, done = cases + test_cases, 0
        for stream, subset, count in ((TRAIN_STREAM, "Tr", cases), (TEST_STREAM, "Ts", test_cases)):
            for index in range(count):
                image, mask, phrasings = make_case(resolved, case_rng(seed, stream, index))
                case_id = self.case_id(index, subset)
                write_png(out_dir / f"images{subset}" / f"{case_id}_0000.png", image)
                write_png(out_dir / f"labels{subset}" / f"{case_id}.png", mask)
                write_text(out_dir / f"text{subset}" / f"{case_id}.txt", phrasings[0] + "\n")
                write_text(out_dir / f"text{subset}" / f"{case_id}.alt.txt", "\n".join(phrasings) + "\n")
                done += 1
                if progress is not None:
                    progress(done, total)
        write_dataset_json(out_dir, {
            "name": "SyntheticChestXrayText", "description": self.description,
            "channel_names": {"0": "xray"}, "labels": {"background": 0, "infection": 1},
            "file_ending": ".png", "numTraining": cases, "text": True, "synthetic": synthetic,
            "reference": "Report template: LViT (Li et al., IEEE TMI 2023) QaTa-COV19 text annotations",
        })
        return out_dir


GENERATOR = ChestXrayTextGenerator()
