"""``cardiac-2d``: ACDC-like short-axis cine MRI stacks with labels 1 = RV, 2 = myocardium, 3 = LV (ACDC order).

What it imitates:
    One end-diastolic short-axis stack per patient as in ACDC, saved as one 3-D NIfTI ``(X, Y, Z)`` with thick
    slices (1.5 × 1.5 × 10 mm, 6–10 slices), for 2-D networks trained on slices and evaluated per patient:
    a bright LV blood pool (papillary muscles inside, labelled LV as in ACDC) in a dark myocardial ring of
    varying thickness, a bright RV crescent against the septum with a thin unlabelled free wall, all shrinking
    from base (slice 0) to apex, the RV ending before the LV; random centre, rotation, size, ellipticity and
    wall thickness per patient and small per-slice jitter (breath-hold misregistration). Around the heart:
    epicardial fat, chest wall muscle under a bright subcutaneous fat rim and the body outline, dark lungs,
    liver appearing in apical slices, spine and descending aorta. Per-case tissue means, bias field, scale and
    Rician noise.

What it does not imitate:
    The pathologies that define ACDC's groups (infarction thinning, dilated or hypertrophic hearts beyond the
    random size/thickness range, RV abnormality), cardiac phases (one frame per patient), bSSFP banding and flow
    artefacts, long-axis tilt between slices, the outflow tracts at the base. Intensities are only relatively
    realistic.

Difficulty:
    ``difficulty="easy"`` (default) is the above, bit for bit as before the option existed. ``"realistic"`` adds
    the base (atria above the valve plane, the LV outflow tract), a vanishing apex, through-plane partial volume
    of the thick slices, infarct thinning, trabeculae, banding, ghosts and annotator variability (borders and
    which end slices are labelled), with the strengths of :class:`Realism`, calibrated so that a supervised 2-D
    U-Net on the SS-Net reproduction's 48×48 / 4 mm grid lands near its published ACDC Dice (docs/datasets.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    displacement_field,
    ghosting,
    grid_affine,
    grid_mm,
    jitter,
    rician_noise,
    rotation_matrix,
    smooth_noise,
)
from medgap.errors import MedgapError

LABELS = {"background": 0, "RV": 1, "myocardium": 2, "LV": 3}

# Mean intensities (0–1000 before the per-case scale) on balanced SSFP cine: blood and fat bright, muscle dark.
INTENSITY = {"blood": 800.0, "myocardium": 220.0, "fat": 680.0, "muscle": 260.0, "lung": 40.0, "liver": 320.0,
             "tissue": 380.0, "bone": 330.0, "air": 0.0}


@dataclass(frozen=True)
class CardiacOptions:
    """Keyword options of the generator.

    Attributes:
        size: in-plane voxels ``(X, Y)``.
        spacing: ``(in-plane, in-plane, slice)`` mm.
        slices: inclusive range of the number of short-axis slices per patient.
        difficulty: ``easy`` (default: the clean stacks that the tests and the demo use) or ``realistic`` (the
            effects of :class:`Realism`, calibrated so that a supervised 2-D U-Net lands near its published ACDC
            Dice; docs/datasets.md).
    """

    size: tuple[int, int] = (128, 128)
    spacing: tuple[float, float, float] = (1.5, 1.5, 10.0)
    slices: tuple[int, int] = (6, 10)
    difficulty: str = "easy"


@dataclass(frozen=True)
class Realism:
    """Strengths of the ``realistic`` difficulty's effects (docs/datasets.md has the calibration).

    Attributes:
        lv_radius_mm: range of the basal LV cavity radius (easy 18–30): small to dilated hearts.
        wall_mm: range of the myocardial thickness (easy 6.5–11): thin myocardium.
        infarct_probability: share of patients with a thinned sector (to 40–65 % of the wall, 40–90° wide).
        misregistration_mm: std of the per-slice in-plane shift between breath-holds (easy 1).
        apex_end: range of the apex position as a fraction of the stack (easy 1.02–1.25, always beyond the last
            slice): below 1 the last slices cut the myocardial cap or miss the heart, the cavity vanishes.
        valve_slice: range of the mitral/tricuspid valve plane in slices from slice 0: above it the slice shows
            the atria and the aortic root (unlabelled); one slice below it the LV outflow tract opens the ring.
        outflow_gap_degrees: angular width of that opening.
        aortic_root: radius of the aortic root (bright, unlabelled, next to the RV) as a fraction of the LV's.
        slice_profile: the excited slab's thickness as a fraction of the slice spacing; the image is the mean of
            ``slice_profile_samples`` planes across it (:func:`slice_profile`), the label its central plane.
        trabeculation_mm, trabeculation_threshold: width of the band inside the endocardium that holds muscle
            strands, and the level of a unit-std field above which a voxel of it is muscle (1.2: ~12 %).
        blur_voxels: in-plane blur of the image, standing for the acquisition's point-spread (easy 0.7).
        intensity_jitter: per-case spread of every tissue mean (easy 0.12).
        bias_strength: std of the log bias field (easy 0.25).
        noise_fraction: range of the Rician noise std as a fraction of blood (easy 0.02–0.06).
        ghost_phase: largest phase error (radians) of the pulsatile-flow / breathing ghosts (:func:`ghosting`).
        banding_probability, banding_depth: share of cases with a bSSFP dark band, and how dark it gets.
        label_noise_mm: std of the border displacement between the drawn and the true contour, per slice.
        slice_skip_probability: chance that the annotator leaves out a doubtful apical or basal slice.
    """

    lv_radius_mm: tuple[float, float] = (17.0, 32.0)
    wall_mm: tuple[float, float] = (6.5, 11.0)
    infarct_probability: float = 0.2
    misregistration_mm: float = 1.0
    apex_end: tuple[float, float] = (1.0, 1.2)
    valve_slice: tuple[float, float] = (-1.0, 0.0)
    outflow_gap_degrees: float = 50.0
    aortic_root: float = 0.35
    slice_profile: float = 0.6
    slice_profile_samples: int = 5
    trabeculation_mm: float = 2.0
    trabeculation_threshold: float = 1.2
    blur_voxels: float = 0.7
    intensity_jitter: float = 0.15
    bias_strength: float = 0.3
    noise_fraction: tuple[float, float] = (0.02, 0.06)
    ghost_phase: float = 0.1
    banding_probability: float = 0.2
    banding_depth: float = 0.4
    label_noise_mm: float = 0.6
    slice_skip_probability: float = 0.1


REALISTIC = Realism()


def _harmonics(rng: np.random.Generator, amplitude: float, orders=(2, 3, 4)):
    """A random smooth periodic function of the angle: ``1 + Σ a_k cos(kθ + φ_k)``."""
    amplitudes = rng.normal(0.0, amplitude, size=len(orders))
    phases = rng.uniform(0.0, 2 * np.pi, size=len(orders))
    return lambda theta: 1.0 + sum(a * np.cos(k * theta + p) for a, k, p in zip(amplitudes, orders, phases))


@dataclass
class _Heart:
    """One patient's anatomy (mm, radians; ``*_end``/``*_start`` as fractions of the stack, 0 = base, 1 = apex;
    ``valve_slice`` in slices from slice 0). The realistic-only fields are None for ``easy``."""

    centre: np.ndarray
    rotation: np.ndarray
    lv_radius: float
    ellipticity: float
    apex_end: float
    wall: float
    endo_shape: Callable
    wall_shape: Callable
    rv_shape: Callable
    wall_phase: float
    rv_depth: float
    rv_reach: float
    rv_end: float
    rv_wall: float
    rv_near: float
    papillary: list
    apex_cap: bool
    body_radii: tuple
    body_centre: np.ndarray
    fat_layer: float
    muscle_layer: float
    liver_start: float
    liver_normal: np.ndarray
    infarct: tuple[float, float, float] | None = None   # (angle, half-width, depth) of a thinned sector
    valve_slice: float | None = None                     # above it (smaller z): atria and aortic root, no ventricle
    outflow_angle: float | None = None                   # direction of the aortic root from the LV (local frame)


def make_case(options: CardiacOptions, rng: np.random.Generator) -> SyntheticCase:
    """One patient; see the module docstring. Slice 0 is the base, the last slice the apex."""
    realism = REALISTIC if options.difficulty == "realistic" else None
    nx, ny = options.size
    spacing = tuple(float(s) for s in options.spacing)
    nz = int(rng.integers(options.slices[0], options.slices[1] + 1))
    shape = (nx, ny, nz)
    points = grid_mm((nx, ny), spacing[:2])                 # (2, X, Y) mm, centred
    in_plane = np.array(spacing[:2])
    warp = displacement_field(rng, shape, magnitude=1.5, correlation=(30.0 / in_plane[0], 30.0 / in_plane[1], 3.0))
    heart = _draw_heart(rng, realism)
    spread = 0.12 if realism is None else realism.intensity_jitter
    means = jitter(rng, INTENSITY, spread)
    means["rv_blood"] = means["blood"] * rng.uniform(0.88, 1.02)
    if realism is not None:
        _draw_base_and_infarct(rng, realism, heart)

    image = np.empty(shape, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    misregistration = 1.0 if realism is None else realism.misregistration_mm
    for z in range(nz):
        t = z / max(nz - 1, 1)                                 # 0 at the base, 1 at the apex
        xy = points + warp[:2, :, :, z]
        slice_centre = (heart.centre + rng.normal(0.0, misregistration, size=2)
                        + t * rng.normal(0.0, 2.0 * misregistration, size=2))
        slice_noise = {"mediastinum": smooth_noise(rng, (nx, ny), 25.0 / in_plane[0]),
                       "fat": smooth_noise(rng, (nx, ny), 6.0)}
        if realism is None:
            masks = _anatomy(heart, xy, slice_centre, z, nz, spacing)
            image[:, :, z] = _slab(masks, heart, xy, slice_centre, z, nz, slice_noise, means)
        else:
            # Trabeculae: fine strands of muscle in the blood next to the wall, labelled LV as in ACDC.
            slice_noise["trabeculae"] = smooth_noise(rng, (nx, ny), max(1.0, 2.5 / in_plane[0]))
            masks = _anatomy(heart, xy, slice_centre, z, nz, spacing, realism)
            image[:, :, z] = slice_profile(
                lambda position: _slab(_anatomy(heart, xy, slice_centre, position, nz, spacing, realism), heart,
                                       xy, slice_centre, position, nz, slice_noise, means, realism),
                z, realism.slice_profile, realism.slice_profile_samples)
        label[:, :, z][masks["rv"]] = LABELS["RV"]
        label[:, :, z][masks["myocardium"]] = LABELS["myocardium"]
        label[:, :, z][masks["lv"]] = LABELS["LV"]
    if realism is not None:
        label = _annotate(rng, label, heart, realism, spacing)

    # Acquisition: in-plane partial volume, texture, bias field, scale, Rician noise.
    blur = 0.7 if realism is None else realism.blur_voxels
    image = ndimage.gaussian_filter(image, (blur, blur, 0.0))
    image *= 1.0 + 0.04 * smooth_noise(rng, shape, (4.0, 4.0, 1.0))
    if realism is not None and rng.random() < realism.banding_probability:
        image *= banding(rng, shape, realism.banding_depth, (80.0 / spacing[0], 80.0 / spacing[1], 2.0))
    scale = rng.uniform(0.5, 2.0)
    bias = 0.25 if realism is None else realism.bias_strength
    image *= bias_field(rng, shape, bias, (100.0 / spacing[0], 100.0 / spacing[1], 2.0)) * scale
    noise = (0.02, 0.06) if realism is None else realism.noise_fraction
    if realism is not None:
        image = ghosting(image, realism.ghost_phase * rng.uniform(0.0, 1.0), axis=int(rng.integers(2)))
    image = rician_noise(rng, image, rng.uniform(*noise) * means["blood"] * scale)
    affine = grid_affine(spacing, centred_origin(shape, spacing))
    return SyntheticCase(images=[image.astype(np.float32)], label=label, affine=affine)


def _draw_heart(rng: np.random.Generator, realism: Realism | None) -> _Heart:
    """Patient: heart position, orientation (RV to the image's left ± 25°), size, shape, surroundings."""
    lv_radius_range = (18.0, 30.0) if realism is None else realism.lv_radius_mm
    apex_end_range = (1.02, 1.25) if realism is None else realism.apex_end
    wall_range = (6.5, 11.0) if realism is None else realism.wall_mm
    centre = np.array([rng.uniform(-15.0, 15.0), rng.uniform(-20.0, 5.0)])
    angle = np.deg2rad(160.0 + rng.uniform(-25.0, 25.0))     # direction from LV to RV: image left, anterior
    rotation = rotation_matrix([angle])
    lv_radius = rng.uniform(*lv_radius_range)
    ellipticity = rng.uniform(0.85, 1.0)
    apex_end = rng.uniform(*apex_end_range)                   # easy: the apex lies at or beyond the last slice
    wall = rng.uniform(*wall_range)                           # myocardial thickness, mm
    endo_shape, wall_shape, rv_shape = (_harmonics(rng, 0.03) for _ in range(3))
    return _Heart(
        centre=centre, rotation=rotation, lv_radius=lv_radius, ellipticity=ellipticity, apex_end=apex_end, wall=wall,
        endo_shape=endo_shape, wall_shape=wall_shape, rv_shape=rv_shape,
        wall_phase=rng.uniform(0, 2 * np.pi),
        rv_depth=rng.uniform(14.0, 28.0),
        rv_reach=rng.uniform(0.95, 1.2),                      # how far the crescent wraps round the LV
        rv_end=rng.uniform(0.65, 0.95),                       # fraction of the stack where the RV disappears
        rv_wall=rng.uniform(2.0, 3.5),
        rv_near=rng.uniform(0.5, 0.75),                       # RV ellipse centre, as a fraction of the LV size
        papillary=[(rng.uniform(0, 2 * np.pi), rng.uniform(2.5, 4.0)) for _ in range(2)],
        apex_cap=bool(rng.random() < 0.5),                    # last slice: myocardium only, no cavity
        body_radii=(rng.uniform(150.0, 185.0), rng.uniform(105.0, 125.0)),
        body_centre=np.array([rng.uniform(-10.0, 10.0), rng.uniform(-55.0, -40.0)]),  # anterior skin y ≈ 50–85 mm
        fat_layer=rng.uniform(6.0, 15.0), muscle_layer=rng.uniform(8.0, 15.0),
        liver_start=rng.uniform(0.3, 0.6),                    # liver enters the slices from here to the apex
        liver_normal=np.array([-0.45, -0.9]),                 # ... from the image's lower left
    )


def _draw_base_and_infarct(rng: np.random.Generator, realism: Realism, heart: _Heart) -> None:
    """The realistic-only anatomy: where the mitral valve plane cuts the stack, the outflow direction, an infarct."""
    heart.valve_slice = rng.uniform(*realism.valve_slice)
    # Between the RV direction (local 0) and anterior (about −70° in the local frame for the default rotation).
    heart.outflow_angle = np.deg2rad(rng.uniform(-50.0, -20.0))
    if rng.random() < realism.infarct_probability:
        heart.infarct = (rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(20.0, 45.0)), rng.uniform(0.35, 0.6))
    else:
        rng.uniform(size=3)   # same number of draws either way


