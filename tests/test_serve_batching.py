"""The micro-batcher alone (no model): grouping, order, failure isolation, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ecomlm.serve.batching import MicroBatcher


class Recorder:
    """A runner that records each call and the thread it ran on."""

    def __init__(self, delay: float = 0.0, fail_on: object = None) -> None:
        self.calls: list[tuple[str, str, list, tuple]] = []
        self.deadlines: list[float | None] = []
        self.threads: set[str] = set()
        self.delay, self.fail_on = delay, fail_on

    def __call__(
        self, kind: str, model: str, items: list, options: tuple, deadline: float | None
    ) -> list:
        self.calls.append((kind, model, list(items), options))
        self.deadlines.append(deadline)
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on!r}")
        return [f"{model}:{item}" for item in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_jobs_are_grouped_by_model_and_answered_in_order():
    runner = Recorder()

    async def main():
        b = MicroBatcher(runner, max_batch_size=64, max_wait_ms=50)
        await b.start()
        jobs = [b.submit("predict", "AB"[i % 2], [i, i + 100]) for i in range(10)]
        results = await asyncio.gather(*(j.future for j in jobs))
        await b.stop()
        return b, jobs, results

    b, jobs, results = run(main())
    for i, r in enumerate(results):
        m = "AB"[i % 2]
        assert r == [f"{m}:{i}", f"{m}:{i + 100}"]
    assert len(runner.calls) == 2  # one call per model
    assert {c[1] for c in runner.calls} == {"A", "B"}
    assert runner.threads == {"ecomlm-model_0"}  # one worker thread
    assert b.stats.batches == 2 and b.stats.items == 20 and b.stats.max_items == 10
    assert jobs[0].timings()["batch_items"] == 10


def test_batch_size_cap_and_fifo_order_one_by_one():
    runner = Recorder()

    async def main():
        b = MicroBatcher(runner, max_batch_size=1, max_wait_ms=0)
        await b.start()
        jobs = [b.submit("predict", "m", [i]) for i in range(30)]
        await asyncio.gather(*(j.future for j in jobs))
        await b.stop()

    run(main())
    assert [c[2] for c in runner.calls] == [[i] for i in range(30)]


def test_a_failing_job_does_not_fail_its_neighbours():
    runner = Recorder(fail_on=3)

    async def main():
        b = MicroBatcher(runner, max_batch_size=16, max_wait_ms=50)
        await b.start()
        jobs = [b.submit("predict", "m", [i]) for i in range(5)]
        out = await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)
        await b.stop()
        return out

    out = run(main())
    assert isinstance(out[3], ValueError) and "bad item 3" in str(out[3])
    assert out[:3] + out[4:] == [["m:0"], ["m:1"], ["m:2"], ["m:4"]]


def test_timed_out_jobs_are_skipped():
    runner = Recorder(delay=0.2)

    async def main():
        b = MicroBatcher(runner, max_batch_size=1, max_wait_ms=0)
        await b.start()
        first = b.submit("predict", "m", ["first"])
        second = b.submit("predict", "m", ["second"])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(second.future, 0.05)  # gives up while "first" runs
        assert await first.future == ["m:first"]
        third = b.submit("predict", "m", ["third"])
        assert await third.future == ["m:third"]
        await b.stop()

    run(main())
    assert [c[2] for c in runner.calls] == [["first"], ["third"]]


def test_past_deadline_jobs_are_skipped_and_the_runner_gets_the_latest_deadline():
    runner = Recorder(delay=0.2)

    async def main():
        b = MicroBatcher(runner, max_batch_size=1, max_wait_ms=0)
        await b.start()
        now = time.monotonic()
        first = b.submit("predict", "m", ["first"], deadline=now + 5)
        late = b.submit("predict", "m", ["late"], deadline=now + 0.05)  # over while first runs
        assert await first.future == ["m:first"]
        b2 = [b.submit("predict", "m", [i], deadline=now + 10 + i) for i in range(2)]
        await asyncio.gather(*(j.future for j in b2))
        await b.stop()
        return now, late

    b_wide = Recorder()

    async def batched(now: float):
        b = MicroBatcher(b_wide, max_batch_size=8, max_wait_ms=50)
        await b.start()
        jobs = [b.submit("predict", "m", [i], deadline=now + 10 + i) for i in range(3)]
        await asyncio.gather(*(j.future for j in jobs))
        await b.stop()

    now, late = run(main())
    assert [c[2] for c in runner.calls] == [["first"], [0], [1]]  # "late" never ran
    assert not late.future.done()  # its caller (not here) would have timed out
    run(batched(now))
    assert b_wide.deadlines == [now + 12]  # one call; it may run until its last caller goes
