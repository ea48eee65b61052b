"""Chat fan-out: a message is written to the database first and told to the open
WebSockets after its transaction commits, in every app process.

* PostgreSQL: :func:`announce` runs ``pg_notify`` inside the writing transaction, so
  the server delivers it only if (and when) that transaction commits; every process
  holds one ``LISTEN`` connection (psycopg, async), opened when its first socket
  attaches, and hands each notification to its own sockets.
* SQLite (one process): the announcement waits in the session until ``after_commit``
  and then goes to the in-process hub.

A notification carries only ids; each process reads the message once and gives every
socket what it may see (private notes only to the desk).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from covernet.core.db import is_postgres
from covernet.identity.access import SESSION_COOKIE, Principal
from covernet.identity.models import Role

log = logging.getLogger("covernet.consult.chat")

PG_CHANNEL = "covernet_desk"
PENDING_KEY = "consult_announcements"
LISTENING_KEY = "consult_hooks"


def announce(db: Session, payload: dict[str, Any]) -> None:
    """Tell every process's sockets about ``payload`` once the transaction commits."""
    if is_postgres(db):
        db.execute(select(func.pg_notify(PG_CHANNEL, json.dumps(payload))))
        return
    if not db.info.get(LISTENING_KEY):  # the session's hooks, once (sessions are short)
        db.info[LISTENING_KEY] = True
        event.listen(db, "after_commit", _after_commit)
        event.listen(db, "after_rollback", _after_rollback)
    db.info.setdefault(PENDING_KEY, []).append(payload)


def _after_commit(db: Session) -> None:
    for payload in db.info.pop(PENDING_KEY, None) or []:
        HUB.publish_threadsafe(payload)


def _after_rollback(db: Session) -> None:
    db.info.pop(PENDING_KEY, None)


