"""One module per method; each defines ``Config`` (a :class:`MethodConfig`) and ``build(config, spec)``.

A method is added by writing one module here and registering its name below.
"""

from __future__ import annotations

import importlib

from medgap.errors import ConfigError

METHODS = {
    "supervised": "medgap.methods.supervised",
    "shaspec": "medgap.methods.shaspec",
    "zero_filling": "medgap.methods.zero_filling",
    "mean_teacher": "medgap.methods.mean_teacher",
    "ss_net": "medgap.methods.ss_net",
    "amvlm": "medgap.methods.amvlm",
    "amvlm_ssmis": "medgap.methods.amvlm_ssmis",
    "contig": "medgap.methods.contig",
    "simclr": "medgap.methods.simclr",
    "image_classifier": "medgap.methods.classifier",
}


def method_module(name: str, source: str = "<config>"):
    if name not in METHODS:
        raise ConfigError(f"{source}: unknown method.name {name!r} (known: {', '.join(METHODS)})")
    return importlib.import_module(METHODS[name])


def method_config_class(name: str, source: str = "<config>"):
    return method_module(name, source).Config


def build_method(config, spec):
    """Instantiate the method named in ``config.method.name`` for the dataset ``spec``."""
    return method_module(config.method.name).build(config, spec)
