"""A real HTTP server on loopback for tests: uvicorn running an ASGI app in a thread.

    with LiveServer(app) as server:
        ...  # requests to server.url ("http://127.0.0.1:<free port>")

The kernel picks the free port (uvicorn binds port 0), so parallel runs never
collide; a port from ``free_port`` stays reserved (bound) until its server
listens on it. Start and stop are bounded: a server that does not come up, or
does not shut down, within ``wait_seconds`` (generous: a loaded machine starts
a gateway slowly) is an error, not a hung test run; requests still running at
stop are cancelled after one second.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class LiveServer:
    """Serve ``app`` on 127.0.0.1 at a free port from ``start`` until ``stop``."""

    def __init__(self, app: Any, *, wait_seconds: float = 60.0, lifespan: str = "off",
                 port: int = 0) -> None:
        self.app = app
        self.port = port
        self.wait_seconds = wait_seconds
        self.lifespan = lifespan
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveServer:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=self.lifespan,
            ws="none", loop="asyncio", http="h11", timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        reserved = _reserved.pop(self.port, None)  # from free_port: serve on its socket
        sockets = None if reserved is None else [reserved]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": sockets},
                                        name="test-http-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.wait_seconds
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("test HTTP server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(self.wait_seconds)
        alive = self._thread.is_alive()
        self._server = self._thread = None
        if alive:
            raise RuntimeError("test HTTP server did not stop")

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_reserved: dict[int, socket.socket] = {}


def free_port() -> int:
    """A free port on 127.0.0.1 for a ``LiveServer(port=...)`` (for servers that
    must know each other's address before either starts). It is reserved until
    then: bound, not yet listening (connections to it are refused), so no other
    process, another test run's server or client, can take it meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    _reserved[port] = sock
    return port