# The hub: the sockets of this process ---------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    """One open socket.  ``staff`` sockets see private notes; ``desk`` sockets also get
    inbox changes of the conversations ``may_see`` admits."""

    staff: bool
    desk: bool = False
    conversations: set[str] = field(default_factory=set)
    may_see: Callable[[dict[str, Any]], bool] = lambda _conv: False
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(256))

    def put(self, item: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a stuck socket loses, the others not
            self.queue.put_nowait(item)


Loader = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(eq=False)
class _LoopHub:
    """The sockets served by one event loop (a process has one; a test process that
    runs several test clients has one per client)."""

    loop: asyncio.AbstractEventLoop
    database_url: str
    subscribers: set[Subscriber] = field(default_factory=set)
    listener: asyncio.Task[None] | None = None
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    # Deliveries run one at a time, in the order they were announced (the lock is FIFO).
    order: asyncio.Lock = field(default_factory=asyncio.Lock)


class Hub:
    def __init__(self) -> None:
        self._hubs: dict[asyncio.AbstractEventLoop, _LoopHub] = {}
        self._lock = threading.Lock()

    def _here(self) -> _LoopHub:
        from covernet.core.config import get_settings

        loop = asyncio.get_running_loop()
        url = get_settings().database_url
        with self._lock:
            for stale in [k for k in self._hubs if k.is_closed()]:
                del self._hubs[stale]
            hub = self._hubs.get(loop)
            if hub is None or hub.database_url != url:
                if hub is not None and hub.listener is not None:
                    hub.listener.cancel()
                hub = self._hubs[loop] = _LoopHub(loop, url)
            return hub

    async def attach(self, sub: Subscriber) -> None:
        """Add a socket; on PostgreSQL make sure this loop listens (waits for it)."""
        hub = self._here()
        hub.subscribers.add(sub)
        if make_url(hub.database_url).get_backend_name() == "postgresql":
            if hub.listener is None or hub.listener.done():
                hub.listening = asyncio.Event()
                hub.listener = hub.loop.create_task(self._listen(hub))
            await asyncio.wait_for(hub.listening.wait(), timeout=10)

    def detach(self, sub: Subscriber) -> None:
        with self._lock:
            hubs = list(self._hubs.values())
        for hub in hubs:
            hub.subscribers.discard(sub)

    async def _listen(self, hub: _LoopHub) -> None:
        import psycopg

        url = make_url(hub.database_url).set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {PG_CHANNEL}")
                    hub.listening.set()
                    async for note in conn.notifies():
                        with contextlib.suppress(ValueError):
                            await self.deliver(hub, json.loads(note.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: listen again shortly
                log.warning("desk listener: %s; reconnecting", type(exc).__name__)
                await asyncio.sleep(1)

    def publish_threadsafe(self, payload: dict[str, Any]) -> None:
        """From any thread of this process (SQLite's after-commit)."""
        with self._lock:
            hubs = [h for h in self._hubs.values() if h.subscribers and not h.loop.is_closed()]
        for hub in hubs:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                hub.loop.call_soon_threadsafe(_spawn, self.deliver(hub, payload))

    async def deliver(self, hub: _LoopHub, payload: dict[str, Any]) -> None:
        async with hub.order:
            await self._deliver(hub, payload)

    async def _deliver(self, hub: _LoopHub, payload: dict[str, Any]) -> None:
        conversation_id = payload.get("conversation_id")
        if not isinstance(conversation_id, str) or not hub.subscribers:
            return
        subscribers = list(hub.subscribers)
        watching = [s for s in subscribers if conversation_id in s.conversations]
        desks = [s for s in subscribers if s.desk]
        if not watching and not desks:
            return
        try:
            loaded = await run_in_threadpool(_load, payload)
        except Exception as exc:
            log.error("desk fan-out: %s reading %s", type(exc).__name__, conversation_id)
            return
        if loaded is None:
            return  # another schema's conversation (shared server) or gone
        conv, message = loaded.get("conversation"), loaded.get("message")
        for sub in watching:
            if message is not None and (sub.staff or not message["private"]):
                sub.put({"type": "message", "message": message})
            elif message is None and conv is not None:
                sub.put({"type": "conversation", "conversation": _public_conv(conv, sub.staff)})
        for sub in desks:
            if conv is not None and sub.may_see(conv):
                sub.put({"type": "inbox", "conversation": conv})


_tasks: set[asyncio.Task[None]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)  # keep a reference until done
    task.add_done_callback(_tasks.discard)


def _public_conv(conv: dict[str, Any], staff: bool) -> dict[str, Any]:
    if staff:
        return conv
    return {k: conv[k] for k in ("id", "state", "channel", "csat_given")}


def _load(payload: dict[str, Any]) -> dict[str, Any] | None:
    from covernet.consult import api
    from covernet.consult.models import Conversation, ConversationMessage
    from covernet.core.db import unit_of_work

    with unit_of_work() as db:
        conv = db.get(Conversation, payload["conversation_id"])
        if conv is None:
            return None
        out: dict[str, Any] = {"conversation": api.conversation_event(db, conv)}
        message_id = payload.get("message_id")
        if isinstance(message_id, str):
            message = db.get(ConversationMessage, message_id)
            if message is None:
                return None
            out["message"] = api.message_out(message).model_dump(mode="json")
        return out


HUB = Hub()


# The sockets ------------------------------------------------------------------------------
#
# WebSocket routes are not API routes: each authenticates its caller itself (the session
# cookie, or for the customer's side the signed visitor token) and refuses a foreign
# Origin, since browsers send cookies with cross-site WebSocket handshakes.

router = APIRouter(include_in_schema=False)

REFUSED = 4403  # close code: not allowed


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if not origin:
        return True  # not a browser
    return urlsplit(origin).netloc.lower() == (ws.headers.get("host") or "").lower()


def _signed_in(ws: WebSocket) -> Principal | None:
    """The cookie's account (in a short transaction of its own), if any."""
    from covernet.core.db import unit_of_work
    from covernet.identity import service as identity

    cookie = ws.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    with unit_of_work() as db:
        found = identity.resolve_session(db, cookie, kind="cookie")
        if found is None:
            return None
        sess, user = found
        return Principal(
            role=Role(user.role),
            user_id=user.id,
            name=user.name,
            session_id=sess.id,
            method="cookie",
        )


async def _pump(ws: WebSocket, sub: Subscriber) -> None:
    while True:
        await ws.send_json(await sub.queue.get())


async def _serve(
    ws: WebSocket, sub: Subscriber, handle: Callable[[dict[str, Any]], Any], hello: dict[str, Any]
) -> None:
    from covernet.core.errors import CovernetError

    await ws.accept()
    await HUB.attach(sub)
    sender = asyncio.create_task(_pump(ws, sub))
    try:
        await ws.send_json(hello)
        while True:
            try:
                frame = await ws.receive_json()
            except ValueError:
                await ws.send_json({"type": "error", "error": "malformed_frame"})
                continue
            if not isinstance(frame, dict):
                await ws.send_json({"type": "error", "error": "malformed_frame"})
                continue
            try:
                answer = await run_in_threadpool(handle, frame)
            except CovernetError as exc:
                answer = {"type": "error", **exc.to_dict()}
            if answer is not None:
                await ws.send_json(answer)
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        HUB.detach(sub)


@router.websocket("/ws/chat")
async def customer_socket(ws: WebSocket) -> None:
    """The customer's chat: ``?conversation=<id>`` to continue one, ``&visitor=<token>``
    for anonymous visitors.  Frames in: ``{"type": "message", "body", "product_code"?}``
    (the first message of a new chat starts it).  Frames out: ``ready``, ``started``,
    ``message``, ``conversation``, ``error``."""
    from covernet.consult import api, service
    from covernet.core.db import unit_of_work

    if not _same_origin(ws):
        await ws.close(code=REFUSED)
        return
    who = await run_in_threadpool(_signed_in, ws)
    if who is not None and who.is_customer:
        caller = service.Caller(customer_id=who.user_id)
    elif who is None and (visitor := api.visitor_of(ws.query_params.get("visitor"))):
        caller = service.Caller(visitor_id=visitor)
    else:
        await ws.close(code=REFUSED)
        return
    sub = Subscriber(staff=False)
    wanted = ws.query_params.get("conversation")
    if wanted:

        def check() -> bool:
            from covernet.core.errors import NotFound

            with unit_of_work() as db:
                try:
                    service.get_for_caller(db, caller, wanted)
                except NotFound:
                    return False
                return True

        if not await run_in_threadpool(check):
            await ws.close(code=REFUSED)
            return
        sub.conversations.add(wanted)

    def handle(frame: dict[str, Any]) -> dict[str, Any] | None:
        if frame.get("type") != "message":
            return {"type": "error", "error": "unknown_frame"}
        body = str(frame.get("body") or "")
        with unit_of_work() as db:
            if sub.conversations:
                current = next(iter(sub.conversations))
                message = service.customer_message(db, caller, current, body)
                return {"type": "sent", "id": message.id}
            product = frame.get("product_code")
            conv, message = service.start(
                db,
                caller,
                channel="web",
                body=body,
                product_code=product if isinstance(product, str) else None,
            )
            sub.conversations.add(conv.id)  # before the commit: its own message comes back
            return {"type": "started", "conversation": api.conversation_event(db, conv)}

    await _serve(ws, sub, handle, {"type": "ready", "conversation_id": wanted})


@router.websocket("/ws/desk")
async def desk_socket(ws: WebSocket) -> None:
    """The desk: inbox changes of the conversations the advisor may see, and the
    messages of the ones they ``{"type": "watch", "conversation_id"}``."""
    from covernet.consult import service
    from covernet.core.db import unit_of_work

    if not _same_origin(ws):
        await ws.close(code=REFUSED)
        return
    who = await run_in_threadpool(_signed_in, ws)
    if who is None or who.role not in service.DESK_ROLES:
        await ws.close(code=REFUSED)
        return

    def skills() -> list[str] | None:
        with unit_of_work() as db:
            found = service.agent(db, who.user_id)
            return list(found.skills) if found else None

    held = await run_in_threadpool(skills)
    sub = Subscriber(
        staff=True,
        desk=True,
        may_see=lambda conv: service.visible_to(
            conv.get("assignee_id"), conv.get("product_line"), who, held
        ),
    )

    def handle(frame: dict[str, Any]) -> dict[str, Any] | None:
        conversation_id = str(frame.get("conversation_id") or "")
        if frame.get("type") != "watch":
            return {"type": "error", "error": "unknown_frame"}
        with unit_of_work() as db:
            service.get_for_staff(db, who, conversation_id)  # 404 unless visible
        sub.conversations.add(conversation_id)
        return {"type": "watching", "conversation_id": conversation_id}

    await _serve(ws, sub, handle, {"type": "ready"})