def _anatomy(heart: _Heart, xy: np.ndarray, slice_centre: np.ndarray, position: float, nz: int,
             spacing: tuple[float, ...], realism: Realism | None = None) -> dict[str, np.ndarray]:
    """The heart's masks ``(X, Y)`` on the plane at ``position`` (in slices from slice 0; a slice's centre is its
    index): ``lv`` (cavity incl. papillary muscles), ``myocardium``, ``rv`` (labelled), and for rendering
    ``papillary``, ``rv_outer`` (RV incl. free wall), ``heart``, plus with ``realism`` ``trabecular_band``,
    ``atrium`` (blood above the valve plane), ``atrial_wall``, ``aorta`` (root) and ``outflow`` (the LVOT gap)."""
    h = heart
    t = position / max(nz - 1, 1)                              # 0 at the base, 1 at the apex
    local = np.tensordot(h.rotation.T, xy - slice_centre.reshape(2, 1, 1), axes=1)  # x towards the RV
    radius_mm = np.hypot(local[0], local[1] / h.ellipticity)
    theta = np.arctan2(local[1], local[0])

    shrink = np.sqrt(max(0.0, 1.0 - (t / h.apex_end) ** 2))
    endo = h.lv_radius * shrink * h.endo_shape(theta)
    wall = h.wall * (1.0 + 0.15 * np.cos(theta - h.wall_phase)) * h.wall_shape(theta)
    if realism is not None:
        if h.infarct is not None:   # a thinned, transmural-scar-like sector
            angle, half_width, depth = h.infarct
            wall = wall * (1.0 - depth * np.exp(-0.5 * (np.angle(np.exp(1j * (theta - angle))) / half_width) ** 2))
        # Beyond the apex the cavity is gone and the myocardial cap thins out over about one wall thickness.
        cap = h.wall / (spacing[2] * max(nz - 1, 1))
        beyond = max(0.0, t - h.apex_end)
        wall = wall * np.sqrt(max(0.0, 1.0 - (beyond / cap) ** 2))
    epi = endo + wall
    lv = radius_mm < endo
    if h.apex_cap and round(position) == nz - 1:
        lv[:] = False
    # Papillary muscles: dark spots inside the cavity, labelled LV as in ACDC.
    papillary = np.zeros_like(lv)
    if 0.2 < t < 0.8:
        for pap_angle, pap_radius in h.papillary:
            offset = 0.75 * h.lv_radius * shrink
            spot = np.hypot(local[0] - offset * np.cos(pap_angle), local[1] - offset * np.sin(pap_angle))
            papillary |= (spot < pap_radius) & lv
    myocardium = (radius_mm < epi) & ~lv
    # RV: inside an ellipse on the RV side, outside the LV epicardium; shrinks towards the apex and ends.
    rv_scale = max(0.0, 1.0 - (t / h.rv_end) ** 2) if t < h.rv_end else 0.0
    rv = np.zeros_like(lv)
    rv_outer = np.zeros_like(lv)
    if rv_scale * h.rv_depth > 3.0:
        epi_mean = h.lv_radius * shrink + h.wall
        near = epi_mean * h.rv_near
        far = epi_mean + h.rv_depth * rv_scale * h.rv_shape(theta)
        along = (far - near)
        across = epi_mean * h.rv_reach * (0.7 + 0.3 * rv_scale)
        ellipse = ((local[0] - near) / along) ** 2 + (local[1] / across) ** 2
        rv = (ellipse < 1.0) & ~(radius_mm < epi)
        rv_outer = (((local[0] - near) / (along + h.rv_wall)) ** 2 + (local[1] / (across + h.rv_wall)) ** 2 < 1.0)
    masks = {"lv": lv, "myocardium": myocardium, "rv": rv, "papillary": papillary, "rv_outer": rv_outer,
             "heart": (radius_mm < epi) | rv_outer}
    if realism is not None:
        masks.update(_base_and_trabeculae(h, local, radius_mm, theta, endo, epi, position, realism, masks))
    return masks


