"""The speed probe: this machine's speed measured once, before its first discovery, so that the first
estimate is priced for this machine (`turtle_core/discovery/speed_probe.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_app_fakes import FakeProject, open_app

from turtle_core.discovery import estimate
from turtle_core.discovery.effort import EFFORTS
from turtle_core.discovery.speed_probe import measure_cpu_speed
from turtle_core.embedding import rates
from turtle_ui.fmt import fmt_duration


@pytest.fixture
def probing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURTLE_SPEED_PROBE", "1")


def _rates(home: Path) -> dict[str, float]:
    return json.loads((home / rates.RATES_FILE).read_text("utf-8"))


def test_the_probe_prices_the_first_estimate_until_a_discovery_measures_the_speed(
    probing: None, turtle_home: Path
) -> None:
    assert estimate.speed_unknown()
    reference_turtle = estimate.turtle_seconds(2000, 10, EFFORTS["quick"])
    reference_rate, measured = rates.embedding_rate("clip-vit-b32", "cpu")
    assert not measured

    speed = measure_cpu_speed()
    assert speed is not None and 1 / rates.MAX_SPEED <= speed <= rates.MAX_SPEED
    assert _rates(turtle_home)[rates.PROBE_KEY] == pytest.approx(speed, abs=1e-4)
    assert not estimate.speed_unknown()
    assert estimate.discovery_speed() == pytest.approx(speed, abs=1e-4)
    probed_turtle = estimate.turtle_seconds(2000, 10, EFFORTS["quick"])
    assert probed_turtle == pytest.approx(reference_turtle * speed, rel=1e-3)
    # a backbone never run here: the first guess follows the probe; a GPU's does not
    assert rates.embedding_rate("clip-vit-b32", "cpu")[0] == pytest.approx(reference_rate / speed, rel=1e-3)
    assert rates.embedding_rate("clip-vit-b32", "cuda")[0] == pytest.approx(
        reference_rate * rates.GPU_SPEEDUP
    )

    # the first discovery's measured speed replaces the probe's
    estimate.record_discovery_speed(reference_s=20.0, seconds=20.0 * 3.0)
    assert estimate.discovery_speed() == pytest.approx(3.0)


def test_a_cancelled_probe_stops_its_child_and_records_nothing(probing: None, turtle_home: Path) -> None:
    import threading

    from turtle_core.progress import Cancelled

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        measure_cpu_speed(cancel)
    assert not (turtle_home / rates.RATES_FILE).exists()
    assert estimate.speed_unknown()


def test_nothing_is_probed_when_switched_off_or_once_a_discovery_measured_the_speed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TURTLE_SPEED_PROBE", "0")
    assert not estimate.speed_unknown()
    monkeypatch.setenv("TURTLE_SPEED_PROBE", "1")
    assert estimate.speed_unknown()
    estimate.record_discovery_speed(reference_s=10.0, seconds=5.0)
    assert not estimate.speed_unknown()


def test_the_discover_page_shows_an_estimate_priced_by_the_probe_the_app_started(
    probing: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, turtle_home: Path
) -> None:
    from turtle_ui import jobs as jobs_ui

    project = FakeProject(tmp_path / "images", discovered=False)
    at = open_app(monkeypatch, project, "pages/discover.py")  # the app's first run starts the probe
    assert not at.exception
    job = jobs_ui.job_manager().get(jobs_ui.SPEED_PROBE_KEY)
    assert job is not None and job.wait(60) and job.state == "done", job
    at.run()
    assert rates.PROBE_KEY in _rates(turtle_home)
    shown = _expected(at)
    assert "first guess" not in shown
    turtle = estimate.turtle_seconds(len(project.scan_result.images), 10, EFFORTS["standard"])
    assert f"TURTLE {fmt_duration(turtle)}" in shown  # priced at the probed speed
    at.run()  # later runs do not start it again
    assert jobs_ui.job_manager().get(jobs_ui.SPEED_PROBE_KEY) is job


def test_while_the_probe_runs_the_estimate_says_it_is_a_first_guess(
    probing: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import threading

    from turtle_core.discovery import speed_probe
    from turtle_ui import jobs as jobs_ui

    release = threading.Event()
    monkeypatch.setattr(speed_probe, "measure_cpu_speed", lambda cancel=None: release.wait(30))
    project = FakeProject(tmp_path / "images", discovered=False)
    try:
        at = open_app(monkeypatch, project, "pages/discover.py")
        assert not at.exception
        assert "a first guess: this machine's speed is still being measured" in _expected(at)
    finally:
        release.set()
    job = jobs_ui.job_manager().get(jobs_ui.SPEED_PROBE_KEY)
    assert job is not None and job.wait(10)
    at.run()
    assert "first guess" not in _expected(at)


def _expected(at) -> str:
    lines = [str(c.value) for c in at.caption if str(c.value).startswith("Expected time:")]
    assert len(lines) == 1, [c.value for c in at.caption]
    return lines[0]
