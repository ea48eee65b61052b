"""Request coalescing: concurrent requests of one kind in a process, handled together.

A hot route hands its request to the process's :class:`Coalescer` and awaits its own
outcome.  While one batch is being handled (by an async handler, typically in one unit
of work: :func:`covernet.core.db.unit_of_work_async`), the requests that arrive
meanwhile queue; when it is done they all go together as the next batch.  Under light
load a batch is one request and nothing waits; under heavy load one transaction and a
few set-based statements serve hundreds of requests.  Every request is answered only
after its batch has committed, so nothing lives only in a process's memory.

The handler returns one outcome per request, in order: a value, or an exception that is
raised in that request alone.  If the handler itself raises, every request of the batch
gets that error.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_BATCH = 256


class Coalescer(Generic[In, Out]):
    """Batches of ``In`` handled by ``handle``, one batch at a time per event loop."""

    def __init__(
        self,
        handle: Callable[[Sequence[In]], Awaitable[Sequence[Out | BaseException]]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.handle = handle
        self.max_batch = max_batch
        self.batches = 0
        self.items = 0
        self._lock = threading.Lock()
        self._loops: dict[int, _LoopState[In, Out]] = {}

    async def submit(self, item: In) -> Out:
        """Handle ``item`` with whatever else is waiting; its outcome (or its error)."""
        state = self._state()
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        state.queue.append((item, future))
        if state.runner is None or state.runner.done():
            state.runner = asyncio.get_running_loop().create_task(self._run(state))
        return await asyncio.shield(future)

    def _state(self) -> _LoopState[In, Out]:
        loop = asyncio.get_running_loop()
        found = self._loops.get(id(loop))
        if found is None or found.loop is not loop:
            with self._lock:
                found = self._loops.get(id(loop))
                if found is None or found.loop is not loop:
                    found = self._loops[id(loop)] = _LoopState(loop)
        return found

    async def _run(self, state: _LoopState[In, Out]) -> None:
        while state.queue:
            batch = state.queue[: self.max_batch]
            del state.queue[: len(batch)]
            try:
                outcomes = await self.handle([i for i, _ in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
            except BaseException as exc:  # the whole batch failed: each request hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            self.batches += 1
            self.items += len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


class _LoopState(Generic[In, Out]):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: list[tuple[In, asyncio.Future[Out]]] = []
        self.runner: asyncio.Task[None] | None = None
