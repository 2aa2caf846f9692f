"""Micro-batching of concurrent requests onto ONE model worker thread.

Requests put a job on an asyncio queue and await its future. A collector task
takes the first waiting job, then keeps collecting for up to ``max_wait_ms``
or until ``max_batch_size`` items are queued, groups the jobs by
(kind, model, options) and runs each group as one batched call in a
single-thread executor: the models are not thread-safe, and while one batch
runs, the next one fills up. A job whose caller gave up (timeout) or whose
deadline has passed is skipped, and the runner gets the group's latest deadline
so it can stop work nobody waits for (the chat path stops generating then).
If a batched call fails, its jobs are re-run one by one so one bad request
cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

# (kind, model, items, options, deadline) -> one result per item; ``deadline`` is a
# ``time.monotonic()`` instant after which no caller of the batch waits (None: no limit)
Runner = Callable[[str, str, list[Any], tuple, float | None], list[Any]]


@dataclass
class Job:
    kind: str  # "predict" or "chat"
    model: str
    items: list[Any]
    options: tuple  # hashable; part of the grouping key (e.g. chat max_tokens)
    future: asyncio.Future
    deadline: float | None = None  # time.monotonic() after which the caller has gone
    enqueued: float = field(default_factory=time.perf_counter)
    started: float | None = None  # when its batch went to the worker
    finished: float | None = None
    batch_items: int = 0  # items in the model call that served it

    def timings(self) -> dict:
        """Queue wait and model time in ms, and the batch size, for the request log."""
        if self.started is None or self.finished is None:
            return {}
        return {
            "queue_ms": round((self.started - self.enqueued) * 1000, 2),
            "model_ms": round((self.finished - self.started) * 1000, 2),
            "batch_items": self.batch_items,
        }

    @property
    def key(self) -> tuple:
        return (self.kind, self.model, self.options)

    @property
    def live(self) -> bool:
        """Someone still waits for the answer."""
        expired = self.deadline is not None and time.monotonic() >= self.deadline
        return not self.future.done() and not expired


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    jobs: int = 0
    max_items: int = 0

    def as_dict(self) -> dict:
        mean = self.items / self.batches if self.batches else 0.0
        return {**self.__dict__, "mean_items_per_batch": round(mean, 3)}


class MicroBatcher:
    def __init__(self, runner: Runner, max_batch_size: int = 16, max_wait_ms: float = 5.0) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.runner = runner
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.stats = BatchStats()
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecomlm-model")
        self._task = asyncio.create_task(self._collect_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(
        self,
        kind: str,
        model: str,
        items: list[Any],
        options: tuple = (),
        deadline: float | None = None,
    ) -> Job:
        """Queue a job; ``job.future`` resolves to one result per item. ``deadline``
        (``time.monotonic()``) is when the caller stops waiting."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future = asyncio.get_running_loop().create_future()
        job = Job(kind, model, list(items), options, future, deadline)
        self._queue.put_nowait(job)
        return job

    async def _next_batch(self) -> list[Job]:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        jobs = [await self._queue.get()]
        count = len(jobs[0].items)
        deadline = loop.time() + self.max_wait_s
        while count < self.max_batch_size:
            try:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    job = self._queue.get_nowait()  # take what is already waiting
                else:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            jobs.append(job)
            count += len(job.items)
        return [j for j in jobs if j.live]

    async def _collect_forever(self) -> None:
        while True:
            jobs = await self._next_batch()
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                await self._run_group(group)

    async def _run_group(self, group: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        group = [j for j in group if j.live]
        if not group:
            return
        kind, model, options = group[0].key
        items = [item for job in group for item in job.items]
        deadlines = [j.deadline for j in group]
        deadline = None if None in deadlines else max(d for d in deadlines if d is not None)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(
                self._executor, self.runner, kind, model, items, options, deadline
            )
            if len(results) != len(items):
                raise RuntimeError(f"{len(results)} results for {len(items)} inputs")
        except Exception as e:  # noqa: BLE001 - reported to the callers
            if len(group) > 1:  # isolate the failing request
                for job in group:
                    await self._run_group([job])
                return
            if not group[0].future.done():
                group[0].future.set_exception(e)
            return
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.jobs += len(group)
        self.stats.max_items = max(self.stats.max_items, len(items))
        finished = time.perf_counter()
        start = 0
        for job in group:
            job.started, job.finished, job.batch_items = started, finished, len(items)
            if not job.future.done():
                job.future.set_result(results[start : start + len(job.items)])
            start += len(job.items)
