"""Dynamic batching: concurrent requests answered by few, large ``generate`` calls (see ``serve.app``)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from counteroffer.models.backend import Chat, Sampling
from counteroffer.models.hf import GenerationOutput, HFChatModel

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class _Pending:
    chat: Chat
    sampling: Sampling
    seed: int | None
    future: asyncio.Future[GenerationOutput]


@dataclass(slots=True)
class BatcherStats:
    requests: int = 0  # submitted
    generate_calls: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)  # requests per generate call -> how many calls

    def as_dict(self) -> dict[str, Any]:
        answered = sum(size * count for size, count in self.batch_sizes.items())
        return {
            "requests": self.requests,
            "generate_calls": self.generate_calls,
            "batched_requests": answered,
            "largest_batch": max(self.batch_sizes, default=0),
            "mean_batch": answered / self.generate_calls if self.generate_calls else 0.0,
            "batch_sizes": {str(size): count for size, count in sorted(self.batch_sizes.items())},
        }


class Batcher:
    """Collects concurrent requests and answers them with few, large ``generate`` calls (see the module doc)."""

    def __init__(self, model: HFChatModel, *, max_batch: int = 16, window_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if window_ms < 0:
            raise ValueError(f"batch window must be non-negative, got {window_ms} ms")
        self.model = model
        self.max_batch = max_batch
        self.window_s = window_ms / 1000
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._seeds = itertools.count()
        self._batch: list[_Pending] = []

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        if self.running:
            return
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="counteroffer-batcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        waiting, self._batch = self._batch, []
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        _fail_all(waiting, RuntimeError("the server is shutting down"))

    async def submit(self, chat: Chat, sampling: Sampling, seed: int | None = None) -> GenerationOutput:
        """Queue one chat and wait for its completion."""
        if not self.running or self._queue is None:
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future[GenerationOutput] = asyncio.get_running_loop().create_future()
        self.stats.requests += 1
        self._queue.put_nowait(_Pending(chat, sampling, seed, future))
        return await future  # a cancelled caller cancels the future; the batcher then skips it

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            self._batch = []  # taken from the queue, not answered yet: stop() fails these too
            await self._collect(self._queue, self._batch)
            groups: dict[Sampling, list[_Pending]] = {}
            for pending in self._batch:
                if not pending.future.done():  # its client went away while it waited
                    groups.setdefault(pending.sampling, []).append(pending)
            for sampling, group in groups.items():
                await self._generate(sampling, group)

    async def _collect(self, queue: asyncio.Queue[_Pending], batch: list[_Pending]) -> None:
        batch.append(await queue.get())
        deadline = asyncio.get_running_loop().time() + self.window_s
        while len(batch) < self.max_batch:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break

    async def _generate(self, sampling: Sampling, group: list[_Pending]) -> None:
        seeds = [p.seed if p.seed is not None else next(self._seeds) % 2**31 for p in group]
        self.stats.generate_calls += 1
        self.stats.batch_sizes[len(group)] += 1
        try:
            # Cancelled by stop(), the thread still finishes its generate call; nobody waits for it any more.
            outputs = await asyncio.to_thread(self.model.generate, [p.chat for p in group], sampling, seeds)
            if len(outputs) != len(group):
                raise RuntimeError(f"generate returned {len(outputs)} outputs for {len(group)} chats")
        except Exception as exc:
            log.exception("generate failed for a batch of %d request(s)", len(group))
            _fail_all(group, exc)
            return
        for pending, output in zip(group, outputs, strict=True):
            if not pending.future.done():
                pending.future.set_result(output)


def _fail_all(group: list[_Pending], exc: Exception) -> None:
    for pending in group:
        if not pending.future.done():
            pending.future.set_exception(exc)
