"""The web front: one ASGI application, one origin, two paths through it.

    granian --interface asgi --workers 2 ticketing.front.asgi:application

- The waiting room's endpoints (``GET``/``POST /api/performances/{id}/queue/``) are answered on the
  event loop by the fast path (``queue``): no database query, no Django, and for a poll usually no
  Redis round trip either. Whatever the fast path cannot answer on its own (a shop page's session, a
  request it does not understand) it hands to Django like any other request.
- Everything else (pages, bookings, the API, the admin) is Django's WSGI application, run on a pool of
  ``WEB_THREADS`` threads per worker process, so a booking never waits behind a poll and a poll never
  waits for a thread.

The lifespan starts the waiting room's timer (``queue.advance_forever``): admissions advance there
(and when a booking ends), never because someone polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from typing import Any

from a2wsgi import WSGIMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")

from ticketing.wsgi import application as django_application  # sets Django up first

from . import queue

QUEUE_PATH = re.compile(r"^/api/performances/(\d{1,18})/queue/$")
WEB_THREADS = int(os.environ.get("WEB_THREADS", "4"))
# Django's threads and the event loop share one GIL: each time a busy Django thread holds it, the loop
# (whose answers take tens of microseconds) waits up to the switch interval, 5 ms by default.
sys.setswitchinterval(float(os.environ.get("WEB_SWITCH_INTERVAL_MS", "1")) / 1000)

django_asgi = WSGIMiddleware(django_application, workers=WEB_THREADS)  # type: ignore[arg-type]

Scope = dict[str, Any]


async def application(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    match = QUEUE_PATH.match(scope["path"]) if scope["type"] == "http" else None
    if match and await queue.answer(int(match.group(1)), scope, send):
        return

    async def receive_coroutine() -> Any:
        # The bridge hands receive() to run_coroutine_threadsafe, which takes coroutines only; granian's
        # receive() answers an awaitable of its own.
        return await receive()

    await django_asgi(scope, receive_coroutine, send)  # type: ignore[arg-type]


async def lifespan(receive: Any, send: Any) -> None:
    timer: asyncio.Task[None] | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            timer = asyncio.create_task(queue.advance_forever())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            await send({"type": "lifespan.shutdown.complete"})
            return
