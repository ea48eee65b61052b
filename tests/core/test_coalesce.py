"""Request coalescing: concurrent submissions share batches, each gets its own outcome,
a failing batch fails only its own requests, and the coalescer carries on."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from covernet.core.coalesce import Coalescer
from covernet.core.errors import Conflict
from tests.conftest import run_async

FAIL = 99  # a batch with this item fails as a whole


class Recorder:
    def __init__(self, delay: float = 0.02) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.delay = delay

    async def __call__(self, batch: Sequence[int]) -> list[int | BaseException]:
        return await asyncio.to_thread(self.handle, batch)

    def handle(self, batch: Sequence[int]) -> list[int | BaseException]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(batch))
        time.sleep(self.delay)  # the batch's database work, meanwhile others queue
        if FAIL in batch:
            raise RuntimeError("the database went away")
        return [Conflict("odd", code="odd") if n % 2 else n * 10 for n in batch]


def test_concurrent_requests_are_handled_in_batches_with_their_own_outcomes() -> None:
    handler = Recorder()
    coalescer: Coalescer[int, int] = Coalescer(handler)

    async def main() -> list[int | str]:
        async def one(n: int) -> int | str:
            try:
                return await coalescer.submit(n)
            except Conflict as error:
                return error.code

        first = asyncio.ensure_future(one(0))
        await asyncio.sleep(0.005)  # its batch is running: the others queue meanwhile
        return [await first, *await asyncio.gather(*(one(n) for n in range(1, 40)))]

    outcomes = run_async(main())
    assert outcomes == [n * 10 if n % 2 == 0 else "odd" for n in range(40)]
    # The first request runs alone; the other 39 arrived while it ran and go together.
    assert handler.batches == [[0], list(range(1, 40))]
    assert sorted(n for batch in handler.batches for n in batch) == list(range(40))
    assert len(handler.batches) < 40 and max(len(b) for b in handler.batches) > 1
    assert coalescer.batches == len(handler.batches) and coalescer.items == 40


def test_max_batch_splits_a_crowd() -> None:
    handler = Recorder()
    coalescer: Coalescer[int, int] = Coalescer(handler, max_batch=8)

    async def main() -> None:
        await asyncio.gather(*(coalescer.submit(n * 2) for n in range(30)))

    run_async(main())
    assert max(len(b) for b in handler.batches) == 8


def test_a_failed_batch_fails_its_requests_only_and_the_next_batch_runs() -> None:
    handler = Recorder()
    coalescer: Coalescer[int, int] = Coalescer(handler)

    async def main() -> tuple[list[object], list[object]]:
        first = asyncio.ensure_future(coalescer.submit(0))
        await asyncio.sleep(0.005)  # the first batch is running; the next three queue
        second = await asyncio.gather(
            *(coalescer.submit(n) for n in (2, 4, FAIL)), return_exceptions=True
        )
        third = await asyncio.gather(*(coalescer.submit(n) for n in (8, 10)))
        return [await first], [*second, *third]

    firsts, rest = run_async(main())
    assert firsts == [0]
    assert all(isinstance(r, RuntimeError) for r in rest[:3])
    assert rest[3:] == [80, 100]


def test_a_handler_answering_the_wrong_number_of_outcomes_is_an_error() -> None:
    async def one_outcome(batch: Sequence[int]) -> list[int | BaseException]:
        return [1]

    coalescer: Coalescer[int, int] = Coalescer(one_outcome)

    async def main() -> None:
        await asyncio.gather(*(coalescer.submit(n) for n in range(3)))

    with pytest.raises(RuntimeError, match="outcomes for a batch"):
        run_async(main())
