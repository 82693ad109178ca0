"""Process-wide settings a job changes (torch's thread count, the Ray connection) are never left changed
for another job, also when jobs overlap in threads and end in any order."""

from __future__ import annotations

import threading

import pytest
import torch

from turtle_core.discovery.runtime import cpu_threads
from turtle_core.embedding import ray_embed
from turtle_core.embedding.ray_embed import RayUnavailable, ray_session

CPU = torch.device("cpu")


def _fresh_thread_count() -> int:
    """The thread count a job started now gets (OpenMP: what a new thread inherits from the process)."""
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join(10)
    return seen[0]


def _job(n: int, entered: threading.Event, leave: threading.Event, seen: list[int]) -> threading.Thread:
    def run() -> None:
        with cpu_threads(n, CPU):
            seen.append(torch.get_num_threads())
            entered.set()
            assert leave.wait(10)

    return threading.Thread(target=run)


@pytest.mark.parametrize("first_ends_first", [True, False])
def test_overlapping_jobs_restore_the_thread_count_whatever_order_they_end(first_ends_first: bool) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        events = [threading.Event() for _ in range(4)]
        seen: list[int] = []
        one = _job(1, events[0], events[1], seen)
        three = _job(3, events[2], events[3], seen)
        one.start()
        assert events[0].wait(10)
        three.start()
        assert events[2].wait(10)
        assert seen == [1, 3] and _fresh_thread_count() == 3
        ends = [(events[1], one), (events[3], three)]
        first, second = ends if first_ends_first else ends[::-1]
        first[0].set()
        first[1].join(10)
        assert _fresh_thread_count() == (3 if first_ends_first else 1)  # the job still running sets it
        second[0].set()
        second[1].join(10)
        assert _fresh_thread_count() == 2  # the count from before the first job, not a job's
        with cpu_threads(1, CPU), cpu_threads(None, CPU):  # nested in one job: the inner one never raises it
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2 and _fresh_thread_count() == 2
    finally:
        torch.set_num_threads(before)


class FakeRay:
    """Ray's connection calls, recorded (the real cluster is tested in test_ray_embed.py)."""

    def __init__(self) -> None:
        self.connected: str | None = None
        self.calls: list[str] = []

    def is_initialized(self) -> bool:
        return self.connected is not None

    def init(self, address: str, **_: object) -> None:
        self.calls.append(f"init {address}")
        self.connected = address

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        self.connected = None


def test_overlapping_jobs_share_one_ray_connection_closed_by_the_last(monkeypatch) -> None:
    fake = FakeRay()
    monkeypatch.setattr(ray_embed, "_import_ray", lambda: fake)
    started, finish = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def long_job() -> None:
        try:
            with ray_session("head:6379") as ray:
                started.set()
                assert finish.wait(10)
                assert ray.is_initialized()  # still connected although the short job ended first
        except BaseException as error:  # noqa: BLE001 - reported to the test below
            errors.append(error)

    worker = threading.Thread(target=long_job)
    worker.start()
    assert started.wait(10)
    with ray_session("head:6379"):
        assert fake.calls == ["init head:6379"]  # the same address: the connection is shared
    assert fake.is_initialized()
    with pytest.raises(RayUnavailable, match="another job"), ray_session("other:6379"):
        pass
    finish.set()
    worker.join(10)
    assert errors == []
    assert fake.calls == ["init head:6379", "shutdown"] and not fake.is_initialized()
    # A connection made by the caller is used and left open.
    fake.init("mine:1")
    with ray_session("mine:1"):
        pass
    assert fake.calls[-1] == "init mine:1" and fake.is_initialized()
