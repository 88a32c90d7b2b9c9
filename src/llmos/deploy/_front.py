"""The front router as a process of its own: `python -m llmos.deploy._front STATE_DIR --fd N`.

The deployment controller binds the front address and hands the listening socket over (`--fd`):
a taken port is the controller's immediate error, and a front started again on the same port
never refuses a connection while it starts (the connection waits in the socket's backlog). The
process runs in a session of its own and outlives the controller: it keeps routing to the last
replica set in STATE_DIR/routes.json until a controller (a restarted daemon) adopts it. SIGTERM
stops it once in-flight requests are done. Its output goes to STATE_DIR/logs/front.log.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

from llmos._exit import skip_collection_at_exit

# At SIGTERM, a response still streaming after this is cut; the controller drains the replicas
# (so the front has nothing in flight) before it stops the front.
GRACEFUL_S = 5


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    parser = argparse.ArgumentParser(prog="python -m llmos.deploy._front", description=(
        "The front router of one deployment. The deployment controller starts it with the listening "
        "socket; it routes to the replicas listed in STATE_DIR/routes.json."))
    parser.add_argument("state_dir", type=Path, help="the deployment's state folder")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket, inherited from the controller")
    args = parser.parse_args(argv)

    import uvicorn

    from llmos.deploy._route_table import RouteTable
    from llmos.deploy._router import FrontRouter
    from llmos.deploy._routes import ROUTES_FILE, decode_routes

    try:
        routes = decode_routes((args.state_dir / ROUTES_FILE).read_text())
        sock = socket.socket(fileno=args.fd)
        host, port = sock.getsockname()[:2]
    except (OSError, ValueError) as exc:
        log(f"cannot start: {exc}")
        return 2
    table = RouteTable()
    table.apply(routes)
    log(f"front router of deployment {routes.name} (pid {os.getpid()}) listening on {host}:{port}")
    config = uvicorn.Config(FrontRouter(table, args.state_dir, log=log), log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=GRACEFUL_S)
    # SIGTERM/SIGINT: stop accepting, finish what is in flight, then exit by that signal (uvicorn
    # raises it again once it is done).
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def log(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
