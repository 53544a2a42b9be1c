"""``atrium-3d``: LA-challenge-like 3-D MRI of the left atrium, one channel, label 1 = left atrium.

What it imitates:
    The 2018 Atrial Segmentation Challenge volumes as used by SS-Net (cropped around the atrium, ~1 mm voxels):
    an irregular ellipsoidal left-atrial blood pool with 2–4 pulmonary-vein stubs (left common trunk sometimes)
    and an appendage, in random pose, size and deformation. The label covers the atrium body, the proximal vein
    stubs and the appendage only; the veins continue unlabelled into the lungs with the same intensity, and
    other bright blood pools surround it (left ventricle below, right atrium with the venae cavae, ascending and
    descending aorta, pulmonary trunk and arteries), separated from it by thin walls, so the task needs shape
    and context rather than a threshold. Dark myocardium, mediastinal tissue with bright fat, dark lungs with
    small vessels, the vertebral body; per-case intensity curve (gamma), tissue means, coil bias field, scale
    and Rician noise.

What it does not imitate:
    Late-gadolinium enhancement of the atrial wall (scar), the real variability of vein anatomy, valves, motion
    and respiratory blurring, the LA challenge's anisotropic 0.625 × 0.625 × 1.25 mm grid (default 1.25 mm
    isotropic), and the body outline (the field of view lies inside the chest, as in the cropped challenge data).
    Intensities are only relatively realistic.

Difficulty:
    ``difficulty="easy"`` (default) is the above. ``"realistic"`` adds what makes the challenge's GE-MRI hard
    (:class:`Realism`; docs/datasets.md): low blood-pool/wall contrast, heterogeneous enhancement with bright
    (enhanced) wall patches, veins that continue at the stub's calibre so the labelled cut-off is the annotator's
    choice, an open mitral orifice with no wall at the labelled plane, stronger partial volume, respiratory blur,
    noise, boundary label noise and more inter-case anatomy variation. The target is the published
    fully-supervised LA Dice (SS-Net, Table 1: 91.47 % with all 80 scans); on the SS-Net reproduction's ``small``
    grid (3 mm) even ``easy`` converges about 6 points under it, so the strengths were set from converged runs to
    cost a few points more than ``easy`` there (85.7 → 81.3) (docs/datasets.md, issue 23).
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
    centred_origin,
    check_difficulty,
    dilate_mm,
    displacement_field,
    ellipsoid_radius,
    grid_affine,
    grid_mm,
    jitter,
    largest_component,
    motion_blur,
    random_rotation,
    random_tubes,
    rician_noise,
    segment_distance,
    smooth_noise,
    transform_points,
    unit,
)
from medgap.errors import MedgapError

# Mean intensities (0–1000 before the per-case curve and scale) of a gadolinium-enhanced 3-D GRE.
INTENSITY = {"blood": 620.0, "wall": 230.0, "tissue": 330.0, "fat": 700.0, "lung": 45.0, "marrow": 480.0}

# Pulmonary-vein ostia directions in the patient frame (x right, y anterior, z superior): right and left,
# superior and inferior veins leave the atrium posterolaterally.
VEIN_DIRECTIONS = {
    "right_superior": (1.0, -0.6, 0.45), "right_inferior": (1.0, -0.5, -0.45),
    "left_superior": (-1.0, -0.6, 0.45), "left_inferior": (-1.0, -0.5, -0.45),
}


@dataclass(frozen=True)
class AtriumOptions:
    """Keyword options of the generator.

    Attributes:
        spacing: isotropic voxel size in mm.
        shape: voxels per axis; the field of view is ``shape × spacing`` mm (default 120 × 120 × 80 mm).
        difficulty: ``easy`` (default: what earlier versions wrote; the tests and the demo use it) or
            ``realistic`` (the effects of :class:`Realism`, aimed at the real LA challenge's difficulty).
    """

    spacing: float = 1.25
    shape: tuple[int, int, int] = (96, 96, 64)
    difficulty: str = "easy"


@dataclass(frozen=True)
class Realism:
    """Strengths of the ``realistic`` difficulty's effects (how they were chosen: docs/datasets.md).

    Attributes:
        anatomy_variation: factor on the spread of pose, size, position, elastic deformation and vein directions
            (1 = easy): more inter-case anatomy variation.
        blood_contrast: fraction of the wall's and mediastinal tissue's contrast to blood that is kept (1 = easy):
            on GE-MRI the blood pool is only moderately brighter than the atrial wall.
        enhancement_heterogeneity: std of the smooth multiplicative variation of blood signal (inflow, uneven
            contrast), features ~20 mm wide.
        enhanced_wall_fraction: share of the atrial wall that enhances (fibrosis) and is as bright as the blood
            next to it, so the border vanishes locally.
        vein_cutoff_mm: std of the annotator's choice of where a pulmonary vein stops being atrium; the imaged vein
            continues at the stub's calibre (easy: it narrows to 85 % where the label stops, a visible cue).
        mitral_orifice_mm: radius of the open mitral orifice: blood continues from the atrium into the ventricle
            with no wall, and the label stops at the annulus plane.
        mitral_plane_mm: std of the annotator's placement of that plane.
        partial_volume_voxels: blur of the tissue boundaries (easy: 0.6).
        respiratory_blur_mm: blur along the superior-inferior axis (free-breathing, navigator-gated acquisition).
        bias_strength: std of the log coil bias field (easy: 0.3, which over the 12 cm field of view can leave
            the atrium's blood darker than the tissue around it, as no LA scan shows; realistic uses less).
        noise_factor: factor on the Rician noise level (easy: 1, i.e. 2–7 % of blood).
        label_noise_mm: std of the smooth displacement between the imaged and the drawn atrium border.
    """

    anatomy_variation: float = 1.1
    blood_contrast: float = 0.85
    enhancement_heterogeneity: float = 0.06
    enhanced_wall_fraction: float = 0.06
    vein_cutoff_mm: float = 2.0
    mitral_orifice_mm: float = 6.0
    mitral_plane_mm: float = 1.5
    partial_volume_voxels: float = 0.65
    respiratory_blur_mm: float = 0.75
    bias_strength: float = 0.2
    noise_factor: float = 1.05
    label_noise_mm: float = 0.6


REALISTIC = Realism()


def _surface_distance(direction: np.ndarray, radii: np.ndarray, rotation: np.ndarray) -> float:
    """Distance from an ellipsoid's centre to its surface along a unit ``direction``."""
    return 1.0 / float(np.linalg.norm((rotation.T @ direction) / radii))


def _frame(direction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rotation whose first column is ``direction`` (the other two at a random roll)."""
    helper = unit(rng.standard_normal(3))
    second = unit(np.cross(direction, helper))
    return np.stack([direction, second, np.cross(direction, second)], axis=1)


def _widen(value: float, centre: float, factor: float) -> float:
    """``value`` moved away from ``centre`` by ``factor`` (exactly ``value`` when the factor is 1)."""
    return value if factor == 1.0 else centre + factor * (value - centre)


def make_case(options: AtriumOptions, rng: np.random.Generator) -> SyntheticCase:
    """One case; see the module docstring. Shapes are built in a heart frame (mm, LA centre at 0).

    With ``difficulty="realistic"`` every draw of the easy case is made in the same order (so a seed gives the
    same anatomy, only more varied); the realistic effects draw from a child generator of ``rng``.
    """
    shape, spacing = tuple(options.shape), float(options.spacing)
    realism = REALISTIC if options.difficulty == "realistic" else None
    variation = 1.0 if realism is None else realism.anatomy_variation
    effects_rng = None if realism is None else rng.spawn(1)[0]   # spawning leaves rng's own stream untouched
    points = grid_mm(shape, (spacing,) * 3)
    pose = random_rotation(rng, 15.0 * variation) / _widen(rng.uniform(0.85, 1.15), 1.0, variation)
    la_offset = rng.normal(0.0, 5.0 * variation, size=3)
    heart = transform_points(pose.T, points, -pose.T @ la_offset)
    heart += displacement_field(rng, shape, magnitude=2.5 * variation, correlation=30.0 / spacing)

    def noise(width_mm: float) -> np.ndarray:
        return smooth_noise(rng, shape, width_mm / spacing)

    # ---- the left atrium: body + vein stubs + appendage (the label)
    la_radii = np.array([rng.uniform(22, 30), rng.uniform(16, 21), rng.uniform(15, 20)])
    la_rotation = random_rotation(rng, 12.0)
    la_body = ellipsoid_radius(heart, (0, 0, 0), la_radii, la_rotation) < 1.0 + 0.1 * noise(14.0)
    label_mask = la_body.copy()
    vessels = []      # (distance field, radius) of image-only blood vessels continuing the labelled stubs
    for side in ("right", "left"):
        separate = rng.random() < (0.85 if side == "right" else 0.7)
        names = [f"{side}_superior", f"{side}_inferior"]
        directions = [np.asarray(VEIN_DIRECTIONS[n]) for n in names]
        if not separate:
            directions = [np.mean(directions, axis=0)]
        for base_direction in directions:
            direction = unit(np.asarray(base_direction) + rng.normal(0.0, 0.15 * variation, size=3))
            radius = rng.uniform(4.0, 6.5) * (1.0 if separate else 1.3)
            ostium = _surface_distance(direction, la_radii, la_rotation)
            start, end = 0.5 * ostium * direction, (ostium + rng.uniform(5.0, 12.0)) * direction
            if realism is None:
                label_end, continuing_radius = end, 0.85 * radius
            else:   # the vein keeps its calibre past the label's end, which the annotator places
                label_end = _vein_cutoff(effects_rng, direction, ostium, end, realism.vein_cutoff_mm)
                continuing_radius = radius
            stub, _ = segment_distance(heart, start, label_end)
            label_mask |= stub < radius
            bend = unit(direction + rng.normal(0.0, 0.35, size=3))
            distal = end + rng.uniform(18.0, 35.0) * bend
            if realism is not None:
                vessels.append((segment_distance(heart, start, end)[0], radius))   # the unlabelled rest of the stub
            vessels.append((segment_distance(heart, end, distal)[0], continuing_radius))
            branch = unit(bend + rng.normal(0.0, 0.5, size=3))
            vessels.append((segment_distance(heart, distal, distal + rng.uniform(15, 30) * branch)[0], 0.6 * radius))
    appendage_direction = unit(np.array([-0.7, 0.65, 0.45]) + rng.normal(0.0, 0.15, size=3))
    ostium = _surface_distance(appendage_direction, la_radii, la_rotation)
    appendage_centre = (ostium + rng.uniform(3.0, 7.0)) * appendage_direction
    appendage_radii = (rng.uniform(9.0, 14.0), rng.uniform(5.0, 7.0), rng.uniform(4.0, 6.0))
    appendage = ellipsoid_radius(heart, appendage_centre, appendage_radii, _frame(appendage_direction, rng))
    label_mask |= appendage < 1.0 + 0.15 * noise(6.0)
    label_mask |= segment_distance(heart, 0.6 * ostium * appendage_direction, appendage_centre)[0] < 5.0
    label_mask = largest_component(label_mask)

    # ---- neighbouring blood pools, kept ≥ 3 mm (a wall) away from the atrium
    guard = dilate_mm(label_mask, 3.0, (spacing,) * 3)
    mitral = unit(np.array([-0.3, 0.6, -0.75]) + rng.normal(0.0, 0.1 * variation, size=3))
    lv_axis = unit(np.array([-0.5, 0.55, -0.67]) + rng.normal(0.0, 0.1, size=3))
    lv_long, lv_short = rng.uniform(35.0, 45.0), rng.uniform(19.0, 26.0)
    lv_centre = (_surface_distance(mitral, la_radii, la_rotation) + 4.0) * mitral + 0.9 * lv_long * lv_axis
    lv_frame = _frame(lv_axis, rng)
    lv_blood = ellipsoid_radius(heart, lv_centre, (lv_long, lv_short, lv_short), lv_frame) < 1.0
    wall_thickness = rng.uniform(8.0, 12.0)
    lv_wall = ellipsoid_radius(heart, lv_centre, (lv_long + wall_thickness, lv_short + wall_thickness,
                                                  lv_short + wall_thickness), lv_frame) < 1.0
    ra_centre = np.array([rng.uniform(32, 40), rng.uniform(5, 12), rng.uniform(-5, 5)])
    ra_blood = ellipsoid_radius(heart, ra_centre, rng.uniform(16, 22, size=3), random_rotation(rng, 20)) < (
        1.0 + 0.08 * noise(14.0))

    def tube(start, end, radius) -> np.ndarray:
        return segment_distance(heart, start, end)[0] < radius

    def jiggle() -> np.ndarray:   # per-landmark positional variation, mm
        return rng.normal(0.0, 3.0, size=3)

    trunk_top = np.array([-15.0, 28.0, 30.0]) + jiggle()
    pools = {
        "lv": lv_blood,
        "ra": ra_blood | tube(ra_centre, ra_centre + (0, -3, 70), rng.uniform(8, 10))
        | tube(ra_centre, ra_centre + (0, -5, -70), rng.uniform(10, 12)),
        "aorta": tube(np.array([8.0, 32.0, -15.0]) + jiggle(), np.array([8.0, 28.0, 70.0]) + jiggle(),
                      rng.uniform(12.0, 15.0))
        | tube(np.array([-22.0, -38.0, -80.0]) + jiggle(), np.array([-22.0, -38.0, 80.0]) + jiggle(),
               rng.uniform(9.0, 12.0)),
        "pulmonary_artery": tube(np.array([-18.0, 45.0, -10.0]) + jiggle(), trunk_top, rng.uniform(11.0, 14.0))
        | tube(trunk_top, np.array([35.0, -5.0, 34.0]) + jiggle(), rng.uniform(8.0, 11.0))
        | tube(trunk_top, np.array([-50.0, -10.0, 32.0]) + jiggle(), rng.uniform(8.0, 11.0)),
    }
    pools = {name: pool & ~guard for name, pool in pools.items()}
    if realism is not None:
        orifice, label_mask = _open_mitral_orifice(effects_rng, heart, label_mask, mitral, la_radii, la_rotation,
                                                   lv_centre, realism)
    veins = np.zeros(shape, dtype=bool) if realism is None else orifice
    for distance, radius in vessels:
        veins |= distance < radius
    veins &= ~label_mask

    # ---- the rest of the chest
    mediastinum = (((heart[0] - 3.0) / 46.0) ** 2 + ((heart[1] - 5.0) / 75.0) ** 2) < 1.0 + 0.15 * noise(25.0)
    spine = (((heart[0] - 3.0) ** 2 + (heart[1] + 64.0) ** 2) < rng.uniform(14, 18) ** 2)
    lung_vessels = random_tubes(rng, shape, 18.0 / spacing, thickness=0.1) * ~mediastinum
    fat = mediastinum & (noise(8.0) > 1.1)

    blood = label_mask | veins | np.logical_or.reduce(list(pools.values()))
    near_blood = dilate_mm(blood, rng.uniform(2.0, 3.0), (spacing,) * 3)

    means = jitter(rng, INTENSITY, 0.12)
    if realism is not None:
        means = _reduce_blood_contrast(means, realism.blood_contrast)
    image = np.full(shape, means["lung"], dtype=np.float32)
    image += lung_vessels * (0.5 * means["blood"] - means["lung"])
    image[mediastinum] = means["tissue"]
    image[fat] = means["fat"]
    image[spine] = means["marrow"]
    wall = lv_wall | near_blood
    image[wall] = means["wall"]
    for pool in pools.values():
        image[pool] = means["blood"] * rng.uniform(0.85, 1.1)
    vein_level, atrium_level = rng.uniform(0.9, 1.05), rng.uniform(0.92, 1.08)
    if realism is not None:   # veins and the mitral channel are the atrium's blood: no step where the label ends
        vein_level = atrium_level
    image[veins] = means["blood"] * vein_level
    image[label_mask] = means["blood"] * atrium_level
    if realism is not None:
        image = _heterogeneous_enhancement(effects_rng, image, blood, wall & ~blood, means["blood"], spacing, realism)

    # ---- acquisition: partial volume, intensity curve, texture, coil bias, scale, Rician noise
    image = ndimage.gaussian_filter(image, 0.6 if realism is None else realism.partial_volume_voxels)
    if realism is not None:   # the superior-inferior axis (z), along which breathing moves the heart
        image = motion_blur(image, realism.respiratory_blur_mm / spacing, axis=2)
    gamma = rng.uniform(0.75, 1.35)
    image = 1000.0 * (image / 1000.0) ** gamma * (1.0 + 0.04 * noise(6.0))
    scale = rng.uniform(0.6, 1.6)
    image *= bias_field(rng, shape, 0.3 if realism is None else realism.bias_strength, 60.0 / spacing) * scale
    sigma = rng.uniform(0.02, 0.07) * 1000.0 * (means["blood"] / 1000.0) ** gamma * scale
    if realism is not None:
        sigma *= realism.noise_factor
    image = rician_noise(rng, image.astype(np.float32), sigma)
    label = label_mask.astype(np.uint8)
    if realism is not None:
        label = annotator_label_noise(effects_rng, label, realism.label_noise_mm / spacing, 10.0 / spacing)
    affine = grid_affine((spacing,) * 3, centred_origin(shape, (spacing,) * 3))
    return SyntheticCase(images=[image], label=label, affine=affine)


# ------------------------------------------------------------------------------------------ realistic effects
def _vein_cutoff(rng: np.random.Generator, direction: np.ndarray, ostium: float, end: np.ndarray,
                 spread_mm: float) -> np.ndarray:
    """Where the annotator stops labelling a pulmonary vein: the stub's end moved along the vein by
    N(0, ``spread_mm``), never closer than 2 mm to the ostium. Nothing in the image marks the spot."""
    length = float(np.linalg.norm(end)) + rng.normal(0.0, spread_mm)
    return max(length, ostium + 2.0) * direction


def _open_mitral_orifice(rng: np.random.Generator, heart: np.ndarray, label_mask: np.ndarray, mitral: np.ndarray,
                         la_radii: np.ndarray, la_rotation: np.ndarray, lv_centre: np.ndarray,
                         realism: Realism) -> tuple[np.ndarray, np.ndarray]:
    """A wall-free blood channel from the atrium through the mitral annulus into the ventricle.

    The label stops at the annulus plane (perpendicular to ``mitral``, at the atrium's surface ± the annotator's
    N(0, ``mitral_plane_mm``)), which nothing in the image marks. Returns the unlabelled part of the channel and
    the label with the channel's atrial part added (or, where the plane lies inside the atrium, removed).
    """
    surface = _surface_distance(mitral, la_radii, la_rotation)
    channel = segment_distance(heart, 0.5 * surface * mitral, lv_centre)[0] < realism.mitral_orifice_mm
    plane = surface + rng.normal(0.0, realism.mitral_plane_mm)
    beyond = transform_points(mitral.reshape(1, 3), heart)[0] > plane
    label_mask = largest_component((label_mask | channel) & ~(channel & beyond))
    return channel & ~label_mask, label_mask


def _reduce_blood_contrast(means: dict[str, float], contrast: float) -> dict[str, float]:
    """Wall and mediastinal tissue means pulled towards blood's, keeping ``contrast`` of their difference."""
    pulled = dict(means)
    for name in ("wall", "tissue"):
        pulled[name] = means["blood"] + contrast * (means[name] - means["blood"])
    return pulled


def _heterogeneous_enhancement(rng: np.random.Generator, image: np.ndarray, blood: np.ndarray, wall: np.ndarray,
                               blood_mean: float, spacing: float, realism: Realism) -> np.ndarray:
    """Uneven blood signal (smooth ±``enhancement_heterogeneity``) and enhanced wall patches, covering
    ``enhanced_wall_fraction`` of the wall, that are as bright as blood (late-gadolinium enhancement of fibrosis)."""
    shape = image.shape
    image = image * np.where(blood, 1.0 + realism.enhancement_heterogeneity * smooth_noise(rng, shape, 20.0 / spacing),
                             1.0).astype(np.float32)
    patches = smooth_noise(rng, shape, 12.0 / spacing)
    threshold = np.quantile(patches[wall], 1.0 - realism.enhanced_wall_fraction) if wall.any() else np.inf
    enhanced = wall & (patches > threshold)
    image[enhanced] = blood_mean * rng.uniform(0.85, 1.0)
    return image


def _build(options: AtriumOptions):
    if not options.spacing > 0 or len(options.shape) != 3 or min(options.shape) < 8:
        raise MedgapError(f"synth atrium-3d: need spacing > 0 and a 3-D shape ≥ 8 voxels, got {options}")
    check_difficulty("atrium-3d", options.difficulty)
    return lambda rng: make_case(options, rng)


GENERATOR = Generator(
    name="atrium-3d",
    case_prefix="Atrium",
    dataset_name="SyntheticAtrium",
    description="Synthetic LA-challenge-like 3-D MRI of the left atrium; see docs/datasets.md",
    channel_names=("MRI",),
    labels={"background": 0, "left_atrium": 1},
    options=AtriumOptions,
    build=_build,
    default_cases=40,
    difficulty_versions={"realistic": 3},  # 3: realistic calibrated against the LA V-Net (issue 23); easy unchanged
)
