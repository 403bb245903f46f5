#!/usr/bin/env python3
"""A summit.config.v1 gRPC client in Python, driven by tests/python_client.rs.

Generates stubs from proto/summit/config/v1/config.proto with grpc_tools.protoc into a temporary
directory, then against the server at --grpc:

1. calls GetEffectiveConfig for --config-id in --environment and prints the answer as one JSON
   line: {"type": "effective", "configId", "version", "environment", "effectiveConfigJson",
   "checksum", "assignment": {"canary", "variant"}, "stale"};
2. opens Watch for that config id and prints each event as one JSON line: {"type": "event",
   "kind": <the WatchEvent oneof name: snapshot, change, heartbeat or resync>, "revision",
   "configId", "version", "changeKind", "checksum"}, until it has seen the initial snapshot and
   one change; then it exits 0.

Every line goes to stdout, flushed at once. Errors go to stderr with a non-zero exit status.
Exit status 3 means the grpcio or grpcio-tools modules are missing.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_ROOT = os.path.join(REPO, "proto")
PROTO_FILE = os.path.join("summit", "config", "v1", "config.proto")

MISSING_MODULES = 3


def emit(record):
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def generate_stubs(out_dir):
    """Runs `python -m grpc_tools.protoc` on the proto and makes the stubs importable."""
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I" + PROTO_ROOT,
        "--python_out=" + out_dir,
        "--grpc_python_out=" + out_dir,
        os.path.join(PROTO_ROOT, PROTO_FILE),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(
            "grpc_tools.protoc failed (exit %d): %s%s"
            % (result.returncode, result.stdout, result.stderr)
        )
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("summit.config.v1.config_pb2")
    pb2_grpc = importlib.import_module("summit.config.v1.config_pb2_grpc")
    return pb2, pb2_grpc


def effective_record(effective):
    return {
        "type": "effective",
        "configId": effective.config_id,
        "version": effective.version,
        "environment": effective.environment,
        "effectiveConfigJson": effective.effective_config_json,
        "checksum": effective.checksum,
        "assignment": {
            "canary": effective.assignment.canary,
            "variant": effective.assignment.variant,
        },
        "stale": effective.stale,
    }


def event_record(event):
    kind = event.WhichOneof("event")
    record = {"type": "event", "kind": kind}
    if kind in ("snapshot", "change"):
        change = getattr(event, kind)
        record.update(
            revision=change.revision,
            configId=change.config_id,
            version=change.version,
            changeKind=change.kind,
            checksum=change.checksum,
        )
    elif kind in ("heartbeat", "resync"):
        record["revision"] = getattr(event, kind).revision
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", required=True, help="server address, host:port")
    parser.add_argument("--config-id", required=True)
    parser.add_argument("--environment", default="production")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds for the whole run"
    )
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout

    def remaining():
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit("timed out after %.0f s" % args.timeout)
        return left

    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError as error:
        sys.stderr.write("missing Python module: %s\n" % error)
        sys.exit(MISSING_MODULES)

    with tempfile.TemporaryDirectory(prefix="summit-stubs-") as stubs:
        pb2, pb2_grpc = generate_stubs(stubs)
        with grpc.insecure_channel(args.grpc) as channel:
            connect = min(remaining(), 10.0)
            try:
                grpc.channel_ready_future(channel).result(timeout=connect)
            except grpc.FutureTimeoutError:
                sys.exit("no connection to %s within %.0f s" % (args.grpc, connect))
            client = pb2_grpc.ConfigServiceStub(channel)

            effective = client.GetEffectiveConfig(
                pb2.GetEffectiveConfigRequest(
                    config_id=args.config_id, environment=args.environment
                ),
                timeout=remaining(),
            )
            emit(effective_record(effective))

            stream = client.Watch(
                pb2.WatchRequest(config_ids=[args.config_id]), timeout=remaining()
            )
            seen_snapshot = False
            try:
                for event in stream:
                    record = event_record(event)
                    emit(record)
                    if record["kind"] == "snapshot":
                        seen_snapshot = True
                    elif record["kind"] == "change" and seen_snapshot:
                        return 0
                    elif record["kind"] == "resync":
                        sys.exit("unexpected resync: %s" % json.dumps(record))
            finally:
                stream.cancel()
            sys.exit("the Watch stream ended before a snapshot and a change")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # the Rust test shows stderr when it fails
        sys.stderr.write("grpc_client.py: %s: %s\n" % (type(error).__name__, error))
        sys.exit(1)
