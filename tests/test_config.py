import re
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


@pytest.mark.parametrize("override, message", [
    ("trainer.val_every=0", "override 'trainer.val_every=0': trainer.val_every must be >= 1, got 0"),
    ("trainer.max_steps=-5", "override 'trainer.max_steps=-5': trainer.max_steps must be >= 1, got -5"),
    ("data.patch_size=[64,0,64]", "override 'data.patch_size=[64,0,64]': data.patch_size[1] must be >= 1, got 0"),
    ("data.labelled_batch_size=0", "data.labelled_batch_size must be >= 1, got 0"),
    ("optim.lr=.nan", "override 'optim.lr=.nan': optim.lr must be a finite number, got nan"),
    ("optim.lr=0", "optim.lr must be > 0, got 0.0"),
    ("optim.grad_clip=-1", "optim.grad_clip must be > 0, got -1.0"),
    ("data.labelled_ratio=1.5", "data.labelled_ratio must be in (0, 1], got 1.5"),
    ("inference.overlap=1", "inference.overlap must be in [0, 1), got 1.0"),
    ("data.augmentation.flip_probability=2", "data.augmentation.flip_probability must be in [0, 1], got 2.0"),
    ("data.augmentation.scaling_range=[1.4,0.7]", "override 'data.augmentation.scaling_range=[1.4,0.7]': "
     "data.augmentation.scaling_range must be [low, high] with low <= high, got [1.4, 0.7]"),
    ("data.augmentation.gamma_range=[0,1.5]", "data.augmentation.gamma_range[0] must be > 0, got 0.0"),
    ("model.dropout=.inf", "model.dropout must be a finite number, got inf"),
    ("trainer.devices=0", "trainer.devices must be >= 1, got 0"),
    ("data.val_fraction=0.9", "data.val_fraction + data.test_fraction must be < 1"),
    ("trainer.max_step=5", "override 'trainer.max_step=5': unknown key 'trainer.max_step' (did you mean "
                           "'trainer.max_steps'?)"),
    ("max_steps=5", "unknown key 'max_steps' (did you mean 'trainer.max_steps'?)"),
    ("optim.lr=fast", "override 'optim.lr=fast': optim.lr must be float"),
])
def test_out_of_range_values_and_bad_overrides_name_the_override(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(Path(__file__).parents[1] / "configs" / "supervised_brain_tumour.yaml", [override])
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("trainer: {val_every: 0}\n", "bad.yaml: trainer.val_every must be >= 1, got 0"),
    ("trainer: {max_stepz: 3}\n", "bad.yaml: unknown key 'trainer.max_stepz' (did you mean 'trainer.max_steps'?)"),
])
def test_a_bad_key_in_the_file_names_the_file(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(tmp_path / "bad.yaml", ["trainer.seed=1"])  # an unrelated override is not blamed


@pytest.mark.parametrize("overrides", [["trainer.val_every=1", "trainer.devices=auto", "optim.grad_clip=null",
                                        "data.labelled_count=0", "inference.overlap=0", "data.val_fraction=0"]])
def test_edge_values_inside_the_ranges_are_accepted(overrides):
    config = load_config(None, overrides)
    assert config.trainer.val_every == 1 and config.optim.grad_clip is None and config.inference.overlap == 0.0


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
