"""Phase timing: every second is charged to exactly one phase, the innermost open one."""

from __future__ import annotations

from medgap.phases import OTHER, PhaseRecorder, add_totals, phase, recording, timed


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nested_phases_are_charged_exclusively_and_add_up_to_the_wall_time():
    clock = FakeClock()
    with recording(PhaseRecorder(clock)) as recorder:
        clock.now += 1.0  # outside every phase
        with phase("training"):
            clock.now += 10.0
            with phase("validation"):
                clock.now += 3.0
            clock.now += 5.0
            with phase("validation"):
                clock.now += 2.0
        with phase("plots"):
            clock.now += 4.0
    totals = recorder.totals()
    assert totals == {"training": 15.0, "validation": 5.0, "plots": 4.0, OTHER: 1.0}
    assert list(totals) == ["training", "validation", "plots", OTHER]  # largest first
    assert sum(totals.values()) == clock.now


def test_outside_a_recording_phases_record_nothing_and_a_decorated_function_still_returns():
    @timed("plots")
    def draw(x, scale=2):
        return x * scale

    assert draw(3, scale=4) == 12
    clock = FakeClock()
    with recording(PhaseRecorder(clock)) as recorder:
        clock.now += 2.0
        draw(1)
    assert recorder.totals() == {OTHER: 2.0, "plots": 0.0}  # the call took no (fake) time
    assert add_totals({"a": 1.0, "b": 2.0}, {"b": 0.5, "c": 4.0}) == {"a": 1.0, "b": 2.5, "c": 4.0}


def test_a_phase_left_by_an_exception_still_stops_its_clock():
    clock = FakeClock()
    recorder = PhaseRecorder(clock)
    recorder.add("start-up", 7.0)  # measured elsewhere (a worker's launch)
    with recording(recorder):
        try:
            with phase("training"):
                clock.now += 2.0
                raise ValueError("diverged")
        except ValueError:
            clock.now += 1.0
    assert recorder.totals() == {"start-up": 7.0, "training": 2.0, OTHER: 1.0}
