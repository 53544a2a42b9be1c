"""Deviation tables: every method page embeds the table generated from the modules' DEVIATIONS lists, every
entry is filled in, and every "official behaviour as an option" is a config override the method accepts."""

import importlib
import json

import pytest

from medgap.config import load_config
from medgap.methods.deviations import (BEGIN, DOCS_DIR, END, PAGES, REGENERATE, Deviation, deviation_table, embed,
                                       expected_page, option_text)
from medgap.reproduce.runner import CONFIGS_DIR

# a shipped config of each method, to check that its options load
CONFIGS = {"shaspec": "shaspec_brain_tumour.yaml", "zero_filling": "zerofill_brain_tumour.yaml",
           "ss_net": "ss_net_cardiac2d.yaml", "mean_teacher": "mean_teacher_cardiac2d.yaml",
           "contig": "contig_fundus.yaml", "simclr": "simclr_fundus.yaml",
           "classifier": "contig_fundus_downstream.yaml", "amvlm": "amvlm_chest.yaml",
           "amvlm_ssmis": "amvlm_ssmis_chest.yaml"}
MODULES = [module for modules in PAGES.values() for module in modules]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_method_pages_embed_the_current_table(page):
    text = (DOCS_DIR / f"{page}.md").read_text(encoding="utf-8")
    assert text == expected_page(page), f"docs/methods/{page}.md: the deviation table is stale; run {REGENERATE}"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == sum(len(importlib.import_module(f"medgap.methods.{m}").DEVIATIONS) for m in PAGES[page])


@pytest.mark.parametrize("module", MODULES)
def test_every_deviation_is_filled_in_and_its_option_loads(module):
    deviations = importlib.import_module(f"medgap.methods.{module}").DEVIATIONS
    assert deviations and all(isinstance(item, Deviation) for item in deviations)
    for item in deviations:
        assert all(text.strip() for text in (item.what, item.medgap, item.official, item.why, item.source)), item
        if item.option:  # the official behaviour is one set of overrides away: the method accepts them
            config = load_config(CONFIGS_DIR / CONFIGS[module],
                                 [f"{key}={json.dumps(value)}" for key, value in item.option.items()])
            for key, value in item.option.items():
                section, name = key.split(".", 1)
                assert getattr(getattr(config, section), name) == value, key


def test_renderer_and_markers():
    assert option_text(None) == "no"
    assert option_text({"method.missing_feature": "copy", "optim.lr": 0.01}) == \
        "yes: `method.missing_feature: copy`, `optim.lr: 0.01`"
    table = deviation_table(["zero_filling"])  # one module: no method column
    header, separator, row = table.splitlines()
    assert header.startswith("| what | medgap |") and separator == "|" + "---|" * 6
    assert row.count(" | ") == 5 and row.endswith("|")
    page = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    assert embed(page, "NEW\n") == f"intro\n{BEGIN}\nNEW\n{END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        embed("no markers here", "NEW\n")
