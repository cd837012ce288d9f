"""The waiting room's store on the embedded default: an in-memory Redis-protocol server (fakeredis).

`make run` starts it from the Procfile. When REDIS_URL (or QUEUE_REDIS_URL) names a real Redis, it
has nothing to do and idles, because honcho stops every process as soon as one exits. Its queues live
in memory: they do not survive a restart of `make run` (a real Redis with AOF does; see README).
"""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the waiting room's Redis protocol in memory when no Redis is configured (make run)."

    def handle(self, *args: Any, **options: Any) -> None:
        embedded = f"redis://127.0.0.1:{settings.QUEUE_EMBEDDED_PORT}/0"
        if embedded != settings.QUEUE_REDIS_URL:
            self.stdout.write("waiting room: using the configured Redis; nothing to serve")
            signal.pause()
            return
        from fakeredis import TcpFakeServer

        class Server(TcpFakeServer):
            # socketserver's listen backlog of 5 drops connections when every web and worker process
            # connects at once (a rush, a fuzzer): they then time out as "waiting room unavailable".
            request_queue_size = 128
            daemon_threads = True

        server = Server(("127.0.0.1", settings.QUEUE_EMBEDDED_PORT))
        self.stdout.write(f"waiting room: in-memory Redis protocol on 127.0.0.1:{settings.QUEUE_EMBEDDED_PORT}")
        try:
            server.serve_forever()
        finally:
            server.server_close()
