"""``digits-av``: a two-modality digit classification set in the spirit of AV-MNIST (ShaSpec's classification task).

What it imitates:
    AV-MNIST pairs an MNIST digit image with a spectrogram of a spoken digit. Here modality 0 (``image``) is a
    real handwritten digit from scikit-learn's bundled UCI digits (1,797 8×8 images, offline), upsampled to
    32×32 and degraded by noise so that it is informative but not sufficient (AV-MNIST also degrades its images);
    modality 1 (``spectrogram``) is a synthetic 32×32 time–frequency image whose tone pattern depends on the
    digit: a fundamental at frequency bin 3 + 2.6·d (± jitter) with a second harmonic where it fits, switched on
    for a random stretch of time, over speech-like exponential background noise. Neighbouring digits overlap in
    pitch, so the spectrogram alone is ambiguous too; together the two are better than either.

What it does not imitate:
    Real speech (formants, speakers, words), MNIST's 28×28 size and 70k images.

Layout: ``imagesTr/Digit_0000_0000.png`` (image) and ``_0001.png`` (spectrogram), ``labelsTr.csv``
(case_id,class), ``dataset.json`` with ``"task": "classification"``. Every case has both files; SMIL-style
settings (only 10 % / 20 % of training cases keep the spectrogram) are a training option
(``method.sparse_modalities: [spectrogram]``, ``method.sparse_keep_ratio``; see
:mod:`medgap.methods.modality_dropout`) so validation/test cases keep both modalities and one dataset serves
every ratio.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medgap.atomic import write_text
from medgap.data.dataset_json import write_dataset_json
from medgap.data.io import write_png
from medgap.errors import MedgapError

CHANNELS = ("image", "spectrogram")
SIZE = 32
VERSION = 1


@dataclass
class DigitsAVOptions:
    image_noise: float = 0.45  # std of Gaussian noise on the [0, 1] digit image
    spectrogram_noise: float = 0.7  # mean of the exponential background relative to the tone
    pitch_jitter: float = 1.3  # std of the fundamental's frequency bin


def spectrogram(digit: int, rng: np.random.Generator, options: DigitsAVOptions) -> np.ndarray:
    """A ``(32, 32)`` (frequency, time) magnitude image in [0, 1] for ``digit``."""
    frequency = np.arange(SIZE, dtype=np.float32)[:, None]
    time = np.arange(SIZE, dtype=np.float32)[None, :]
    fundamental = 3.0 + 2.6 * digit + rng.normal(0.0, options.pitch_jitter)
    length = rng.integers(12, 25)
    onset = rng.integers(0, SIZE - length + 1)
    envelope = ((time >= onset) & (time < onset + length)).astype(np.float32)
    tone = np.exp(-0.5 * ((frequency - fundamental) / 0.9) ** 2)
    if 2 * fundamental < SIZE:
        tone = tone + 0.6 * np.exp(-0.5 * ((frequency - 2 * fundamental) / 1.1) ** 2)
    signal = tone * envelope * rng.uniform(0.7, 1.0)
    noise = rng.exponential(options.spectrogram_noise * 0.5, (SIZE, SIZE)).astype(np.float32)
    return np.clip((signal + noise) / 1.6, 0.0, 1.0)


def digit_image(pixels: np.ndarray, rng: np.random.Generator, options: DigitsAVOptions) -> np.ndarray:
    """An 8×8 digit (values 0–16) → ``(32, 32)`` in [0, 1], bilinearly upsampled, shifted ±1 px, noisy."""
    image = ndimage.zoom(pixels.astype(np.float32) / 16.0, SIZE / 8, order=1)
    image = np.roll(image, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
    return np.clip(image + rng.normal(0.0, options.image_noise, image.shape), 0.0, 1.0)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(image * 255.0).astype(np.uint8)


class DigitsAVGenerator:
    """Registry entry for ``medgap synth digits-av`` (writes its own classification layout)."""

    name = "digits-av"
    case_prefix = "Digit"
    channel_names = CHANNELS
    description = "Two-modality digits (sklearn handwritten digit + digit-dependent tone spectrogram), AV-MNIST-like"

    def generate(self, out_dir: str | os.PathLike, cases: int | None = None, seed: int = 0,
                 test_cases: int | None = None, exist_ok: bool = False,
                 progress: Callable[[int, int], Any] | None = None, **options: Any) -> Path:
        """Write ``cases`` (default all 1,797) digits; ``test_cases`` is ignored (the split holds out test cases)."""
        from sklearn.datasets import load_digits

        try:
            resolved = DigitsAVOptions(**options)
        except TypeError as error:
            raise MedgapError(f"synth digits-av: bad option ({error})") from None
        digits = load_digits()
        total = len(digits.target) if cases is None else int(cases)
        if not 1 <= total <= len(digits.target):
            raise MedgapError(f"synth digits-av: cases must be 1..{len(digits.target)}, got {cases}")
        synthetic = {"generator": self.name, "version": VERSION, "cases": total, "seed": int(seed),
                     "options": asdict(resolved)}
        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()):
            previous = None
            if (out_dir / "dataset.json").is_file():
                previous = json.loads((out_dir / "dataset.json").read_text(encoding="utf-8")).get("synthetic")
            if not exist_ok:
                raise MedgapError(f"{out_dir}: exists; pass --exist-ok to reuse a dataset with the same parameters")
            if previous == synthetic:
                return out_dir
            if previous is not None:
                raise MedgapError(f"{out_dir}: holds a digits-av dataset with other parameters; choose another folder")
            shutil.rmtree(out_dir / "imagesTr", ignore_errors=True)  # an interrupted generation
        (out_dir / "imagesTr").mkdir(parents=True, exist_ok=True)
        # A seeded permutation picks which digits are used when fewer than all are asked for.
        order = np.random.default_rng([seed, 0]).permutation(len(digits.target))[:total]
        rows = ["case_id,class"]
        for done, index in enumerate(order, start=1):
            rng = np.random.default_rng([seed, 1, int(index)])
            digit = int(digits.target[index])
            case_id = f"{self.case_prefix}_{int(index):04d}"
            image = digit_image(digits.images[index], rng, resolved)
            write_png(out_dir / "imagesTr" / f"{case_id}_0000.png", _to_uint8(image))
            write_png(out_dir / "imagesTr" / f"{case_id}_0001.png", _to_uint8(spectrogram(digit, rng, resolved)))
            rows.append(f"{case_id},{digit}")
            if progress is not None:
                progress(done, total)
        write_text(out_dir / "labelsTr.csv", "\n".join(rows) + "\n")
        write_dataset_json(out_dir, {
            "name": "SyntheticDigitsAV", "description": self.description, "task": "classification",
            "classes": [str(d) for d in range(10)], "channel_names": {"0": CHANNELS[0], "1": CHANNELS[1]},
            "file_ending": ".png", "numTraining": total, "synthetic": synthetic,
            "reference": "Images: UCI ML hand-written digits (Alpaydin & Kaynak 1998) as bundled with scikit-learn",
        })
        return out_dir


GENERATOR = DigitsAVGenerator()
