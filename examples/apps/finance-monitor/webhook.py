"""A local webhook receiver: it records every alert POSTed to it with the time it arrived.

finance.py runs one in a thread to measure the alert latency (arrival of the headline to arrival
of its alert here) and to count how often each alert came; run it alone to watch alerts:

    python webhook.py --port 9000        # then: python monitor.py ... --webhook http://127.0.0.1:9000/
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """An HTTP server on a thread; `received` lists {received_at, alert} in arrival order."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, echo: bool = False) -> None:
        self.received: list[dict] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                now = time.time()
                with lock:
                    received.append({"received_at": now, "alert": json.loads(body)})
                if echo:
                    print(body.decode("utf-8"), flush=True)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    receiver = Receiver(port=parser.parse_args().port, echo=True)
    print(f"listening on {receiver.url}", flush=True)
    threading.Event().wait()
