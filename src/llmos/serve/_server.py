"""Running one replica: fetch and check the model, listen, load and warm up in the background,
and drain on SIGTERM (stop taking work, answer /readyz 503, finish what is in flight, exit 0)."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Running", "begin_drain", "bind", "serve", "serve_in_thread", "tcp_listener"]

# After the drain, uvicorn waits this long for idle connections to close before it cancels them.
_CLOSE_GRACE_S = 2


def tcp_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket (OSError if the address cannot be used); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets marked as TCP;
    # with proto 0 every keep-alive request waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def bind(host: str, port: int) -> socket.socket:
    """The replica's listening socket (read the port back with getsockname), inheritable."""
    from llmos.errors import LlmosError

    try:
        sock = tcp_listener(host, port)
    except OSError as exc:
        raise LlmosError(f"cannot listen on {host}:{port}: {exc.strerror}.",
                         hint="Pick another --port (0 takes a free one) or stop what uses this one.") from None
    sock.set_inheritable(True)
    return sock


def _make_server(service: Any, app: Any) -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        drain_deadline_s: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if service.draining:  # a second signal: stop now
                self.should_exit = self.force_exit = True
                return
            service.draining = True
            self.drain_deadline_s = time.monotonic() + service.job.server.drain_timeout_s

        async def on_tick(self, counter: int) -> bool:
            if service.draining and self.drain_deadline_s is not None and (
                    service.inflight == 0 or time.monotonic() > self.drain_deadline_s):
                self.should_exit = True
            return await super().on_tick(counter)

    config = uvicorn.Config(app, lifespan="on", access_log=service.job.server.log_requests, log_level="warning",
                            timeout_graceful_shutdown=_CLOSE_GRACE_S, timeout_keep_alive=30)
    return DrainingServer(config)


def serve(service: Any, sock: socket.socket, on_ready: Callable[[], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT has drained the server; 0 then, 1 if the model failed to load."""
    from llmos.serve._app import create_app

    server: Any = None

    def failed(_: BaseException) -> None:
        server.should_exit = True

    app = create_app(service, on_load_failure=failed)
    server = _make_server(service, app)
    if on_ready is not None:
        threading.Thread(target=_when_ready, args=(service, on_ready), daemon=True).start()
    server.run(sockets=[sock])
    if service.failed is not None:
        raise service.failed
    return 0


def _when_ready(service: Any, callback: Callable[[], None]) -> None:
    while not service.ready and service.failed is None:
        time.sleep(0.05)
    if service.ready:
        callback()


@dataclass
class Running:
    """A server running in a thread of this process (tests, benchmarks)."""

    url: str
    service: Any
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextlib.contextmanager
def serve_in_thread(service: Any, host: str = "127.0.0.1", ready_timeout_s: float = 120,
                    wait_ready: bool = True, port: int = 0) -> Iterator[Running]:
    """Start a real HTTP server in a background thread (on a free port unless `port` names one);
    yields once it is ready
    (or, with `wait_ready=False`, once it listens, while the model may still be loading).
    Signals are not handled there (they belong to the main thread): drain with `begin_drain`."""
    from llmos.serve._app import create_app

    sock = bind(host, port)
    app = create_app(service)
    server = _make_server(service, app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="llmos-serve", daemon=True)
    thread.start()
    running = Running(f"http://{host}:{sock.getsockname()[1]}", service, server, thread)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not (service.ready if wait_ready else server.started):
            if service.failed is not None:
                raise service.failed
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server was not ready within {ready_timeout_s} s")
            time.sleep(0.02)
        yield running
    finally:
        running.stop()
        sock.close()


def begin_drain(running: Running) -> None:
    """What SIGTERM does, for a server in a thread."""
    running.server.handle_exit(signal.SIGTERM, None)
