"""The docs stay true: generated references are current, and every fast shell block of the README and docs/
runs from a fresh working folder (blocks fenced as ```bash slow, or whose first line is ``# slow``, are skipped)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medgap.data.synthetic import GENERATORS
from medgap.reference import cli_reference, config_reference

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```bash([^\n]*)\n(.*?)^```", re.S | re.M)


def fast_blocks(page: Path) -> list[str]:
    blocks = []
    for info, body in BLOCK.findall(page.read_text(encoding="utf-8")):
        if "slow" in info.split() or body.lstrip().startswith("# slow"):
            continue
        blocks.append(body)
    return blocks


def test_references_are_generated_from_the_current_code():
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == cli_reference(), \
        "docs/cli.md is stale: run python -m medgap.reference docs"
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == config_reference(), \
        "docs/configuration.md is stale: run python -m medgap.reference docs"
    for name in GENERATORS:
        assert name in re.sub(r"-\n\s+", "-", cli_reference()), name


def test_every_page_links_to_files_that_exist():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not re.match(r"[a-z]+://", target):
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: broken link {target}"


def test_pages_stand_alone():
    """A page may point only into the repository: no absolute machine paths, no specs kept beside it."""
    outside = re.compile(r"(?<![\w.])/(?:work|home|tmp|Users)/|\.\./shared/|\bspecs/")
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            assert not outside.search(line), f"{page.relative_to(ROOT)}:{number}: points outside the repository: {line}"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if fast_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_blocks_run(page, tmp_path):
    # A fresh folder that looks like the repository root: configs/ is read, everything else is written anew.
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    script = "set -euo pipefail\n" + "\n".join(fast_blocks(page))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "2"}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{page.name}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
