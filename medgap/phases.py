"""Where a run's wall time goes: named phases (preprocessing, training steps, validation, test evaluation, plots
...), each second charged to exactly one phase.

``medgap reproduce`` records every run: ``with recording() as recorder: ...``; the code below it marks its work with
``with phase("validation"):`` or ``@timed("plots")``. Phases nest and are exclusive: while a nested phase runs,
its parent's clock stops, so the totals add up to the recorded wall time (time in no phase is ``other``). Outside
a recording a phase records nothing and costs one context-variable look-up, so the training loop and the
evaluation need no timer argument threaded through their signatures. The recorder is a context variable, not a
module global: each thread (and each run) has its own.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

OTHER = "other"  # what a recording spends outside every named phase

_ACTIVE: ContextVar[PhaseRecorder | None] = ContextVar("medgap_phase_recorder", default=None)


class PhaseRecorder:
    """Seconds per phase name; the innermost open phase is charged (exclusive timing)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.seconds: dict[str, float] = {}
        self._clock = clock
        self._open = [OTHER]  # the phases entered and not yet left; the last is charged
        self._since = clock()

    def _charge(self) -> None:
        now = self._clock()
        self.add(self._open[-1], now - self._since)
        self._since = now

    def add(self, name: str, seconds: float) -> None:
        """Charge ``seconds`` measured elsewhere (e.g. a worker's start-up, timed from its launch) to ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def enter(self, name: str) -> None:
        self._charge()
        self._open.append(name)

    def leave(self) -> None:
        self._charge()
        self._open.pop()

    def totals(self, digits: int = 2) -> dict[str, float]:
        """Seconds per phase so far (the open phase charged up to now), largest first."""
        self._charge()
        return {name: round(seconds, digits) for name, seconds in
                sorted(self.seconds.items(), key=lambda item: -item[1])}


@contextmanager
def recording(recorder: PhaseRecorder | None = None) -> Iterator[PhaseRecorder]:
    """Record the phases of the enclosed code into ``recorder`` (a new one by default)."""
    recorder = recorder or PhaseRecorder()
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Charge the enclosed code's wall time (less its nested phases) to ``name`` in the active recording."""
    recorder = _ACTIVE.get()
    if recorder is None:
        yield
        return
    recorder.enter(name)
    try:
        yield
    finally:
        recorder.leave()


def timed(name: str):
    """Decorator: every call of the function is a :func:`phase` called ``name``."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with phase(name):
                return function(*args, **kwargs)

        return wrapper

    return decorate


def add_totals(totals: dict[str, float], more: dict[str, float]) -> dict[str, float]:
    """Phase-wise sum of two ``{phase: seconds}`` (e.g. over the runs of a reproduction)."""
    summed = dict(totals)
    for name, seconds in more.items():
        summed[name] = summed.get(name, 0.0) + seconds
    return summed
