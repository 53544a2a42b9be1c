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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medgap.data.synthetic.common import (
    Generator,
    SyntheticCase,
    bias_field,
    centred_origin,
    displacement_field,
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
    """

    size: tuple[int, int] = (128, 128)
    spacing: tuple[float, float, float] = (1.5, 1.5, 10.0)
    slices: tuple[int, int] = (6, 10)


def _harmonics(rng: np.random.Generator, amplitude: float, orders=(2, 3, 4)):
    """A random smooth periodic function of the angle: ``1 + Σ a_k cos(kθ + φ_k)``."""
    amplitudes = rng.normal(0.0, amplitude, size=len(orders))
    phases = rng.uniform(0.0, 2 * np.pi, size=len(orders))
    return lambda theta: 1.0 + sum(a * np.cos(k * theta + p) for a, k, p in zip(amplitudes, orders, phases))


def make_case(options: CardiacOptions, rng: np.random.Generator) -> SyntheticCase:
    """One patient; see the module docstring. Slice 0 is the base, the last slice the apex."""
    nx, ny = options.size
    spacing = tuple(float(s) for s in options.spacing)
    nz = int(rng.integers(options.slices[0], options.slices[1] + 1))
    shape = (nx, ny, nz)
    points = grid_mm((nx, ny), spacing[:2])                 # (2, X, Y) mm, centred
    in_plane = np.array(spacing[:2])
    warp = displacement_field(rng, shape, magnitude=1.5, correlation=(30.0 / in_plane[0], 30.0 / in_plane[1], 3.0))

    # Patient: heart position, orientation (RV to the image's left ± 25°), size, shape.
    centre = np.array([rng.uniform(-15.0, 15.0), rng.uniform(-20.0, 5.0)])
    angle = np.deg2rad(160.0 + rng.uniform(-25.0, 25.0))     # direction from LV to RV: image left, anterior
    rotation = rotation_matrix([angle])
    lv_radius = rng.uniform(18.0, 30.0)
    ellipticity = rng.uniform(0.85, 1.0)
    apex_end = rng.uniform(1.02, 1.25)                        # the apex lies at or beyond the last slice
    wall = rng.uniform(6.5, 11.0)                             # myocardial thickness, mm
    endo_shape, wall_shape, rv_shape = (_harmonics(rng, 0.03) for _ in range(3))
    wall_phase = rng.uniform(0, 2 * np.pi)
    rv_depth = rng.uniform(14.0, 28.0)
    rv_reach = rng.uniform(0.95, 1.2)                         # how far the crescent wraps round the LV
    rv_end = rng.uniform(0.65, 0.95)                          # fraction of the stack where the RV disappears
    rv_wall = rng.uniform(2.0, 3.5)
    rv_near = rng.uniform(0.5, 0.75)                          # RV ellipse centre, as a fraction of the LV size
    papillary = [(rng.uniform(0, 2 * np.pi), rng.uniform(2.5, 4.0)) for _ in range(2)]
    apex_cap = rng.random() < 0.5                             # last slice: myocardium only, no cavity
    body_radii = (rng.uniform(150.0, 185.0), rng.uniform(105.0, 125.0))
    body_centre = np.array([rng.uniform(-10.0, 10.0), rng.uniform(-55.0, -40.0)])  # anterior skin at y ≈ +50–85 mm
    fat_layer, muscle_layer = rng.uniform(6.0, 15.0), rng.uniform(8.0, 15.0)
    liver_start = rng.uniform(0.3, 0.6)                       # liver enters the slices from here to the apex
    liver_normal = np.array([-0.45, -0.9])                    # ... from the image's lower left

    means = jitter(rng, INTENSITY, 0.12)
    means["rv_blood"] = means["blood"] * rng.uniform(0.88, 1.02)
    image = np.empty(shape, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    for z in range(nz):
        t = z / max(nz - 1, 1)                                 # 0 at the base, 1 at the apex
        xy = points + warp[:2, :, :, z]
        slice_centre = centre + rng.normal(0.0, 1.0, size=2) + t * rng.normal(0.0, 2.0, size=2)
        local = np.tensordot(rotation.T, xy - slice_centre.reshape(2, 1, 1), axes=1)  # x towards the RV
        radius_mm = np.hypot(local[0], local[1] / ellipticity)
        theta = np.arctan2(local[1], local[0])

        shrink = np.sqrt(max(0.0, 1.0 - (t / apex_end) ** 2))
        endo = lv_radius * shrink * endo_shape(theta)
        epi = endo + wall * (1.0 + 0.15 * np.cos(theta - wall_phase)) * wall_shape(theta)
        lv = radius_mm < endo
        if apex_cap and z == nz - 1:
            lv[:] = False
        # Papillary muscles: dark spots inside the cavity, labelled LV as in ACDC.
        papillary_muscles = np.zeros_like(lv)
        if 0.2 < t < 0.8:
            for pap_angle, pap_radius in papillary:
                offset = 0.75 * lv_radius * shrink
                spot = np.hypot(local[0] - offset * np.cos(pap_angle), local[1] - offset * np.sin(pap_angle))
                papillary_muscles |= (spot < pap_radius) & lv
        myocardium = (radius_mm < epi) & ~lv
        # RV: inside an ellipse on the RV side, outside the LV epicardium; shrinks towards the apex and ends.
        rv_scale = max(0.0, 1.0 - (t / rv_end) ** 2) if t < rv_end else 0.0
        rv = np.zeros_like(lv)
        rv_outer = np.zeros_like(lv)
        if rv_scale * rv_depth > 3.0:
            epi_mean = lv_radius * shrink + wall
            near = epi_mean * rv_near
            far = epi_mean + rv_depth * rv_scale * rv_shape(theta)
            along = (far - near)
            across = epi_mean * rv_reach * (0.7 + 0.3 * rv_scale)
            ellipse = ((local[0] - near) / along) ** 2 + (local[1] / across) ** 2
            rv = (ellipse < 1.0) & ~(radius_mm < epi)
            rv_outer = (((local[0] - near) / (along + rv_wall)) ** 2 + (local[1] / (across + rv_wall)) ** 2 < 1.0)
        heart = (radius_mm < epi) | rv_outer

        # Surroundings, in image coordinates.
        body = ((xy[0] - body_centre[0]) / body_radii[0]) ** 2 + ((xy[1] - body_centre[1]) / body_radii[1]) ** 2
        depth = (1.0 - np.sqrt(body)) * min(body_radii)          # ≈ mm below the skin
        inside = body < 1.0
        mediastinum = np.hypot(*(xy - slice_centre.reshape(2, 1, 1))) < (
            lv_radius + wall + 14.0 + 6.0 * smooth_noise(rng, (nx, ny), 25.0 / in_plane[0]))
        liver_edge = 130.0 - 90.0 * (t - liver_start) / (1.0 - liver_start)
        liver = (t > liver_start) & (np.tensordot(liver_normal, xy, axes=1) > liver_edge)
        spine = np.hypot(xy[0] - centre[0] + 5.0, xy[1] + 85.0) < 16.0
        aorta = np.hypot(xy[0] - centre[0] - 22.0, xy[1] + 62.0) < 11.0
        epicardial_fat = ~heart & ndimage.binary_dilation(heart, iterations=3)

        slab = np.full((nx, ny), means["air"], dtype=np.float32)
        slab[inside] = means["lung"]
        slab[inside & mediastinum] = means["tissue"]
        slab[inside & liver] = means["liver"]
        slab[inside & (depth < fat_layer + muscle_layer)] = means["muscle"]
        slab[inside & (depth < fat_layer)] = means["fat"]
        slab[epicardial_fat & inside & (smooth_noise(rng, (nx, ny), 6.0) > 0.0)] = means["fat"]
        slab[inside & spine] = means["bone"]
        slab[inside & aorta] = means["blood"]
        slab[rv_outer] = means["myocardium"]
        slab[rv] = means["rv_blood"]
        slab[myocardium] = means["myocardium"]
        slab[lv] = means["blood"]
        slab[papillary_muscles] = means["myocardium"]
        image[:, :, z] = slab

        label[:, :, z][rv] = LABELS["RV"]
        label[:, :, z][myocardium] = LABELS["myocardium"]
        label[:, :, z][lv] = LABELS["LV"]

    # Acquisition: in-plane partial volume, texture, bias field, scale, Rician noise.
    image = ndimage.gaussian_filter(image, (0.7, 0.7, 0.0))
    image *= 1.0 + 0.04 * smooth_noise(rng, shape, (4.0, 4.0, 1.0))
    scale = rng.uniform(0.5, 2.0)
    image *= bias_field(rng, shape, 0.25, (100.0 / spacing[0], 100.0 / spacing[1], 2.0)) * scale
    image = rician_noise(rng, image, rng.uniform(0.02, 0.06) * means["blood"] * scale)
    affine = grid_affine(spacing, centred_origin(shape, spacing))
    return SyntheticCase(images=[image.astype(np.float32)], label=label, affine=affine)


def _build(options: CardiacOptions):
    low, high = options.slices
    if len(options.size) != 2 or min(options.size) < 16 or len(options.spacing) != 3 or not 1 <= low <= high:
        raise MedgapError(f"synth cardiac-2d: need a 2-D size ≥ 16, three spacings and 1 ≤ slices[0] ≤ slices[1], "
                          f"got {options}")
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
