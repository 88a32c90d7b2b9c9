"""Running the front router: uvicorn in a background thread, on a socket bound up front.

Binding before the thread starts turns a taken port into an immediate, clear error instead of a
log line from a thread that quietly died.
"""

from __future__ import annotations

import socket
import threading
import time

from llmos.deploy._errors import DeployError
from llmos.deploy._router import FrontRouter

__all__ = ["FrontServer"]

_STARTUP_TIMEOUT_S = 10.0


class FrontServer:
    def __init__(self, router: FrontRouter, host: str, port: int) -> None:
        import uvicorn

        self.host = host
        self._sock = _bind(host, port)
        self.port = self._sock.getsockname()[1]  # the one picked when asked for port 0
        config = uvicorn.Config(router, log_level="warning", access_log=False, lifespan="on",
                                # a stream still open at stop is cut after this: stop() drains first
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"llmos-front-{port}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DeployError(f"the front router on {self.host}:{self.port} did not start.",
                                  hint="Run with LLMOS_DEBUG=1 and look at the log above.")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()


def _bind(host: str, port: int) -> socket.socket:
    from llmos.serve._server import tcp_listener  # stdlib only: no model stack comes with it

    try:
        return tcp_listener(host, port)
    except OSError as exc:
        raise DeployError(f"the front port {host}:{port} cannot be used: {exc.strerror}.",
                          hint="Pick another port, or stop whatever listens there (ss -ltnp).") from None
