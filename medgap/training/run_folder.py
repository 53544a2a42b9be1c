"""Run folders: creation rules (refuse to overwrite unless asked), a lock against two writers, provenance."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

from medgap.atomic import is_within
from medgap.errors import RunFolderError

LOCK_NAME = ".lock"
# Written by medgap when it creates a run folder: only a folder holding it may be cleared by --overwrite.
MARKER_NAME = ".medgap_run"
# What medgap itself writes into a run folder (train, evaluate, reproduce): --overwrite removes only these.
OWN_ENTRIES = ("config.yaml", "splits.json", "checkpoints", "metrics.jsonl", "summary.json", "plots", "analysis",
               "reproduce.json", "amvlm_scores.csv", "amvlm_scores.json", LOCK_NAME, MARKER_NAME)
OWN_PATTERNS = ("results*.md", "results*.csv", "results*.json", "*per_case.csv", "subsets*.md", "subsets*.csv",
                "subsets*.json")
# The layout of a run written before the marker existed: still resumable, never cleared by --overwrite.
LEGACY_LAYOUT = ("config.yaml", "metrics.jsonl", "checkpoints/last.pt")


def prepare_run_folder(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool,
                       dataset_dir: str | os.PathLike | None = None, provenance: dict | None = None) -> Path:
    """Make ``run_dir`` ready for a run.

    A non-empty existing folder is refused unless ``resume`` (it must hold ``checkpoints/last.pt``) or
    ``overwrite``. ``overwrite`` clears only a folder medgap marked as its run folder (``.medgap_run``), and only
    medgap's own files in it: a typo cannot wipe a project folder. A marked folder without checkpoints, log or
    summary is a run that never got going (it failed or was killed before training began): it is started again
    without ``--overwrite``. The run folder may not be the ``dataset_dir``, lie inside it or contain it.
    ``provenance`` (e.g. the dataset path as given and the working directory) is kept in the marker.
    """
    run_dir = Path(run_dir)
    if dataset_dir:
        if is_within(run_dir, dataset_dir) or is_within(dataset_dir, run_dir):
            raise RunFolderError(f"{run_dir}: run folder must not be the dataset folder "
                                 f"{Path(dataset_dir).resolve()}, inside it or contain it")
    if resume and overwrite:
        raise RunFolderError(f"{run_dir}: give --resume or --overwrite, not both")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: run folder is an existing file")
    exists = run_dir.is_dir() and any(run_dir.iterdir())
    marked = (run_dir / MARKER_NAME).is_file()
    if resume:
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise RunFolderError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        check_unlocked(run_dir)
        for stale in (run_dir / "checkpoints").glob(".*.tmp*"):  # half-written by a killed run
            stale.unlink()
        if not marked:  # a run of an older medgap: mark it now that medgap continues it
            _write_marker(run_dir, provenance)
        return run_dir
    if exists:
        unstarted = marked and _unstarted(run_dir)
        if not marked:
            if all((run_dir / entry).is_file() for entry in LEGACY_LAYOUT):
                raise RunFolderError(
                    f"{run_dir}: a run of an older medgap (no {MARKER_NAME} marker), which --overwrite does not "
                    f"delete; --resume it, remove it yourself (rm -r {run_dir}) or choose another --run-dir")
            raise RunFolderError(
                f"{run_dir}: refusing to overwrite a folder that is not a medgap run folder (no {MARKER_NAME} marker); "
                "choose another --run-dir" if overwrite else
                f"{run_dir}: run folder already exists and is not a medgap run folder (no {MARKER_NAME} marker); "
                "choose another --run-dir")
        if not (overwrite or unstarted):
            raise RunFolderError(f"{run_dir}: run folder already exists (use --resume to continue or --overwrite)")
        check_unlocked(run_dir)
        clear_run_folder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_marker(run_dir, provenance)
    return run_dir


def own_entries(run_dir: Path) -> list[Path]:
    """The files and folders of ``run_dir`` that medgap writes (anything else in it is the user's)."""
    found = {run_dir / name for name in OWN_ENTRIES if (run_dir / name).exists() or (run_dir / name).is_symlink()}
    found |= {path for pattern in OWN_PATTERNS for path in run_dir.glob(pattern)}
    return sorted(found)


def clear_run_folder(run_dir: Path) -> None:
    """Remove medgap's own entries from a marked run folder (the marker last); other files stay."""
    for path in own_entries(run_dir):
        if path.name == MARKER_NAME:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    (run_dir / MARKER_NAME).unlink(missing_ok=True)


def remove_unstarted_run(run_dir: Path) -> None:
    """After a run failed before its first checkpoint (bad data, bad config): take away what it wrote, so the
    corrected command runs as if nothing happened. Only a marked folder, only medgap's files, and the folder itself
    only when that leaves it empty."""
    run_dir = Path(run_dir)
    if not (run_dir / MARKER_NAME).is_file() or not _unstarted(run_dir):
        return  # training had begun: its log and checkpoints stay
    clear_run_folder(run_dir)
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only if empty


def _unstarted(run_dir: Path) -> bool:
    """Whether a marked run folder holds nothing of training yet (no checkpoint, log row or summary)."""
    return not any((run_dir / name).exists() for name in ("checkpoints", "metrics.jsonl", "summary.json"))


def _write_marker(run_dir: Path, provenance: dict | None = None) -> None:
    import medgap
    from medgap.atomic import write_json

    write_json(run_dir / MARKER_NAME, {"medgap": medgap.__version__,
                                        "note": "a medgap run folder: medgap train --overwrite may clear it",
                                        **(provenance or {})})


def with_absolute_paths(config):
    """``config`` with ``data.dataset_dir`` and ``data.cache_dir`` made absolute (symlinks resolved): a run folder
    must name its data the same way from any working directory (``evaluate``/``predict`` elsewhere)."""
    import dataclasses

    data = config.data
    absolute = {key: str(Path(value).resolve()) for key in ("dataset_dir", "cache_dir")
                if (value := getattr(data, key)) and not Path(value).is_absolute()}
    return dataclasses.replace(config, data=dataclasses.replace(data, **absolute)) if absolute else config


def check_unlocked(run_dir: Path) -> None:
    lock = run_dir / LOCK_NAME
    if lock.exists():
        pid = _lock_pid(lock)
        if pid is not None and _alive(pid):
            raise RunFolderError(f"{run_dir}: in use by another run (process {pid}; lock file {lock})")


class RunLock:
    """An exclusive lock file holding the owner's PID; a stale lock (dead PID) is taken over."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME

    def __enter__(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = _lock_pid(self.path)
                if pid is not None and _alive(pid) and pid != os.getpid():
                    raise RunFolderError(f"{self.path.parent}: in use by another run (process {pid})") from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return self
        raise RunFolderError(f"{self.path}: could not take the run lock")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _lock_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def environment() -> dict:
    """Versions, machine and git revision for ``summary.json``."""
    import monai
    import numpy
    import torch

    import medgap

    return {
        "medgap": medgap.__version__, "git_revision": git_revision(), "python": platform.python_version(),
        "torch": torch.__version__, "monai": monai.__version__, "numpy": numpy.__version__,
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def git_revision() -> str | None:
    source = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line after a crash
    return rows
