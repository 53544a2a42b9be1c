"""The method registry: a method name → the module that builds it and the dataclass of its options.

Torch-free on purpose: loading a config needs only the options (:mod:`medgap.methods.options`), and the training
loop builds a method through :func:`build_method` without knowing any method. A method is added with one module in
``medgap/methods/`` (a ``build(config, spec)`` returning a :mod:`medgap.methods.base` kind), its options class in
``medgap/methods/options.py`` (or :class:`~medgap.config.MethodConfig` when it has none) and one line below.
"""

from __future__ import annotations

import importlib

from medgap.config import MethodConfig
from medgap.errors import ConfigError
from medgap.methods import options

# name: (module with build(config, spec), options dataclass: the YAML ``method:`` section)
METHODS: dict[str, tuple[str, type[MethodConfig]]] = {
    "supervised": ("medgap.methods.supervised", options.SupervisedOptions),
    "shaspec": ("medgap.methods.shaspec", options.ShaSpecOptions),
    "zero_filling": ("medgap.methods.zero_filling", options.ZeroFillingOptions),
    "mean_teacher": ("medgap.methods.mean_teacher", options.MeanTeacherOptions),
    "ss_net": ("medgap.methods.ss_net", options.SSNetOptions),
    "amvlm": ("medgap.methods.amvlm", options.AMVLMOptions),
    "amvlm_ssmis": ("medgap.methods.amvlm_ssmis", options.AMVLMSSMISOptions),
    "contig": ("medgap.methods.contig", options.ContIGOptions),
    "simclr": ("medgap.methods.simclr", options.SimCLROptions),
    "image_classifier": ("medgap.methods.classifier", options.ImageClassifierOptions),
}


def _entry(name: str, source: str) -> tuple[str, type[MethodConfig]]:
    if name not in METHODS:
        raise ConfigError(f"{source}: unknown method.name {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name]


def method_config_class(name: str, source: str = "<config>") -> type[MethodConfig]:
    """The options dataclass of method ``name`` (imports no torch)."""
    return _entry(name, source)[1]


def method_module(name: str, source: str = "<config>"):
    """The module of method ``name`` (imports torch and the method's networks)."""
    return importlib.import_module(_entry(name, source)[0])


def build_method(config, spec):
    """Instantiate the method named in ``config.method.name`` for the dataset ``spec``."""
    return method_module(config.method.name).build(config, spec)
