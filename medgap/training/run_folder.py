"""Run folders: creation rules (refuse to overwrite unless asked), a lock against two writers, provenance."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

from medgap.atomic import is_within
from medgap.errors import RunFolderError

RUN_MARKERS = ("config.yaml", "checkpoints", "metrics.jsonl")
LOCK_NAME = ".lock"


def prepare_run_folder(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool,
                       dataset_dir: str | os.PathLike | None = None) -> Path:
    """Make ``run_dir`` ready for a run.

    A non-empty existing folder is refused unless ``resume`` (it must hold ``checkpoints/last.pt``) or
    ``overwrite`` (allowed only for a folder that looks like a medgap run, so a typo cannot wipe a data folder).
    The run folder may not be the ``dataset_dir``, lie inside it or contain it: outputs never go into inputs.
    """
    run_dir = Path(run_dir)
    if dataset_dir:
        if is_within(run_dir, dataset_dir) or is_within(dataset_dir, run_dir):
            raise RunFolderError(f"{run_dir}: run folder must not be the dataset folder "
                                 f"{Path(dataset_dir).resolve()}, inside it or contain it")
    if resume and overwrite:
        raise RunFolderError(f"{run_dir}: give --resume or --overwrite, not both")
    exists = run_dir.is_dir() and any(run_dir.iterdir())
    if resume:
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise RunFolderError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        check_unlocked(run_dir)
        for stale in (run_dir / "checkpoints").glob(".*.tmp*"):  # half-written by a killed run
            stale.unlink()
        return run_dir
    if exists:
        if not overwrite:
            raise RunFolderError(f"{run_dir}: run folder already exists (use --resume to continue or --overwrite)")
        if not any((run_dir / marker).exists() for marker in RUN_MARKERS):
            raise RunFolderError(f"{run_dir}: refusing to overwrite a folder that is not a medgap run folder")
        check_unlocked(run_dir)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


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
