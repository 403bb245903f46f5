#!/usr/bin/env python3
"""Idle connections against a small file limit (issue 15, item 6).

Starts the release binary with the open-file limit at 1,024 (soft and hard), opens SOCKETS
connections that send nothing, and then asks `GET /ready` once a second for SECONDS seconds,
printing each answer and how long it took, and how many flood sockets were refused with 503.

    cargo build --release && python3 benches/idle_flood.py [--sockets 1100] [--seconds 5]
"""

import argparse
import http.client
import os
import socket
import subprocess
import tempfile
import time

BINARY = os.path.join(os.path.dirname(__file__), "..", "target", "release", "summit-config")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    started = time.time()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/ready")
        response = connection.getresponse()
        response.read()
        answer = response.status
    except OSError as error:
        answer = repr(error)
    return answer, (time.time() - started) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=1100)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--binary", default=BINARY)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="idle-flood-")
    port = free_port()
    env = dict(os.environ,
               SUMMIT_HTTP_ADDR=f"127.0.0.1:{port}",
               SUMMIT_GRPC_ADDR="127.0.0.1:0",
               SUMMIT_DATABASE_URL=f"sqlite://{work}/summit-config.db",
               SUMMIT_NO_AUTH="true")
    log_path = os.path.join(work, "server.log")
    with open(log_path, "w") as log:
        server = subprocess.Popen(["bash", "-c", 'ulimit -n 1024 && exec "$0"', args.binary],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            if ready(port)[0] == 200:
                break
            time.sleep(0.1)
        flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.sockets)]
        print(f"{args.sockets} idle sockets open")
        for second in range(args.seconds):
            answer, millis = ready(port)
            print(f"{second} s: GET /ready -> {answer} in {millis:.1f} ms")
            time.sleep(1)
        refused = 0
        for s in flood:
            s.settimeout(0.01)
            try:
                refused += s.recv(32).startswith(b"HTTP/1.1 503")
            except OSError:
                pass
        print(f"flood sockets refused with 503: {refused}")
        with open(log_path) as log:
            for line in log:
                if "open-file limit" in line or "listening" in line or "accept" in line:
                    print(line.rstrip())
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
