"""The wheel is what a `pip install` user gets: it must carry the configs, the license and the extras."""

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from medgap import __version__
from medgap.cli import main
from medgap.optional import OPTIONAL, MissingDependencyError, require

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Build the wheel from a copy of the sources (an in-tree build would leave build/ in the repository)."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:  # pyproject's build-system (SPDX license expression)
        pytest.skip(f"setuptools {setuptools.__version__} < 77 cannot build without isolation")
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE", "configs"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, source / name)
    shutil.copytree(ROOT / "medgap", source / "medgap", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", str(source),
                    "-w", str(source / "dist")], check=True, capture_output=True, timeout=300)
    return zipfile.ZipFile(next((source / "dist").glob("medgap-*.whl")))


def test_the_wheel_ships_every_config_and_the_license(wheel):
    names = set(wheel.namelist())
    assert {f"medgap/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")} <= names
    assert any(name.endswith("/LICENSE") for name in names)
    metadata = wheel.read(f"medgap-{__version__}.dist-info/METADATA").decode()
    assert f"Version: {__version__}" in metadata
    hard = re.findall(r"^Requires-Dist: ([\w-]+)[^;\n]*$", metadata, re.M)  # without an `extra ==` marker
    assert not {"nilearn", "msprime", "bed-reader", "captum", "tensorboard", "onnx"} & set(hard)


def test_every_optional_package_is_in_the_extra_its_error_names():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, (package, extra) in OPTIONAL.items():
        assert any(re.match(rf"{package}\b", requirement) for requirement in extras[extra]), (module, extra)


def test_a_missing_optional_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bed_reader", None)  # import of a None entry raises ImportError
    with pytest.raises(MissingDependencyError, match=r"^reading x needs the optional package bed-reader, not "
                                                      r"installed: pip install 'medgap\[genetics\]'$"):
        require("bed_reader", "reading x")


def test_version_and_the_packaged_configs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"medgap {__version__}"
    from medgap.reproduce.runner import CONFIGS_DIR

    assert sorted(p.name for p in CONFIGS_DIR.glob("*.yaml")) == sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
