"""The control-plane daemon: `python -m llmos.control._daemon CONFIG.json` (started by `llmos up`).

The main thread runs the scheduling loop; uvicorn serves the REST API from a second thread.
The loop wakes every `interval_s`, at once when a job is submitted or cancelled, and at once
when an attempt's supervisor exits (SIGCHLD). SIGTERM (`llmos down`) preempts the running jobs
(they checkpoint and go back to the queue, to resume at the next `llmos up`), stops the
deployments, and exits. One daemon per LLMOS_HOME (a lock file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from llmos._exit import skip_collection_at_exit
from llmos.control._config import ControlConfig

__all__ = ["main"]


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    os.umask(0o077)  # everything the daemon makes (database, keys, logs, run files) is its user's alone
    config = ControlConfig.model_validate_json(Path(argv[0]).read_text())
    from llmos.control._paths import control_dir

    lock = open(control_dir() / "daemon.lock", "w")  # noqa: SIM115 - held for the daemon's whole life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _log("another control plane runs for this LLMOS_HOME; exiting")
        return 3
    from llmos.errors import LlmosError

    try:
        return _serve(config)
    except LlmosError as exc:  # a set-up the daemon cannot run with: said in its log, which `llmos up` shows
        _log(f"error: {exc.message}" + (f"\n{exc.hint}" if exc.hint else ""))
        return 2


def _serve(config: ControlConfig) -> int:
    import psutil
    import uvicorn

    from llmos import __version__
    from llmos.control._app import create_app
    from llmos.control._auth import ensure_admin_token
    from llmos.control._db import database_url, default_url, open_db, redact
    from llmos.control._inventory import detect
    from llmos.control._isolation import describe, prepare_home, resolve
    from llmos.control._loop import ControlLoop
    from llmos.control._paths import admin_token_file, daemon_file
    from llmos.control._service import Service
    from llmos.paths import home

    isolation = resolve(config.isolation, cluster=bool(config.ray))
    prepare_home(home(), isolation)  # before the database opens: its files are 0600 from the start
    engine = open_db(database_url(config.db, config.db_password_file))
    for name in ("LLMOS_DB_PASSWORD", "LLMOS_DB"):  # never handed on to a job or a replica
        os.environ.pop(name, None)
    inventory = detect(config)
    hosts, executor = _executor(config, isolation)
    ensure_admin_token(engine, admin_token_file())
    waker = _Waker()
    service = Service(engine, inventory, config, waker.wake, hosts=hosts)
    service.isolation = isolation  # `none` makes admin tokens only
    loop = ControlLoop(engine, hosts() if hosts else inventory, config, executor=executor, log=_log, refresh=hosts)
    _wire_deployments(service, loop, inventory, config)
    if loop.deployments is not None:
        loop.deployments.isolation = isolation  # replicas run as their project's jobs do
    from llmos.control._pipelines import PipelineDriver

    loop.pipelines = PipelineDriver(engine, deployments=service.deployments, log=_log)
    from llmos.control._sweeps import SweepDriver

    loop.sweeps = SweepDriver(engine, log=_log, background=True, wake=waker.wake)
    loop.recover()

    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so; without it every
    # response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    sock.listen(1024)
    port = sock.getsockname()[1]
    serving, tls = _tls(config)
    info: dict[str, Any] = {"pid": os.getpid(), "create_time": psutil.Process().create_time(),
                            "url": f"{serving.scheme}://{_url_host(config.host)}:{port}", "host": config.host,
                            "port": port, "bind": f"{_url_host(config.host, keep_any=True)}:{port}",
                            "scheme": serving.scheme, "tls": tls, "insecure_http": serving.warning is not None,
                            "isolation": isolation,
                            "db": redact(config.db or default_url()), "policy": config.policy,
                            "interval_s": config.interval_s, "version": __version__, "started_s": time.time()}
    server = uvicorn.Server(uvicorn.Config(create_app(service, info), log_level="warning", access_log=False,
                                           ssl_certfile=serving.cert, ssl_keyfile=serving.key))

    def serve_api() -> None:
        # Signals go to the main thread (the loop), where the handlers run at once.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT})
        server.run(sockets=[sock])

    thread = threading.Thread(target=serve_api, name="api", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            _log("the API server failed to start")
            return 1
        time.sleep(0.01)
    psutil.cpu_percent(percpu=True)  # prime `llmos top`'s per-core sample
    _write_json(daemon_file(), info)
    if hosts is None:
        where = f"{len(inventory.cores)} cores, {len(inventory.gpus)} GPUs"
    else:
        nodes = hosts().hosts
        where = (f"Ray at {config.ray}: {len(nodes)} node(s), {sum(len(h.cores) for h in nodes)} CPUs, "
                 f"{sum(len(h.gpus) for h in nodes)} GPUs, storage {config.storage}")
    _log(f"control plane up at {info['url']} (bound to {info['bind']} over {serving.scheme.upper()}, "
         f"pid {info['pid']}, db {info['db']}, {where}, policy {config.policy})")
    if tls:
        _log(f"TLS certificate {tls['cert']}" + (" (self-signed)" if tls["self_signed"] else "")
             + f", SHA-256 fingerprint {tls['fingerprint']}")
    for line in ([serving.warning] if serving.warning else []) + [describe(isolation)]:
        _log(line)

    stopping: list[int] = []

    def on_stop(signum: int, _frame: Any) -> None:
        stopping.append(signum)  # no lock here: the handler may interrupt code holding one

    signal.set_wakeup_fd(waker.write_fd)  # every handled signal (SIGCHLD: an attempt ended) wakes the loop
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while not stopping:
        waker.drain()
        try:
            loop.tick()
        except Exception:  # a bad round must not take the machine's scheduler down; it is logged
            _log("scheduling round failed:\n" + traceback.format_exc())
            time.sleep(config.interval_s)
        waker.wait(config.interval_s)

    _log("stopping: running jobs checkpoint and go back to the queue")
    loop.stop_all("control plane stopped (llmos down): requeued, resumes at the next llmos up",
                  timeout_s=config.grace_s + 5)
    if loop.deployments is not None:
        loop.deployments.stop_all()
    server.should_exit = True
    thread.join(timeout=10)
    daemon_file().unlink(missing_ok=True)
    _log("stopped")
    return 0


class _Waker:
    """Wakes the loop from API threads and signal handlers through a pipe.

    Not a threading.Event: a handler that sets one can interrupt the main thread while it holds
    the event's lock, and wait for that lock forever.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe already means "wake up"
            os.write(self.write_fd, b"w")

    def wait(self, timeout_s: float) -> None:
        select.select([self.read_fd], [], [], timeout_s)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 4096):
                pass


