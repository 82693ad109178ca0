"""Progress that tells the truth: numbers with thin spaces, durations that never read "2 min 60 s", each
stage's rate in its own unit, an ETA that never reads 0 while work remains, and one monotone bar in plain
words for a whole (small, real) model selection."""

from __future__ import annotations

import pytest
from test_turtle import make_blobs

from turtle_core.discovery.selection import select_model
from turtle_core.progress import Progress, ProgressMeter
from turtle_ui.fmt import fmt_duration, fmt_eta, fmt_int, fmt_number, fmt_rate, middle_ellipsis, stage_unit

THIN = "\u202f"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "0 s"),
        (59.4, "59 s"),
        (59.6, "1 min 00 s"),
        (119.6, "2 min 00 s"),  # was "1 min 60 s"
        (179.7, "3 min 00 s"),  # was "2 min 60 s"
        (605, "10 min 05 s"),
        (3599.6, "1 h 00 min"),
        (3629, "1 h 00 min"),
        (3631, "1 h 01 min"),
        (7200 + 59.5 * 60, "3 h 00 min"),  # not "2 h 60 min"
        (None, "–"),
        (float("nan"), "–"),
        (-3, "0 s"),
    ],
)
def test_durations_round_once(seconds, text) -> None:
    assert fmt_duration(seconds) == text


def test_numbers_use_thin_spaces_never_commas() -> None:
    assert fmt_int(22800) == f"22{THIN}800"
    assert fmt_int(1_234_567) == f"1{THIN}234{THIN}567"
    assert fmt_number(85916.64) == f"85{THIN}916.6"
    assert "," not in fmt_rate(85916.6, "files")


def test_each_stage_has_its_own_unit_and_slow_rates_read_per_item() -> None:
    assert fmt_rate(85916.6, "files") == f"85{THIN}917 files/s"
    assert fmt_rate(4.25, "steps") == "4.2 steps/s"
    assert fmt_rate(0.1, "images") == "10 s per image"
    assert fmt_rate(0.0, "steps") == ""
    assert stage_unit(Progress("select", 1, 10)) == "steps"
    assert stage_unit(Progress("turtle", 1, 10)) == "steps"
    assert stage_unit(Progress("scan", 1, 10)) == "files"
    assert stage_unit(Progress("embed", 1, 10)) == "images"
    assert stage_unit(Progress("select", 1, 10, unit="starts")) == "starts"  # the report's own unit wins
    assert stage_unit(Progress("something new", 1, 10)) == "items"


def test_eta_never_reads_zero_while_work_remains() -> None:
    assert fmt_eta(Progress("select", 22800, 22800, rate=50.0, eta_s=0.0)) == "finishing…"
    assert fmt_eta(Progress("select", 22799, 22800, rate=5000.0, eta_s=0.0002)) == "about 1 s left"
    assert fmt_eta(Progress("select", 100, 22800, rate=50.0, eta_s=454.0)) == "about 7 min 34 s left"
    assert fmt_eta(Progress("select", 0, 22800)) == "estimating the time left…"


def test_middle_ellipsis_keeps_the_start_and_the_extension() -> None:
    assert middle_ellipsis("cat.png") == "cat.png"
    short = middle_ellipsis("IMG_20240517_holiday_beach_0042_final.jpeg", 22)
    assert len(short) == 22 and short.startswith("IMG_2024") and short.endswith("final.jpeg") and "…" in short


def test_meter_extra_work_moves_the_bar_without_stepping_back() -> None:
    reports: list[Progress] = []
    meter = ProgressMeter("select", 100, reports.append, min_interval_s=0.0, unit="steps")
    meter.report(extra=30)
    meter.report(extra=10)  # a new piece of work starts at 0: the bar must not go back
    meter.advance(40)
    assert [r.done for r in reports] == [30, 30, 40]
    assert all(r.unit == "steps" for r in reports)
    meter.report(extra=500)
    assert reports[-1].done == 100  # never past the total


