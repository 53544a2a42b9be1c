"""One module per method; each defines ``Config`` (a :class:`MethodConfig`) and ``build(config, spec)``.

A method is added by writing one module here and registering its name below.
"""

from __future__ import annotations

import importlib

from medgap.errors import ConfigError

METHODS = {
    "supervised": "medgap.methods.supervised",
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
