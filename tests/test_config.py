from pathlib import Path

import pytest
import yaml

from medgap.config import config_to_dict, load_config, save_config
from medgap.errors import ConfigError


def test_defaults_overrides_and_roundtrip(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("method: {name: supervised}\ndata: {dataset_dir: /d, patch_size: [32, 32]}\n")
    config = load_config(path, ["trainer.max_steps=200", "optim.lr=1e-3", "data.labelled_ratio=0.1",
                                "inference.patch_size=null"])
    assert config.name == "exp" and config.trainer.max_steps == 200 and config.optim.lr == 1e-3
    assert config.data.patch_size == [32, 32] and config.data.labelled_ratio == 0.1
    assert config.method.dice_weight == 1.0  # the method's own defaults
    save_config(config, tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert config_to_dict(again) == config_to_dict(config)
    assert yaml.safe_load((tmp_path / "resolved.yaml").read_text())["trainer"]["seed"] == 0


@pytest.mark.parametrize("text, overrides, message", [
    ("trainer: {max_stepz: 3}\n", [], "unknown key 'trainer.max_stepz'"),
    ("trainer: {max_steps: ten}\n", [], "trainer.max_steps must be int, got 'ten'"),
    ("", ["optim.name=rmsprop"], "optim.name must be one of"),
    ("", ["data.patch_size=12"], "data.patch_size must be list"),
    ("method: {name: nope}\n", [], "unknown method.name 'nope'"),
    ("method: {name: supervised, dice_wieght: 2}\n", [], "unknown key 'method.dice_wieght'"),
    ("trainer: [1, 2]\n", [], "trainer must be a mapping"),
    ("data: {dataset_dir: x\n", [], "not valid YAML"),
    ("", ["trainer.max_steps"], "expected key.path=value"),
])
def test_bad_configs_are_one_clear_line(tmp_path, text, overrides, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path, overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="must be int"):
        load_config(None, ["trainer.max_steps=true"])


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.name == path.stem and config.trainer.max_steps > 0 and config.data.patch_size


def test_loading_every_config_and_reporting_a_typo_imports_no_torch():
    """A config mistake is reported before torch (seconds) is imported: the options live in methods/options.py."""
    import os
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    script = ("import sys, pathlib, medgap.config as c\n"
              "from medgap.errors import ConfigError\n"
              "for path in sorted(pathlib.Path('configs').glob('*.yaml')):\n"
              "    c.load_config(path)\n"
              "try:\n"
              "    c.load_config('configs/shaspec_brain_tumour.yaml', ['method.dao_wieght=0.1'])\n"
              "except ConfigError as error:\n"
              "    assert 'method.dao_wieght' in str(error)\n"
              "else:\n"
              "    raise AssertionError('typo accepted')\n"
              "assert 'torch' not in sys.modules, 'loading a config imported torch'\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr


def test_every_method_module_reexports_its_options_as_config():
    import importlib

    from medgap.registry import METHODS

    for name, (module, options) in METHODS.items():
        assert importlib.import_module(module).Config is options, name
        assert options().name == name
