"""One module per method; each defines ``build(config, spec)`` returning one of the kinds of
:mod:`medgap.methods.base` and re-exports its options (:mod:`medgap.methods.options`) as ``Config``.

A method is added by writing one module here and registering its name in :mod:`medgap.registry`.
"""

from __future__ import annotations

__all__ = ["METHODS", "build_method", "method_config_class", "method_module"]


def __getattr__(name: str):
    # The registry's names, for code that imports them from here; looked up lazily because the registry imports
    # medgap.methods.options (and so this package) itself.
    if name in __all__:
        import medgap.registry

        return getattr(medgap.registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
