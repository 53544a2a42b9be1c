"""Helpers shared by the benchmark scripts: machine description, Markdown tables, process memory."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence

import numpy as np
import torch

import medgap


def utc_now() -> str:
    """The current UTC time as the benchmarks' JSON stores it (``2026-12-03T08:54:18Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def machine_info(**versions: str) -> dict:
    """Where and when a benchmark ran: platform, CPUs, torch threads, GPU (if any), load, package versions."""
    return {
        "measured_at": utc_now(),
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


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("x%"))
        return True
    except ValueError:
        return False


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned); what the scripts store as ``table_markdown``."""
    cells = [[str(c) for c in row] for row in rows]
    numeric = [bool(cells) and all(_is_number(row[i]) or row[i] in ("", "–") for row in cells)
               for i in range(len(header))]
    lines = ["| " + " | ".join(str(c) for c in header) + " |",
             "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (``ru_maxrss``; KiB on Linux) in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """This process's resident set size now (``/proc/self/statm``; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return peak_rss_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
