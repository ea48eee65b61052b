"""The sandbox's background deliverer: woken when a queued callback commits, it posts a
claimed batch at once and records the outcomes together (failures back off as before)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select

from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.payments.providers import sandbox
from covernet.payments.providers.sandbox_models import SandboxCallback
from tests.payments.helpers import new_payment, state

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run ``scenario`` on an event loop of its own thread (another test may have left
    one running in this thread)."""

    async def main() -> T:
        return await scenario()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


class FailFor(httpx.AsyncBaseTransport):
    """The app over ASGI, except that callbacks about ``payment_id`` get a 500."""

    def __init__(self, app: Any, payment_id: str) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.payment_id = payment_id
        self.posted = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.posted += 1
        if self.payment_id.encode() in request.content:
            return httpx.Response(500)
        return await self.inner.handle_async_request(request)


def test_a_batch_is_posted_at_once_and_settled(
    client: Any, app: Any, db_url: str, customer: dict[str, str]
) -> None:
    paid = [new_payment(db_url, customer["id"], subject_id=f"app-{n}") for n in range(3)]
    for payment_id in paid:
        assert client.post(f"/sandbox/payments/{payment_id}/succeed").status_code == 200
    transport = FailFor(app, paid[1])

    async def deliver() -> sandbox.DeliveryReport:
        async with httpx.AsyncClient(transport=transport) as http:
            return await sandbox.deliver_batch(http)

    started = clock.now()
    report = run(deliver)
    assert len(report.delivered) == 2 and len(report.failed) == 1 and transport.posted == 3
    assert [state(db_url, p)["status"] for p in paid] == ["succeeded", "pending", "succeeded"]
    with unit_of_work(db_url) as db:
        rows = list(db.scalars(select(SandboxCallback).order_by(SandboxCallback.id)))
        assert [r.delivered_at is not None for r in rows] == [True, False, True]
        failed = rows[1]
        assert failed.attempts == 1 and failed.last_error == "HTTP 500"
        assert failed.next_attempt_at is not None
        due_in = failed.next_attempt_at - started
        assert due_in >= timedelta(seconds=sandbox.BACKOFF_BASE_SECONDS - 1)
    assert run(deliver).failed == []  # not due again yet


def test_only_a_committed_callback_wakes_the_deliverer(
    client: Any, db_url: str, customer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    woken: list[int] = []
    monkeypatch.setattr(sandbox, "_waker", lambda: woken.append(1))
    payment_id = new_payment(db_url, customer["id"])
    with pytest.raises(RuntimeError), unit_of_work(db_url) as db:
        sandbox.complete(db, payment_id, "succeeded")
        raise RuntimeError("rolled back")
    assert woken == []
    assert client.post(f"/sandbox/payments/{payment_id}/succeed").status_code == 200
    assert woken == [1]


def test_the_background_deliverer_delivers_at_once_when_woken(
    client: Any, app: Any, db_url: str, customer: dict[str, str]
) -> None:
    payment_id = new_payment(db_url, customer["id"])

    async def scenario() -> float:
        stop = asyncio.Event()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
            # Its timed round is an hour away: only the wake-up can deliver in time.
            task = asyncio.create_task(
                sandbox.deliver_forever(stop, every_seconds=3600, client=http)
            )
            for _ in range(100):
                if sandbox._waker is not None:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # its first, empty round is over
            started = asyncio.get_running_loop().time()
            done = await asyncio.to_thread(client.post, f"/sandbox/payments/{payment_id}/succeed")
            assert done.status_code == 200
            while state(db_url, payment_id)["status"] != "succeeded":
                assert asyncio.get_running_loop().time() - started < 10
                await asyncio.sleep(0.02)
            took = asyncio.get_running_loop().time() - started
            stop.set()
            await task
        return took

    assert run(scenario) < 10
    assert sandbox._waker is None
