"""``brain-tumour``: BraTS-like four-contrast glioma MRI (FLAIR, T1, T1c, T2) with BraTS labels.

What it imitates:
    Skull-stripped, co-registered multi-contrast brain MRI as distributed by BraTS 2018–2021: real brain
    anatomy from the MNI ICBM152 2009a template's grey/white-matter maps (shipped with nilearn, no download),
    warped per case by a random small affine and a smooth elastic deformation; relative tissue contrasts of each
    sequence (T1: WM > GM > CSF; T2: CSF > GM > WM; FLAIR: CSF suppressed, GM > WM; T1c ≈ T1 plus enhancing
    vessels); one glioma per case with labels 1 (oedema), 2 (necrotic / non-enhancing core) and 3 (enhancing
    tumour) — BraTS's 2, 1 and 4 renumbered as nnU-Net v2 does (its Dataset137), written as nnU-Net's region-based
    labels WT = {1, 2, 3}, TC = {2, 3}, ET = {3}, so one folder trains in medgap and nnU-Net — visible as in BraTS so that a missing sequence costs accuracy: the enhancing rim is
    bright only on T1c (on T1, T2 and FLAIR it looks like the necrotic core), oedema is bright on FLAIR and T2
    and slightly dark on T1/T1c, the necrotic core is dark on T1/T1c, bright on T2 and intermediate on FLAIR.
    ~15 % of cases are low-grade (oedema + non-enhancing core only). Oedema spreads along white matter, the
    tumour pushes the surrounding anatomy (mass effect), and every case has its own bias field, Rician noise,
    intensity scale per sequence, tumour site, size and shape.

What it does not imitate:
    Real glioma biology (infiltration patterns, multifocal tumours, haemorrhage, calcification), real inter-patient
    anatomy (all cases are warps of one average brain, which is smoother than an individual brain), scanner- or
    site-specific artefacts (motion, ghosting, Gibbs ringing), the 1 mm BraTS resolution (default 3 mm), skull-
    stripping errors. Intensities are only relatively realistic; absolute values mean nothing.

Difficulty:
    ``difficulty="easy"`` (default) is the above. ``"realistic"`` adds soft infiltrative borders, tumour/tissue
    intensity overlap, incomplete (patchy) rim enhancement, a stronger bias field, motion blur, ghosting and
    annotator-like boundary label noise (:class:`Realism`), so that the task has real BraTS's ambiguity; its
    strengths are calibrated so that a supervised U-Net trained to convergence lands near published
    fully-supervised BraTS Dice (docs/datasets.md, "Difficulty: easy and realistic").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medgap.data.synthetic.common import (
    Generator,
    SyntheticCase,
    annotator_label_noise,
    bias_field,
    check_difficulty,
    displacement_field,
    ellipsoid_radius,
    grid_affine,
    ghosting,
    grid_mm,
    infiltrative_fraction,
    jitter,
    largest_component,
    motion_blur,
    partial_volume,
    random_rotation,
    random_tubes,
    rician_noise,
    smooth_noise,
    transform_points,
)
from medgap.errors import MedgapError
from medgap.optional import require

CHANNELS = ("FLAIR", "T1", "T1c", "T2")
LABELS = {"background": 0, "edema": 1, "necrotic": 2, "enhancing": 3}  # the values painted into label maps
REGION_LABELS = {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}  # dataset.json (nnU-Net v2 regions)

# Mean intensity (0–1000 scale, before the per-case scale) of each tissue on FLAIR, T1, T1c, T2. The orderings,
# not the numbers, follow clinical MRI. The enhancing rim has no entry: on T1c it is ENHANCING_T1C, on the other
# sequences it copies the necrotic core (± a few %), which is what makes T1c necessary for ET.
INTENSITY = {
    #                 FLAIR    T1    T1c     T2
    "csf":           (120.0, 250.0, 260.0, 1000.0),
    "gm":            (640.0, 560.0, 580.0, 620.0),
    "wm":            (500.0, 800.0, 810.0, 420.0),
    "edema":         (960.0, 620.0, 640.0, 840.0),
    "necrotic":      (560.0, 260.0, 280.0, 920.0),
    "nonenhancing":  (760.0, 430.0, 440.0, 800.0),  # the solid core of a low-grade case (label 1)
    "skull":         (60.0, 90.0, 90.0, 70.0),
    "scalp":         (620.0, 900.0, 900.0, 720.0),
}
ENHANCING_T1C = 1350.0
TISSUES = ("gm", "wm", "csf")
HEAD_TISSUES = ("skull", "scalp")


@dataclass(frozen=True)
class BrainTumourOptions:
    """Keyword options of the generator.

    Attributes:
        spacing: isotropic output voxel size in mm (3 mm → 53×65×56 voxels; 2 mm → 78×96×83).
        skull_stripped: True (default, as BraTS) zeroes everything outside the brain; False adds a synthetic
            skull (dark) and scalp (fat-bright) shell around it.
        low_grade_fraction: share of cases without enhancing tumour or necrosis.
        difficulty: ``easy`` (default: clean, sharp compartments that a small network segments almost
            perfectly; the tests and the demo use it) or ``realistic`` (the effects of :class:`Realism`, which
            blur the evidence the way real scans and raters do).
    """

    spacing: float = 3.0
    skull_stripped: bool = True
    low_grade_fraction: float = 0.15
    difficulty: str = "easy"


@dataclass(frozen=True)
class Realism:
    """Strengths of the ``realistic`` difficulty's effects, tuned against BraTS (docs/datasets.md).

    The rater's noise sets the ceiling (what no segmenter can recover): ``label_noise_mm`` moves the tumour's
    outline and ``core_label_noise_mm`` the borders inside it, both smooth, so that the drawn border lies where
    the image does not show it; the other effects make the visible border itself harder to find. The label is
    resampled by nearest neighbour, so a border moves only where the displacement passes half a voxel: the
    ceiling falls steeply between 0.5 and 1 mm at 3 mm spacing (docs/datasets.md).

    Attributes:
        oedema_fade_mm: width of the ramp over which tumour signal fades into the surrounding white matter
            (:func:`~medgap.data.synthetic.common.infiltrative_fraction`): infiltrative, soft borders.
        border_wander_mm: std of the smooth shift between the visible and the labelled border.
        partial_volume_voxels: blur of the core compartments' occupancy (easy: 0.4).
        tumour_contrast: fraction of each tumour tissue's contrast to white matter that is kept (1 = easy), so
            oedema overlaps grey matter and the enhancing rim overlaps vessels and oedema.
        intensity_jitter: per-case spread of every tissue mean (easy: 0.08).
        texture: std of the multiplicative texture of normal tissue (easy: 0.03).
        bias_strength: std of the log bias field (easy: 0.12).
        motion_blur_voxels: blur along the phase-encoding direction.
        ghost_phase: k-space phase error (radians) that makes half-FOV ghosts.
        label_noise_mm: std of the displacement between the imaged and the drawn outline of the whole tumour.
        core_label_noise_mm: the same for the borders inside the tumour (core/oedema, rim/necrosis): raters
            agree less on the compartments than on the outline.
        enhancement_gaps: largest share of the enhancing rim that does not enhance (per case uniform in
            [0, this]); those parts are labelled non-enhancing core, and look like the rest of the rim on every
            sequence but T1c.
        rim_thickening: factor on the enhancing rim's thickness (easy: 2.5–6 mm, i.e. 1–2 voxels at 3 mm, where
            a one-voxel border shift loses half the rim; a 1 mm BraTS rim spans several voxels).
    """

    oedema_fade_mm: float = 1.0
    border_wander_mm: float = 1.0
    partial_volume_voxels: float = 0.6
    tumour_contrast: float = 0.9
    intensity_jitter: float = 0.10
    texture: float = 0.04
    bias_strength: float = 0.15
    motion_blur_voxels: float = 0.5
    ghost_phase: float = 0.2
    label_noise_mm: float = 0.75
    core_label_noise_mm: float = 0.85
    enhancement_gaps: float = 0.35
    rim_thickening: float = 2.0


REALISTIC = Realism()


@dataclass(frozen=True)
class _Atlas:
    """Tissue maps on the template grid and the output grid every case is sampled on."""

    maps: dict[str, np.ndarray]   # probability maps on the padded 1 or 2 mm template grid
    world_to_voxel: np.ndarray    # 4×4, template world mm → template voxel
    shape: tuple[int, int, int]   # output grid
    affine: np.ndarray            # output voxel → world mm (MNI space before the per-case warp)
    points: np.ndarray            # (3, X, Y, Z) world mm of every output voxel


def load_atlas(options: BrainTumourOptions) -> _Atlas:
    """Load the MNI152 template tissue maps from nilearn's bundled data and define the cropped output grid."""
    require("nilearn", "synth brain-tumour (the MNI152 template)")
    from nilearn import datasets  # heavy import (scikit-learn); only when a brain dataset is generated

    # The 1 mm maps load in ~0.1 s each; nilearn's resolution=2 resamples them on every call (~1 s each), so we
    # average 2×2×2 blocks ourselves when the output grid is coarse enough not to need 1 mm detail.
    template = datasets.load_mni152_template(resolution=1)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata(dtype=np.float32)
    affine = template.affine.copy()
    if options.spacing >= 2.0:
        gm, wm, mask = (_block_mean(array, 2) for array in (gm, wm, mask))
        affine[:3, 3] += affine[:3, :3] @ np.full(3, 0.5)   # a block's centre lies half a 1 mm voxel in
        affine[:3, :3] *= 2.0
    voxel_mm = float(abs(affine[0, 0]))
    # Pad so a skull/scalp shell fits and warps never sample past the template's edge.
    pad = int(np.ceil(20.0 / voxel_mm))
    gm, wm, mask = (np.pad(array, pad) for array in (gm, wm, mask))
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, pad)
    mask = mask > 0.5

    brain = ndimage.gaussian_filter(mask.astype(np.float32), 1.0 / voxel_mm)
    gm, wm = gm * brain, wm * brain
    csf = np.clip(brain - gm - wm, 0.0, 1.0)   # what the brain mask holds beyond GM and WM: ventricles, sulci
    maps = {"gm": gm, "wm": wm, "csf": csf}
    margin = 6.0
    if not options.skull_stripped:
        outside = ndimage.distance_transform_edt(~mask, sampling=voxel_mm)
        maps["skull"] = partial_volume((outside > 2.0) & (outside <= 8.0), 1.2 / voxel_mm)
        maps["scalp"] = partial_volume((outside > 8.0) & (outside <= 14.0), 1.2 / voxel_mm)
        margin = 18.0

    # Output grid: the brain's bounding box plus a margin, at the requested spacing, in template world mm.
    indices = np.argwhere(mask)
    corners = affine[:3, :3] @ np.stack([indices.min(0), indices.max(0)]).T + affine[:3, 3:4]
    low, high = corners.min(1) - margin, corners.max(1) + margin
    spacing = float(options.spacing)
    shape = tuple(int(np.ceil((h - l) / spacing)) + 1 for l, h in zip(low, high))
    origin = (low + high) / 2.0 - (np.asarray(shape) - 1) / 2.0 * spacing
    out_affine = grid_affine((spacing,) * 3, origin)
    return _Atlas(maps=maps, world_to_voxel=np.linalg.inv(affine), shape=shape, affine=out_affine,
                  points=grid_mm(shape, (spacing,) * 3, origin))


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor``³ blocks (the trailing partial block is dropped)."""
    shape = tuple(size // factor for size in array.shape)
    cropped = array[tuple(slice(0, size * factor) for size in shape)]
    return cropped.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))


def _sample(volume: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    return ndimage.map_coordinates(volume, coordinates, order=1, mode="constant", cval=0.0)


def make_case(atlas: _Atlas, options: BrainTumourOptions, rng: np.random.Generator) -> SyntheticCase:
    """One case: warp the atlas, grow a tumour, render four sequences. See the module docstring."""
    spacing = float(options.spacing)
    shape, points = atlas.shape, atlas.points
    centre = points.reshape(3, -1).mean(1)

    # Per-case anatomy: output mm → template mm = centre + M (x − centre) + shift + elastic(x).
    scale = rng.uniform(0.92, 1.08) * rng.uniform(0.96, 1.04, size=3)
    matrix = random_rotation(rng, 8.0) @ np.diag(scale)
    shift = rng.uniform(-4.0, 4.0, size=3)
    elastic = displacement_field(rng, shape, magnitude=2.5, correlation=40.0 / spacing)
    to_voxel = atlas.world_to_voxel[:3, :3]
    voxel_offset = to_voxel @ (centre + shift) + atlas.world_to_voxel[:3, 3]

    def template_voxels(output_points: np.ndarray, displacement: np.ndarray) -> np.ndarray:
        local = output_points - centre.reshape(3, 1, 1, 1).astype(np.float32)
        return transform_points(to_voxel @ matrix, local, voxel_offset) + transform_points(to_voxel, displacement)

    # Tumour site: mostly deep white matter, above the tentorium (gliomas in BraTS are mostly supratentorial).
    # Chosen on every second voxel: the site needs no full-resolution warp.
    coarse = (slice(None), slice(None, None, 2), slice(None, None, 2), slice(None, None, 2))
    coordinates = template_voxels(points[coarse], elastic[coarse])
    wm_before = _sample(atlas.maps["wm"], coordinates)
    brain_before = sum(_sample(atlas.maps[name], coordinates) for name in TISSUES)
    supratentorial = points[coarse][2] > -10.0
    sites = (wm_before > 0.7) if rng.random() < 0.8 else (brain_before > 0.95)
    candidates = np.argwhere(sites & supratentorial)
    if len(candidates) == 0:
        candidates = np.argwhere(brain_before > 0.5)
    site = 2 * candidates[rng.integers(len(candidates))]
    tumour_centre = points[(slice(None), *site)] + rng.uniform(-spacing, spacing, size=3)

    high_grade = rng.random() >= options.low_grade_fraction
    core_radius = rng.uniform(7.0, 22.0) if high_grade else rng.uniform(6.0, 18.0)
    core_axes = core_radius * rng.uniform(0.75, 1.25, size=3)
    core_rotation = random_rotation(rng, 180.0)
    edema_axes = core_axes * rng.uniform(1.3, 2.2) * rng.uniform(0.85, 1.15, size=3)
    edema_rotation = core_rotation @ random_rotation(rng, 30.0)
    edema_centre = tumour_centre + rng.normal(0.0, 0.2 * core_radius, size=3)

    # Mass effect: tissue near the tumour is sampled from closer to its centre, i.e. pushed outwards.
    push = rng.uniform(0.1, 0.35) * min(1.0, core_radius / 15.0)
    offset = points - tumour_centre.reshape(3, 1, 1, 1).astype(np.float32)
    distance = np.sqrt((offset * offset).sum(0))
    pulled = points - offset * (push * np.exp(-((distance / (1.8 * core_radius)) ** 2)))[None]
    coordinates = template_voxels(pulled, elastic)
    maps = {name: _sample(volume, coordinates) for name, volume in atlas.maps.items()}
    brain = sum(maps[name] for name in TISSUES)
    brain_mask = brain > 0.5

    # Irregular compartments: a lobulated core whose outer shell (2.5–6 mm) enhances, oedema around it.
    core_noise = smooth_noise(rng, shape, 0.5 * core_radius / spacing)
    core_shape = ellipsoid_radius(points, tumour_centre, core_axes, core_rotation) / (1.0 + 0.18 * core_noise)
    core = (core_shape < 1.0) & brain_mask
    edema_noise = smooth_noise(rng, shape, 0.4 * float(np.mean(edema_axes)) / spacing)
    edema_shape = ellipsoid_radius(points, edema_centre, edema_axes, edema_rotation) / (1.0 + 0.25 * edema_noise)
    # Oedema follows white matter (smoothed, so it forms fingers rather than specks) and spares CSF; next to the
    # core it is always present; islands cut off from the tumour are dropped.
    near_core = ndimage.binary_dilation(core, iterations=1)
    white = ndimage.gaussian_filter(maps["wm"] + 0.5 * maps["gm"] - maps["csf"], 1.0)
    edema = (edema_shape < 1.0) & ((white > 0.4) | near_core) & brain_mask
    edema = largest_component(edema | core) & ~core

    realism = REALISTIC if options.difficulty == "realistic" else None
    label = np.zeros(shape, dtype=np.uint8)
    label[edema] = LABELS["edema"]
    if high_grade:
        rim = rng.uniform(2.5, 6.0) * (1.0 + 0.3 * smooth_noise(rng, shape, 6.0 / spacing))
        if realism is not None:
            rim = rim * realism.rim_thickening
        solid = core_radius < 9.0 and rng.random() < 0.4      # small tumours may enhance throughout
        label[core] = LABELS["enhancing"]
        if not solid:
            label[core & (core_shape < 1.0 - rim / core_radius)] = LABELS["necrotic"]
    else:
        label[core] = LABELS["necrotic"]

    if realism is not None and high_grade:
        label = _enhancement_gaps(rng, label, rng.uniform(0.0, realism.enhancement_gaps), spacing)
    images = _render(rng, maps, brain, label, high_grade, options, realism)
    if realism is not None:
        label = _rater_label(rng, label, realism, spacing)
        label[~brain_mask] = 0
    return SyntheticCase(images=images, label=label, affine=atlas.affine)


def _rater_label(rng: np.random.Generator, label: np.ndarray, realism: Realism, spacing: float) -> np.ndarray:
    """The label as a rater draws it: the tumour's outline moved by ``label_noise_mm``, the borders inside it
    (core/oedema, rim/necrosis) by ``core_label_noise_mm``, independently, so that the whole tumour and its
    sub-regions can be calibrated apart (BRATS raters disagreed on the sub-regions by 74–85 % Dice; Menze et al.,
    IEEE TMI 2015, abstract)."""
    correlation = 8.0 / spacing
    whole = annotator_label_noise(rng, label > 0, realism.label_noise_mm / spacing, correlation)
    compartments = annotator_label_noise(rng, label, realism.core_label_noise_mm / spacing, correlation)
    return np.where(whole, np.maximum(compartments, LABELS["edema"]), 0).astype(label.dtype)


def _enhancement_gaps(rng: np.random.Generator, label: np.ndarray, fraction: float, spacing: float) -> np.ndarray:
    """The enhancing rim with ``fraction`` of it turned into non-enhancing core, in patches ~12 mm wide.

    Real glioblastoma rims are irregular and incomplete; where the rim does not enhance, the core's outer shell is
    non-enhancing tumour (label 2). Since the rendered rim differs from the core only on T1c, only T1c shows where
    the gaps are: without it the enhancing tumour cannot be read off the core's shape.
    """
    rim = label == LABELS["enhancing"]
    if fraction <= 0.0 or not rim.any():
        return label
    field = smooth_noise(rng, label.shape, 12.0 / spacing)
    gaps = rim & (field < np.quantile(field[rim], fraction))
    label = label.copy()
    label[gaps] = LABELS["necrotic"]
    return label


def _render(rng: np.random.Generator, maps: dict[str, np.ndarray], brain: np.ndarray, label: np.ndarray,
            high_grade: bool, options: BrainTumourOptions, realism: Realism | None = None) -> list[np.ndarray]:
    """The four sequences from tissue maps and tumour labels: mixture of tissue means, textures, enhancing
    vessels on T1c, bias field, scale and Rician noise; zero outside the head (or brain, if skull-stripped).
    With ``realism``, also soft infiltrative borders, reduced tumour contrast and motion artefacts."""
    shape, spacing = label.shape, float(options.spacing)
    spread = 0.08 if realism is None else realism.intensity_jitter
    means = {name: jitter(rng, dict(zip(CHANNELS, values)), spread) for name, values in INTENSITY.items()}
    enhancing_t1c = ENHANCING_T1C * rng.uniform(0.85, 1.15)
    # On every sequence but T1c the enhancing rim is indistinguishable from the core it surrounds.
    means["enhancing"] = {c: means["necrotic"][c] * rng.uniform(0.93, 1.08) for c in CHANNELS}
    means["enhancing"]["T1c"] = enhancing_t1c
    core_name = "necrotic" if high_grade else "nonenhancing"
    if realism is not None:
        means = _overlap_tumour_intensities(means, realism.tumour_contrast)

    pv_sigma = 0.4 if realism is None else realism.partial_volume_voxels
    fractions = {name: partial_volume(label == LABELS[name], pv_sigma) for name in ("edema", "necrotic", "enhancing")}
    if realism is not None:
        # Oedema signal covers the whole tumour (the core is painted over it) and fades out across its border.
        wander = realism.border_wander_mm / spacing * smooth_noise(rng, shape, 6.0 / spacing)
        fractions["edema"] = infiltrative_fraction(label > 0, realism.oedema_fade_mm / spacing, wander)
    edema_strength = np.clip(0.9 + 0.1 * smooth_noise(rng, shape, 10.0 / spacing), 0.6, 1.0) * fractions["edema"]
    core_fraction = fractions["necrotic"] + fractions["enhancing"]
    texture = 0.03 if realism is None else realism.texture
    tissue_texture = 1.0 + texture * smooth_noise(rng, shape, 8.0 / spacing)
    tumour_texture = 1.0 + 0.10 * smooth_noise(rng, shape, 6.0 / spacing)
    necrotic_texture = 1.0 + 0.15 * smooth_noise(rng, shape, 5.0 / spacing)
    # Enhancing vessels in the sulci (most cases).
    vessels = np.zeros(shape, dtype=np.float32)
    if rng.random() < 0.7:
        vessels = random_tubes(rng, shape, 14.0 / spacing) * ((maps["csf"] + maps["gm"]) > 0.5)
        vessels *= rng.uniform(0.5, 1.0)

    head = brain if options.skull_stripped else brain + maps["skull"] + maps["scalp"]
    head_mask = head > 0.4
    tissues = TISSUES if options.skull_stripped else TISSUES + HEAD_TISSUES
    images = []
    for channel in CHANNELS:
        normal = sum(maps[name] * means[name][channel] for name in tissues) * tissue_texture
        image = normal * (1.0 - edema_strength) + edema_strength * means["edema"][channel] * tumour_texture
        image = (image * (1.0 - core_fraction)
                 + fractions["necrotic"] * means[core_name][channel] * necrotic_texture
                 + fractions["enhancing"] * means["enhancing"][channel] * tumour_texture)
        if channel == "T1c":
            image = image + 450.0 * vessels
        elif channel in ("T2", "FLAIR"):
            image = image * (1.0 - 0.45 * vessels)   # flow void
        scale = rng.uniform(0.6, 1.6)
        bias = 0.12 if realism is None else realism.bias_strength
        image = image * bias_field(rng, shape, bias, 80.0 / spacing) * scale
        if realism is not None:
            phase_axis = int(rng.integers(2))   # in-plane phase encoding: left-right or front-back
            image = motion_blur(image, realism.motion_blur_voxels, phase_axis)
            image = ghosting(image, realism.ghost_phase * rng.uniform(0.0, 1.0), phase_axis)
        image = rician_noise(rng, image.astype(np.float32), rng.uniform(0.01, 0.045) * 800.0 * scale)
        image[~head_mask] = 0.0
        images.append(image.astype(np.float32))
    return images


def _overlap_tumour_intensities(means: dict[str, dict[str, float]], contrast: float) -> dict[str, dict[str, float]]:
    """Tumour tissue means pulled towards white matter's, keeping ``contrast`` of their difference: real oedema
    overlaps grey matter and an enhancing rim overlaps vessels, so intensity alone no longer decides the label."""
    pulled = dict(means)
    for name in ("edema", "necrotic", "nonenhancing", "enhancing"):
        pulled[name] = {c: means["wm"][c] + contrast * (value - means["wm"][c]) for c, value in means[name].items()}
    return pulled


def _build(options: BrainTumourOptions):
    if not options.spacing > 0:
        raise MedgapError(f"synth brain-tumour: spacing must be positive, got {options.spacing}")
    check_difficulty("brain-tumour", options.difficulty)
    atlas = load_atlas(options)
    return lambda rng: make_case(atlas, options, rng)


GENERATOR = Generator(
    name="brain-tumour",
    case_prefix="BrainTumour",
    dataset_name="SyntheticBrainTumour",
    description="Synthetic BraTS-like glioma MRI (FLAIR, T1, T1c, T2) on the MNI152 template; see docs/datasets.md",
    channel_names=CHANNELS,
    labels=REGION_LABELS,
    regions_class_order=(1, 2, 3),
    options=BrainTumourOptions,
    build=_build,
    default_cases=40,
    version=3,  # 3: nnU-Net v2 region labels (were BraTS 1/2/4 with a "regions" key)
    difficulty_versions={"realistic": 6},  # 4: realistic tuned against BraTS (issue 23); 5: recalibrated on the
    # U-Net run (thicker rim, less rater noise inside the tumour than on its outline); 6: oedema fades over 1 mm
    # and keeps 0.9 of its contrast (version 5's whole tumour was 5 points too hard); easy unchanged
    reference=("Anatomy: MNI ICBM152 2009a template and tissue maps (Fonov et al., NeuroImage 2011; "
               "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological "
               "Institute, McGill University), as shipped with nilearn"),
)
