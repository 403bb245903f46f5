#!/usr/bin/env python3
"""Server memory and database health under SSE watchers that never read (issue 15, item 6).

Starts the release binary on a fresh SQLite file, opens WATCHERS `GET /api/v1/watch` streams
whose sockets are never read (a 4 KB receive buffer, as a far or stalled client has, so what the
server cannot send stays in the server), writes CONFIGS configs of about 6 KB twice (every
event carries a patch of that size), and reports the server's RSS (idle, with the watchers,
after the writes, peak), the slowest history read (`/versions`, from the database) meanwhile,
and how many slow database acquires the server logged.

With --from-start the configs are written first (three versions each) and the watchers resume
from revision 0, so each one catches up from the change log.

    cargo build --release
    python3 benches/slow_watchers.py [--watchers 500] [--configs 200] [--from-start]
"""

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import time

BINARY = os.path.join(os.path.dirname(__file__), "..", "target", "release", "summit-config")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def settle(pid, seconds=3.0):
    """RSS once it stops moving (or after `seconds`)."""
    last, deadline = memory_mb(pid, "VmRSS"), time.time() + seconds
    while time.time() < deadline:
        time.sleep(0.5)
        now = memory_mb(pid, "VmRSS")
        if abs(now - last) < 0.5:
            return now
        last = now
    return last


def request(port, method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json"} if body is not None else {}
    connection.request(method, path, body=json.dumps(body) if body is not None else None,
                       headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def document(i, generation):
    settings = {f"setting_{k:03}": f"value-{generation}-{i}-{k}-" + "x" * 48 for k in range(60)}
    return {"config": settings, "metadata": {"actor": "bench", "message": f"gen {generation}"}}


class Writer:
    def __init__(self, port):
        self.port = port
        self.slowest_read = 0.0

    def write(self, configs, generations):
        for generation in generations:
            for i in range(configs):
                status, _ = request(self.port, "PUT", f"/api/v1/configs/slow-{i}",
                                    document(i, generation))
                assert status in (200, 201), status
                if i % 20 == 0:
                    self.read()

    def read(self):
        started = time.time()
        status, _ = request(self.port, "GET", "/api/v1/configs/slow-0/versions")
        assert status == 200, status
        self.slowest_read = max(self.slowest_read, time.time() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--configs", type=int, default=200)
    parser.add_argument("--from-start", action="store_true")
    parser.add_argument("--binary", default=BINARY)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="slow-watchers-")
    port, grpc_port = free_port(), free_port()
    log_path = os.path.join(work, "server.log")
    env = dict(os.environ,
               SUMMIT_HTTP_ADDR=f"127.0.0.1:{port}",
               SUMMIT_GRPC_ADDR=f"127.0.0.1:{grpc_port}",
               SUMMIT_DATABASE_URL=f"sqlite://{work}/data/summit-config.db",
               SUMMIT_NO_AUTH="true",
               SUMMIT_LOG="info,sqlx=warn")
    with open(log_path, "w") as log:
        server = subprocess.Popen([args.binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if request(port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        writer = Writer(port)
        if args.from_start:
            writer.write(args.configs, range(3))
        idle = settle(server.pid)
        query = "?fromRevision=0" if args.from_start else ""
        sockets = []
        for _ in range(args.watchers):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET /api/v1/watch{query} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            sockets.append(s)
        time.sleep(1)
        with_watchers = settle(server.pid)
        started = time.time()
        if args.from_start:
            for _ in range(50):
                writer.read()
                time.sleep(0.1)
        else:
            writer.write(args.configs, range(2))
        took = time.time() - started
        after = settle(server.pid, seconds=10)
        peak = memory_mb(server.pid, "VmHWM")
        with open(log_path) as log:
            slow = len(re.findall(r"time to acquire exceeded", log.read()))
        print(f"watchers={args.watchers} configs={args.configs} from_start={args.from_start}")
        print(f"RSS idle {idle:.0f} MB; with watchers {with_watchers:.0f} MB; "
              f"after {'reads' if args.from_start else 'writes'} {after:.0f} MB; "
              f"peak {peak:.0f} MB")
        print(f"{took:.1f} s; slowest /versions read {writer.slowest_read * 1000:.1f} ms; "
              f"slow-acquire warnings: {slow}")
        for s in sockets:
            s.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
