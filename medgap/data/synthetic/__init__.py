"""Synthetic datasets that imitate the public ones medgap's methods were published on, small enough for a laptop.

One generator per task family, each writing the nnU-Net v2 folder layout (see ``docs/datasets.md``):

- ``brain-tumour``: BraTS-like FLAIR/T1/T1c/T2 glioma MRI, nnU-Net v2 region labels WT/TC/ET (ShaSpec).
- ``atrium-3d``: LA-challenge-like 3-D MRI of the left atrium (SS-Net 3-D).
- ``cardiac-2d``: ACDC-like short-axis cine stacks with RV/myocardium/LV (SS-Net 2-D).
- ``digits-av``: scikit-learn's digit images paired with a digit-dependent spectrogram (ShaSpec classification).
- ``fundus-genetics``: fundus-like photographs of an msprime-simulated cohort with PGS, burden and SNPs (ContIG).
- ``chest-xray-text``: chest-radiograph-like images with infection masks and QaTa-style reports (AMVLM).

Example:
    >>> from medgap.data.synthetic import generate
    >>> generate("brain-tumour", "data/brain_tumour", cases=40, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medgap.data.synthetic import atrium, brain_tumour, cardiac, chest_xray_text, digits_av, fundus_genetics
from medgap.data.synthetic.common import Generator, SyntheticCase, generate_dataset
from medgap.errors import MedgapError

GENERATORS: dict[str, Generator] = {
    generator.name: generator
    for generator in (brain_tumour.GENERATOR, atrium.GENERATOR, cardiac.GENERATOR, digits_av.GENERATOR,
                      chest_xray_text.GENERATOR, fundus_genetics.GENERATOR)
}


def generate(
    name: str, out_dir: str | os.PathLike, cases: int | None = None, seed: int = 0, test_cases: int | None = None,
    exist_ok: bool = False, progress: Callable[[int, int], Any] | None = None, **options: Any,
) -> Path:
    """Generate the synthetic dataset ``name`` into ``out_dir`` and return the folder.

    Writes ``imagesTr/CASE_0000.nii.gz`` (one float32 file per channel), ``labelsTr/CASE.nii.gz`` (uint8),
    ``imagesTs``/``labelsTs`` with held-out cases, and ``dataset.json`` last, recording the parameters under
    ``"synthetic"``. Case ``k`` depends only on ``(seed, k)``, not on ``cases``; held-out cases use another
    random stream.

    Args:
        name: a key of :data:`GENERATORS`.
        out_dir: the dataset folder; must be absent or empty unless ``exist_ok``.
        cases: training cases (default: the generator's, e.g. 40).
        seed: the random seed.
        test_cases: held-out cases in ``imagesTs``/``labelsTs`` (default 4).
        exist_ok: reuse ``out_dir`` if it holds a dataset generated with the same parameters (returns at once);
            a different one is an error. A folder without ``dataset.json`` (interrupted run) is regenerated.
        progress: called as ``progress(done, total)`` after each case.
        **options: generator options (e.g. ``spacing``); see each generator's ``options`` dataclass.

    Raises:
        MedgapError: unknown name, bad option, or an ``out_dir`` that holds something else.
    """
    if name not in GENERATORS:
        raise MedgapError(f"synth: unknown dataset {name!r}; known: {', '.join(GENERATORS)}")
    if hasattr(GENERATORS[name], "generate"):  # classification sets write their own layout (digits-av)
        return GENERATORS[name].generate(out_dir, cases=cases, seed=seed, test_cases=test_cases, exist_ok=exist_ok,
                                         progress=progress, **options)
    return generate_dataset(GENERATORS[name], out_dir, cases=cases, seed=seed, test_cases=test_cases,
                            exist_ok=exist_ok, progress=progress, **options)


__all__ = ["GENERATORS", "Generator", "SyntheticCase", "generate"]
