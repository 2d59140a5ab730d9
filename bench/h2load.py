#!/usr/bin/env python3
"""Unary Transform under h2load (nghttp2's HTTP/2 load generator), the way
issue 19 compares us with grpc-go: 4 connections x 16 streams in flight, the
same gRPC request on every stream, and the server's CPU per call.

h2load knows nothing of gRPC: it posts a file as the request body, so the file
holds one length-prefixed gRPC message, and it counts HTTP 200s, not gRPC
statuses (those come in trailers it does not read). So every server is asked
once with curl first and must answer `grpc-status: 0` with the expected text;
a server that answered every call with an error would otherwise look fast.

The CPU a server spends per call is its utime + stime from /proc/PID/stat
before and after the measured run, divided by the calls h2load saw succeed.
Used by suite.py (scenario transform-h2load) and postgres.py (GetPerson
beside pgbench); not a script of its own.
"""

from __future__ import annotations

import re
import statistics
import struct
import subprocess
from pathlib import Path

from gateway import cpu_seconds

CONNECTIONS = 4
STREAMS_PER_CONNECTION = 16
METHOD = "/quartet.transform.v1.TransformService/Transform"
TEXT = "hola, mundo"
ANSWER = TEXT.upper()
GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


def frame(message: bytes) -> bytes:
    """An encoded protobuf `message` as one gRPC message: a 0 (not
    compressed), its length as 4 big-endian bytes, then the message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def transform_request_frame() -> bytes:
    """`TransformRequest{operation: OPERATION_UPPER, text: TEXT}` as one gRPC
    message (field 1 varint 1; field 2 length-delimited)."""
    text = TEXT.encode()
    return frame(bytes([0x08, 0x01, 0x12, len(text)]) + text)


def write_request(directory: Path) -> Path:
    path = directory / "transform-request.grpc"
    path.write_bytes(transform_request_frame())
    return path


def check_answer(label: str, address: str, request: Path, method: str = METHOD,
                 expected: bytes = ANSWER.encode()) -> None:
    """One call with curl, which prints trailers: the status must be 0 and the
    body must carry `expected` (by default the transformed text)."""
    result = subprocess.run(
        ["curl", "-sS", "-v", "--http2-prior-knowledge", *GRPC_HEADERS, "--data-binary", f"@{request}",
         f"http://{address}{method}"],
        capture_output=True, check=True,
    )
    trailers = result.stderr.decode(errors="replace")
    if not re.search(r"^< grpc-status: 0\s*$", trailers, re.MULTILINE):
        raise SystemExit(f"{label}: the call did not answer grpc-status 0:\n{trailers}")
    if expected not in result.stdout:
        raise SystemExit(f"{label}: the answer does not hold {expected!r}: {result.stdout!r}")


def h2load(address: str, request: Path, duration: str, method: str = METHOD) -> dict:
    """One h2load run for `duration`; its succeeded calls and calls/s."""
    output = subprocess.run(
        ["h2load", f"-c{CONNECTIONS}", f"-m{STREAMS_PER_CONNECTION}", "-D", duration,
         *GRPC_HEADERS, "-d", str(request), f"http://{address}{method}"],
        capture_output=True, text=True, check=True,
    ).stdout
    finished = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output)
    requests = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                         r"(\d+) errored", output)
    if not finished or not requests:
        raise SystemExit(f"cannot read h2load's report:\n{output}")
    return {
        "per_second": float(finished.group(1)),
        "succeeded": int(requests.group(1)),
        "failed": int(requests.group(2)) + int(requests.group(3)),
    }


def measure(address: str, pid: int, request: Path, duration: str, warmup: str) -> dict:
    """A warm-up run, then a measured one with the server's CPU read around it."""
    h2load(address, request, warmup)
    before = cpu_seconds(pid)
    report = h2load(address, request, duration)
    used = cpu_seconds(pid) - before
    report["cpu_us_per_call"] = used * 1e6 / max(report["succeeded"], 1)
    return report


def summary(reports: list[dict]) -> dict:
    """One server's runs: median calls/s and CPU per call, failures summed, and
    each run's figures."""
    def median_of(key: str) -> float:
        return statistics.median(r[key] for r in reports)

    return {
        "per_second": median_of("per_second"),
        "cpu_us_per_call": median_of("cpu_us_per_call"),
        "failed": sum(r["failed"] for r in reports),
        "runs": [round(r["per_second"]) for r in reports],
        "runs_cpu_us_per_call": [round(r["cpu_us_per_call"], 2) for r in reports],
    }
