"""A stand-in service for supervisor tests: answers /health/ready, logs, may die or fork.

Run as ``python fake_service.py PORT [--die-after S] [--grandchild PIDFILE] [--never-ready]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:
        self.send_response(200 if self.ready else 503)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--die-after", type=float)
    parser.add_argument("--grandchild")
    parser.add_argument("--never-ready", action="store_true")
    args = parser.parse_args()
    Handler.ready = not args.never_ready
    if args.grandchild:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(args.grandchild, "w") as fh:
            fh.write(str(child.pid))
    server = HTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"hello from port {args.port}", flush=True)
    if args.die_after is not None:
        time.sleep(args.die_after)
        print("giving up", flush=True)
        sys.exit(3)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
