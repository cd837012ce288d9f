"""A TCP proxy for tests: put it between this run's processes and a shared server to slow or cut them.

The shared PostgreSQL and RabbitMQ serve other runs too, so a test never stops them: it points its own
processes through a ``Proxy`` and delays what the server answers (``slow``) or drops every connection
and refuses new ones (``cut``) for as long as the fault should last.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.delay = 0.0  # seconds added to everything the server sends back
        self.refusing = False
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self.accept_forever, daemon=True).start()

    @classmethod
    def for_url(cls, url: str) -> Proxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 0)

    def url(self, url: str) -> str:
        """``url`` (of the proxied server) pointed at the proxy instead."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @contextlib.contextmanager
    def slow(self, seconds: float) -> Iterator[None]:
        self.delay = seconds
        try:
            yield
        finally:
            self.delay = 0.0

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until ``restore``."""
        self.refusing = True
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()

    def accept_forever(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets.update((client, server))
            threading.Thread(target=self.pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, True), daemon=True).start()

    def pump(self, source: socket.socket, sink: socket.socket, delayed: bool) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
        if delayed:
            threading.Thread(target=self.send_later, args=(chunks, sink), daemon=True).start()
        try:
            while data := source.recv(65536):
                if delayed:
                    chunks.put((time.monotonic() + self.delay, data))
                else:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            chunks.put((0.0, b""))
            if not delayed:
                self.drop(source, sink)

    def send_later(self, chunks: queue.Queue[tuple[float, bytes]], sink: socket.socket) -> None:
        try:
            while True:
                due, data = chunks.get()
                if not data:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self.drop(sink)

    def drop(self, *socks: socket.socket) -> None:
        with self.lock:
            for sock in socks:
                self.sockets.discard(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