def _base_and_trabeculae(h: _Heart, local: np.ndarray, radius_mm: np.ndarray, theta: np.ndarray, endo: np.ndarray,
                         epi: np.ndarray, position: float, realism: Realism,
                         masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The realistic base (atria above the valve plane, the LV outflow tract just below it, the aortic root) and
    the trabecular band; updates the labelled masks the way an ACDC annotator would draw them."""
    extra = {"trabecular_band": masks["lv"] & (radius_mm > endo - realism.trabeculation_mm)}
    aorta_radius = realism.aortic_root * h.lv_radius
    aorta_distance = h.lv_radius + 0.5 * h.wall + aorta_radius
    aorta_centre = aorta_distance * np.array([np.cos(h.outflow_angle), np.sin(h.outflow_angle)])
    aorta = np.hypot(local[0] - aorta_centre[0], local[1] - aorta_centre[1]) < aorta_radius
    empty = np.zeros_like(masks["lv"])
    extra.update(atrium=empty, atrial_wall=empty, aorta=empty, outflow=empty)
    if position < h.valve_slice:
        # Above the mitral and tricuspid valves: left and right atria (blood behind a thin wall, never labelled)
        # where the ventricles would be, and the aortic root between them.
        atrium = (radius_mm < endo) | masks["rv"]
        atrial_wall = ((radius_mm < endo + h.rv_wall) | masks["rv_outer"]) & ~atrium
        extra.update(atrium=atrium & ~aorta, atrial_wall=atrial_wall & ~aorta, aorta=aorta, trabecular_band=empty)
        masks.update(lv=empty, myocardium=empty, rv=empty, papillary=empty, rv_outer=empty,
                     heart=atrium | atrial_wall | aorta)
    elif position < h.valve_slice + 1.0:
        # Just below the valves: the LV outflow tract opens the myocardial ring towards the aortic root. The
        # annotator closes the cavity across the opening (LV) and leaves the root unlabelled.
        gap = np.abs(np.angle(np.exp(1j * (theta - h.outflow_angle)))) < np.deg2rad(realism.outflow_gap_degrees / 2)
        outflow = gap & (radius_mm < epi)
        masks["lv"] = masks["lv"] | outflow
        masks["myocardium"] = masks["myocardium"] & ~outflow
        masks["rv"] = masks["rv"] & ~aorta
        extra.update(outflow=outflow, aorta=aorta & ~masks["lv"])
        masks["heart"] = masks["heart"] | aorta
    return extra


def _slab(masks: dict[str, np.ndarray], heart: _Heart, xy: np.ndarray, slice_centre: np.ndarray, position: float,
          nz: int, noise: dict[str, np.ndarray], means: dict[str, float],
          realism: Realism | None = None) -> np.ndarray:
    """Intensities ``(X, Y)`` of one plane: the heart's masks painted over the chest around them."""
    h = heart
    t = position / max(nz - 1, 1)
    body = ((xy[0] - h.body_centre[0]) / h.body_radii[0]) ** 2 + ((xy[1] - h.body_centre[1]) / h.body_radii[1]) ** 2
    depth = (1.0 - np.sqrt(body)) * min(h.body_radii)          # ≈ mm below the skin
    inside = body < 1.0
    mediastinum = np.hypot(*(xy - slice_centre.reshape(2, 1, 1))) < (
        h.lv_radius + h.wall + 14.0 + 6.0 * noise["mediastinum"])
    liver_edge = 130.0 - 90.0 * (t - h.liver_start) / (1.0 - h.liver_start)
    liver = (t > h.liver_start) & (np.tensordot(h.liver_normal, xy, axes=1) > liver_edge)
    spine = np.hypot(xy[0] - h.centre[0] + 5.0, xy[1] + 85.0) < 16.0
    aorta = np.hypot(xy[0] - h.centre[0] - 22.0, xy[1] + 62.0) < 11.0
    epicardial_fat = ~masks["heart"] & ndimage.binary_dilation(masks["heart"], iterations=3)

    slab = np.full(xy.shape[1:], means["air"], dtype=np.float32)
    slab[inside] = means["lung"]
    slab[inside & mediastinum] = means["tissue"]
    slab[inside & liver] = means["liver"]
    slab[inside & (depth < h.fat_layer + h.muscle_layer)] = means["muscle"]
    slab[inside & (depth < h.fat_layer)] = means["fat"]
    slab[epicardial_fat & inside & (noise["fat"] > 0.0)] = means["fat"]
    slab[inside & spine] = means["bone"]
    slab[inside & aorta] = means["blood"]
    slab[masks["rv_outer"]] = means["myocardium"]
    slab[masks["rv"]] = means["rv_blood"]
    slab[masks["myocardium"]] = means["myocardium"]
    slab[masks["lv"]] = means["blood"]
    slab[masks["papillary"]] = means["myocardium"]
    if realism is not None:
        trabeculae = masks["trabecular_band"] & (noise["trabeculae"] > realism.trabeculation_threshold)
        slab[trabeculae] = means["myocardium"]
        slab[masks["atrial_wall"]] = means["myocardium"]
        slab[masks["atrium"]] = means["blood"]
        slab[masks["aorta"] | masks["outflow"]] = means["blood"]
    return slab


def _annotate(rng: np.random.Generator, label: np.ndarray, heart: _Heart, realism: Realism,
              spacing: tuple[float, ...]) -> np.ndarray:
    """The label as an ACDC annotator draws it: borders moved by ~``label_noise_mm`` in each slice, and with
    probability ``slice_skip_probability`` the doubtful end slices left out — the apical slice when little
    cavity is left, the basal slice when the valve plane passes through it."""
    label = label.copy()
    lv_area = (label == LABELS["LV"]).sum(axis=(0, 1))
    labelled = np.flatnonzero(label.any(axis=(0, 1)))
    skip_apex, skip_base = rng.random(2) < realism.slice_skip_probability
    if len(labelled) > 2:
        apex, base = labelled[-1], labelled[0]
        if skip_apex and lv_area[apex] < 0.5 * lv_area.max():
            label[:, :, apex] = 0
        if skip_base and heart.valve_slice > base - 0.5 * realism.slice_profile:
            label[:, :, base] = 0
    for z in range(label.shape[2]):
        label[:, :, z] = annotator_label_noise(rng, label[:, :, z], realism.label_noise_mm / spacing[0],
                                               8.0 / spacing[0])
    return label


def slice_profile(render: Callable[[float], np.ndarray], centre: float, thickness: float, samples: int) -> np.ndarray:
    """Through-plane partial volume: a thick slice's signal is the mean of the anatomy across its thickness.

    Args:
        render: ``position → (X, Y)`` image of the plane at ``position`` (in slices).
        centre: the slice's centre (its index).
        thickness: the excited slab's thickness as a fraction of the slice spacing (ACDC: 5–8 mm slices every
            5–10 mm).
        samples: planes averaged, evenly spaced across the slab.
    """
    offsets = ((np.arange(samples) + 0.5) / samples - 0.5) * thickness
    return np.mean([render(centre + offset) for offset in offsets], axis=0)


def banding(rng: np.random.Generator, shape: Sequence[int], depth: float,
            correlation: float | Sequence[float]) -> np.ndarray:
    """bSSFP off-resonance banding: a multiplicative field with a dark band (to ``1 − depth``) along a random
    smooth curve, where the local frequency offset crosses the stop band."""
    offset = smooth_noise(rng, shape, correlation) - rng.uniform(-1.0, 1.0)
    width = 0.12   # in units of the field's std: a band a few voxels wide
    return (1.0 - depth * np.exp(-0.5 * (offset / width) ** 2)).astype(np.float32)


def _build(options: CardiacOptions):
    low, high = options.slices
    if len(options.size) != 2 or min(options.size) < 16 or len(options.spacing) != 3 or not 1 <= low <= high:
        raise MedgapError(f"synth cardiac-2d: need a 2-D size ≥ 16, three spacings and 1 ≤ slices[0] ≤ slices[1], "
                          f"got {options}")
    check_difficulty("cardiac-2d", options.difficulty)
    return lambda rng: make_case(options, rng)


GENERATOR = Generator(
    name="cardiac-2d",
    case_prefix="Cardiac",
    dataset_name="SyntheticCardiac",
    description="Synthetic ACDC-like short-axis cine MRI stacks (RV, myocardium, LV); see docs/datasets.md",
    channel_names=("cine-MRI",),
    labels=LABELS,
    options=CardiacOptions,
    build=_build,
    default_cases=40,
)
