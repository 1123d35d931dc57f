#!/usr/bin/env python3
"""The local AWS emulator: moto's server, processing one request at a time.

Usage: .venv/bin/python scripts/emulator.py [-H 127.0.0.1] [-p 4566]

Why not `moto_server` itself: it serves each request on its own thread, and moto's DynamoDB
backend holds no lock between a condition check and the write that follows it, so two concurrent
`attribute_not_exists` writes of the same item can both succeed. Real DynamoDB never allows that
(conditional writes to one item are serialised), and Hookline's idempotency rests on it: the test
of 50 concurrent deliveries caught two "accepted" answers under the threaded server. Processing
one request at a time gives the emulator the same per-item atomicity as the real service.
Connections are still served on threads (a single-threaded server would block on a client's idle
keep-alive connection); only the processing of a request holds the lock.
"""
import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    moto_app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def app(environ, start_response):
        with lock:
            # The whole response is produced inside the lock.
            return list(moto_app(environ, start_response))

    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