@pytest.mark.usefixtures("one_cpu_thread")
def test_a_real_selection_reports_one_monotone_bar_in_plain_words() -> None:
    spaces, _ = make_blobs(n=400, n_clusters=3, dims=(8, 10), seed=11)
    reports: list[Progress] = []
    select_model(
        spaces,
        (2, 3),
        n_restarts=2,
        n_screen=3,
        screen_steps=50,
        turtle_params={"outer_steps": 200},
        progress=reports.append,
    )
    assert reports, "progress was reported"
    assert {r.stage for r in reports} == {"select"}, "no flipping between stages"
    assert {r.total for r in reports} == {2 * (3 * 50 + 200) + 2 * 200}
    assert {r.unit for r in reports} == {"steps"}
    done = [r.done for r in reports]
    assert done == sorted(done), "the bar never steps back"
    assert done[-1] == reports[-1].total
    for report in reports:
        if report.done < report.total:
            assert report.eta_s is None or report.eta_s > 0
            assert fmt_eta(report) != "finishing…"
    messages = [r.message for r in reports]
    assert not any("{" in m or "random_state" in m or "C=" in m for m in messages), (
        "no raw Python in the text"
    )
    assert any(m.startswith("Trying start 1 of 3 for 2 categories") for m in messages)
    assert any(m.startswith("Training the best-scoring start for 3 categories") for m in messages)
    assert any(m.startswith("Training start 2 of 2 for") for m in messages)
    assert messages[-1] == "Comparing the runs and choosing the best"
    within_runs = [r for r in reports if r.message.startswith("Training")]
    assert len({r.done for r in within_runs}) > 2, "a full run moves the bar while it trains"


def test_discovery_says_what_it_does_after_the_last_training_step(tmp_path) -> None:
    from test_project import _colour_tree

    from turtle_core.operations.project import Project

    project = Project.open(_colour_tree(tmp_path / "images"))
    project.set_backbones(["effnet-lite0"])
    reports: list[Progress] = []
    project.run_discovery(3, effort="quick", progress=reports.append)
    stages = [r.stage for r in reports]
    assert stages.index("select") > stages.index("embed") > stages.index("scan")
    # After the bar is full, confidence, k-means for reference and saving still run: the last report says so.
    assert reports[-1].stage == "finish" and reports[-1].total == 0
    assert reports[-1].message == (
        "Discovery done: measuring confidence, scoring against the folder labels and k-means, then saving"
    )
    assert fmt_eta(reports[-2]) == "finishing…"


@pytest.mark.usefixtures("one_cpu_thread")
def test_a_discovery_shows_a_time_left_from_its_first_report_on_one_bar() -> None:
    from turtle_core.discovery.discover import discover
    from turtle_core.discovery.effort import EFFORTS, discovery_plan

    spaces, _ = make_blobs(n=150, n_clusters=3, dims=(8,), seed=12)  # below 200: a shortened schedule
    reports: list[Progress] = []
    discover(spaces, 3, EFFORTS["standard"], progress=reports.append)
    steps = [r for r in reports if r.unit == "steps"]
    total = sum(discovery_plan(EFFORTS["standard"], "auto", 0, 150).steps(3))
    assert {r.total for r in steps} == {total}, "the selections and the final runs share one bar"
    done = [r.done for r in steps]
    assert done == sorted(done) and done[-1] == total
    assert all(r.eta_s is not None for r in steps), "a time left from the very first report"
    assert all(r.eta_s > 0 for r in steps if r.done < r.total)
    assert any(r.message.startswith("Training final run 1 of 3") for r in steps)
    runs = [r for r in reports if r.stage == "stability"]
    assert [r.done for r in runs] == [0, 1, 2, 3] and all(r.eta_s is not None for r in runs)
    assert fmt_eta(runs[-1]) == "finishing…"