def _tls(config: ControlConfig) -> tuple[Any, dict[str, Any] | None]:
    """How the API serves (llmos.control._tls) and, over HTTPS, its certificate's path and fingerprint."""
    from llmos.control._paths import control_dir
    from llmos.control._tls import fingerprint, self_signed, serving_plan

    serving = serving_plan(config.host, config.tls_cert, config.tls_key, config.insecure_http)
    if serving.scheme == "http":
        return serving, None
    if serving.self_signed:
        cert, key = self_signed(control_dir() / "tls", config.host)
        serving = type(serving)("https", str(cert), str(key), self_signed=True)
    assert serving.cert is not None
    try:
        pem = Path(serving.cert).read_bytes()
        print_ = fingerprint(pem)
    except (OSError, ValueError) as exc:
        from llmos.errors import LlmosError

        raise LlmosError(f"cannot read the TLS certificate {serving.cert}: {exc}",
                         hint="Give a PEM certificate with --tls-cert (and its key with --tls-key).") from None
    return serving, {"cert": serving.cert, "fingerprint": print_, "self_signed": serving.self_signed}


def _executor(config: ControlConfig, isolation: str = "trusted") -> tuple[Any, Any]:
    """(hosts, executor): (None, the local executor) on this machine; on Ray, its nodes as they are
    now and the Ray executor, after proving every node sees the storage. The tracking URI (the
    server's, or SQLite on the storage in cluster mode) goes to the daemon's own registry calls and,
    through the environment, to every job."""
    if config.tracking:
        if config.tracking.startswith(("http://", "https://")):
            from llmos.tracking import check_server

            check_server(config.tracking)  # a wrong URL is refused at `llmos up`, not by every job later
        os.environ["LLMOS_TRACKING_URI"] = config.tracking
    if not config.ray:
        from llmos.executor import LocalExecutor

        return None, LocalExecutor(isolation)
    from llmos.executor._ray import RayExecutor, connect, worker_environ
    from llmos.executor._ray_inventory import RayHosts
    from llmos.executor._storage import prove_storage

    storage = Path(config.storage or "").expanduser().resolve()
    storage.mkdir(parents=True, exist_ok=True)
    os.environ["LLMOS_STORAGE"] = str(storage)  # run and attempt folders (llmos.paths) move there
    tracking = config.tracking or f"sqlite:///{storage / 'home' / 'mlflow.db'}"
    (storage / "home").mkdir(exist_ok=True)
    os.environ["LLMOS_TRACKING_URI"] = tracking
    connect(config.ray, storage)
    hosts = RayHosts()
    prove_storage(storage, hosts())
    return hosts, RayExecutor(worker_environ(storage, tracking))


def _wire_deployments(service: Any, loop: Any, inventory: Any, config: ControlConfig) -> None:
    try:
        from llmos.control._deployments import DeploymentManager
    except ImportError:
        return
    # On Ray, replicas go to the cluster's nodes (loop.refresh: its hosts now) with what every worker gets.
    manager = DeploymentManager.create(service.engine, inventory, log=_log, hosts=loop.refresh,
                                       environ=getattr(loop.executor, "environ", None))
    if manager is not None:
        service.deployments = loop.deployments = manager


def _url_host(host: str, keep_any: bool = False) -> str:
    """The host part of a URL to reach `host` from this machine (`keep_any`: the bind address as is)."""
    if host in ("0.0.0.0", "") and not keep_any:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
