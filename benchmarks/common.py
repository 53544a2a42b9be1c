"""Helpers shared by the benchmark scripts: machine description and plain-text tables."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

import numpy as np
import torch

import medgap


def machine_info(**versions: str) -> dict:
    """Where a benchmark ran: platform, CPUs, torch threads, GPU (if any) and package versions."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": {"medgap": medgap.__version__, "numpy": np.__version__, "torch": torch.__version__, **versions},
    }


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left/right-aligned plain-text table (numbers right-aligned)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("x%"))
        return True
    except ValueError:
        return False
