"""Server-side dynamic batching: concurrent requests run as one batch, answers split back.

Requests wait in one queue. Whenever a worker is free, the batcher takes the oldest request
and the ones after it whose inputs have the same per-example shapes, up to ``max_batch_size``
examples; if fewer are queued it waits up to ``max_wait`` seconds (from the arrival of the
oldest) for more, as Triton's ``max_queue_delay`` does. The batch's inputs are concatenated
along the batch axis, run once, and the outputs split back by each request's batch size.

With ``max_wait = 0`` requests are batched only while every worker is busy (what queued in the
meantime runs together): no request waits for company.

Errors stay per request: requests are checked one by one before they are queued, and if a
combined run fails, each of its requests is run alone, so only the failing one gets the error.

Models whose answer for one example depends on the others in its batch (ONNX Runtime dynamic
quantization scales activations per batch) answer slightly differently when batched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("kfedge.serving")

Feeds = dict[str, np.ndarray]
RunFn = Callable[[Feeds], dict[str, np.ndarray]]


@dataclass
class _Item:
    feeds: Feeds
    n: int
    key: tuple[Any, ...]
    future: asyncio.Future[dict[str, np.ndarray]]
    arrived: float = field(default_factory=time.monotonic)


def _key(feeds: Feeds) -> tuple[Any, ...]:
    return tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in feeds.items()))


class DynamicBatcher:
    """Runs concurrent requests' feeds as combined batches on ``workers`` threads.

    Args:
        run: The runner's ``run`` (feeds -> outputs by name, batch first).
        executor: Where ``run`` is called (its threads are the workers).
        workers: Batches run at once (the runner's pool size).
        max_batch_size: Most examples in one combined batch.
        max_wait: Seconds the oldest request may wait for others to join.

    Attributes:
        batches: Combined runs so far.
        requests: Requests answered through combined runs so far.
    """

    def __init__(
        self,
        run: RunFn,
        executor: Executor,
        workers: int,
        max_batch_size: int,
        max_wait: float,
    ) -> None:
        if max_batch_size < 2:
            raise ValueError(f"max_batch_size must be >= 2 to batch, got {max_batch_size}")
        if max_wait < 0:
            raise ValueError(f"max_batch_wait must be >= 0, got {max_wait}")
        self._run = run
        self._executor = executor
        self.workers = workers
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self._queue: deque[_Item] = deque()
        self._busy = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.requests = 0

    async def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Queue one request's feeds and wait for its outputs.

        Args:
            feeds: Checked input arrays by name, batch first (all the same batch size).

        Returns:
            This request's outputs by name.
        """
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._dispatch())
        n = int(next(iter(feeds.values())).shape[0])
        item = _Item(feeds, n, _key(feeds), loop.create_future())
        self._queue.append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        return await item.future

    def close(self) -> None:
        """Stop dispatching (queued requests are cancelled)."""
        if self._task is not None:
            self._task.cancel()
        for item in self._queue:
            if not item.future.done():
                item.future.cancel()
        self._queue.clear()

    def _take(self) -> list[_Item]:
        """The oldest request and those after it that fit with it, removed from the queue."""
        first = self._queue[0]
        taken, total, rest = [], 0, deque()
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():  # the client went away
                continue
            if item.key == first.key and (not taken or total + item.n <= self.max_batch_size):
                taken.append(item)
                total += item.n
            else:
                rest.append(item)
        self._queue = rest
        return taken

    def _ready_examples(self) -> int:
        key = self._queue[0].key
        return sum(i.n for i in self._queue if i.key == key)

    async def _dispatch(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._queue or self._busy >= self.workers:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = self._queue[0].arrived + self.max_wait
            while self._ready_examples() < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            items = self._take()
            if not items:
                continue
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._run_batch(items))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_batch(self, items: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        try:
            if len(items) == 1:
                await self._run_alone(loop, items[0])
                return
            feeds = {k: np.concatenate([i.feeds[k] for i in items]) for k in items[0].feeds}
            total = sum(i.n for i in items)
            try:
                out = await loop.run_in_executor(self._executor, self._run, feeds)
                if any(v.shape[:1] != (total,) for v in out.values()):
                    raise ValueError("an output has no batch dimension; cannot split it")
            except Exception as exc:  # noqa: BLE001 - each request is retried alone
                log.info("combined batch of %d requests failed (%s); running them one by one",
                         len(items), exc)  # fmt: skip
                await asyncio.gather(*(self._run_alone(loop, i) for i in items))
                return
            self.batches += 1
            self.requests += len(items)
            start = 0
            for item in items:
                if not item.future.done():
                    item.future.set_result({k: v[start : start + item.n] for k, v in out.items()})
                start += item.n
        finally:
            self._busy -= 1
            assert self._wakeup is not None
            self._wakeup.set()

    async def _run_alone(self, loop: asyncio.AbstractEventLoop, item: _Item) -> None:
        try:
            out = await loop.run_in_executor(self._executor, self._run, item.feeds)
        except Exception as exc:  # noqa: BLE001 - handed to the request
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(out)
