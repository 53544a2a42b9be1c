"""Converters from public dataset layouts into medgap's (nnU-Net v2) folder layout.

Each converter module defines ``convert(source, out_dir, **options) -> Path`` and a one-line ``DESCRIPTION``;
``medgap convert FORMAT SOURCE OUT_DIR`` calls it. Converters write a new folder and never modify the source.
"""

from __future__ import annotations

import importlib

from medgap.errors import MedgapError

CONVERTERS: dict[str, str] = {
    "brats": "medgap.data.convert.brats",
    "la_h5": "medgap.data.convert.la_h5",
    "acdc_h5": "medgap.data.convert.acdc_h5",
    "lvit": "medgap.data.convert.lvit",
    "genetics": "medgap.data.genetics",
}


def converter(name: str):
    if name not in CONVERTERS:
        known = ", ".join(sorted(CONVERTERS)) or "none yet"
        raise MedgapError(f"unknown format {name!r} (known: {known})")
    return importlib.import_module(CONVERTERS[name])
