"""Converters from public dataset layouts into medgap's (nnU-Net v2) folder layout.

Each converter module defines ``convert(source, out_dir, **options) -> Path`` and a one-line ``DESCRIPTION``;
``medgap convert FORMAT SOURCE OUT_DIR [--option NAME=VALUE ...]`` calls it, the options being the keyword
arguments of ``convert`` (:func:`parse_options`). Converters write a new folder and never modify the source.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from medgap.errors import MedgapError

CONVERTERS: dict[str, str] = {
    "msd": "medgap.data.convert.msd",
    "brats": "medgap.data.convert.brats",
    "la_h5": "medgap.data.convert.la_h5",
    "acdc_h5": "medgap.data.convert.acdc_h5",
    "lvit": "medgap.data.convert.lvit",
    "genetics": "medgap.data.genetics",
}


def converter(name: str):
    """The converter module of a format (``la-h5`` and ``la_h5`` both name LA's)."""
    name = name.replace("-", "_")
    if name not in CONVERTERS:
        known = ", ".join(sorted(CONVERTERS)) or "none yet"
        raise MedgapError(f"unknown format {name!r} (known: {known})")
    return importlib.import_module(CONVERTERS[name])


@dataclass(frozen=True)
class Option:
    name: str
    annotation: str  # as written in the signature, e.g. "tuple[float, float, float] | None"
    default: object


def options(name: str) -> list[Option]:
    """The options of a format: the keyword parameters of its ``convert`` after ``source`` and ``out_dir``.

    Read from the module's source (not imported), so ``medgap convert --help`` stays fast.
    """
    module = importlib.util.find_spec(CONVERTERS[name.replace("-", "_")])
    lines = Path(module.origin).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def convert("))
    for end in range(start + 1, len(lines) + 1):  # parse the signature alone: the whole file costs ~10 ms
        try:
            function = ast.parse("\n".join(lines[start:end]) + "\n    pass").body[0]
            break
        except SyntaxError:
            continue
    arguments = function.args
    positional = arguments.args[2:]
    defaults = [None] * (len(positional) - len(arguments.defaults)) + arguments.defaults
    pairs = [*zip(positional, defaults), *zip(arguments.kwonlyargs, arguments.kw_defaults)]
    return [Option(argument.arg, ast.unparse(argument.annotation) if argument.annotation else "str",
                   None if default is None else ast.literal_eval(default)) for argument, default in pairs]


def describe_options(name: str) -> str:
    """``val_count=8, seed=0, ...`` (defaults; ``auto`` where the converter decides) for help texts."""
    return ", ".join(f"{o.name}={'auto' if o.default is None else _show(o.default)}" for o in options(name)) or "none"


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def parse_options(name: str, items: list[str]) -> dict:
    """``["val_count=2", "spacing=1.5,1.5,10"]`` → keyword arguments of the format's ``convert``, typed by its
    signature: ``int``, ``float``, ``bool``, ``str`` or a tuple of numbers (comma-separated), each possibly
    ``| None`` (written ``none``).

    Raises:
        MedgapError: an item without ``=``, an unknown option (the known ones are listed), a value of the wrong type.
    """
    known = {option.name: option for option in options(name)}
    parsed = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not equals:
            raise MedgapError(f"--option {item!r}: expected NAME=VALUE (options of {name}: {describe_options(name)})")
        if key not in known:
            raise MedgapError(f"--option {key}: unknown option of {name} (known: {describe_options(name)})")
        parsed[key] = _typed(known[key], text.strip())
    return parsed


def _typed(option: Option, text: str):
    annotation = option.annotation
    if text.lower() == "none" and "None" in annotation:
        return None
    try:
        if "tuple" in annotation:
            return tuple(float(part) for part in text.split(","))
        if "bool" in annotation:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if "int" in annotation:
            return int(text)
        if "float" in annotation:
            return float(text)
    except ValueError:
        kind = next(kind for word, kind in (("tuple", "comma-separated numbers"), ("bool", "true or false"),
                                            ("int", "an integer"), ("float", "a number")) if word in annotation)
        raise MedgapError(f"--option {option.name}: {text!r} is not {kind}") from None
    return text
