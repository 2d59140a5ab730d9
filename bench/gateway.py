#!/usr/bin/env python3
"""Gateway benchmark: transform lines through the gateway (each line a gRPC call
upstream) beside a classic thread-per-connection Python server speaking the same
protocol, and redis-benchmark against the local Redis as the practical ceiling of
a request-per-line protocol on this machine, all in one run; then the memory of
10,000 idle gateway connections.

Usage: python3 bench/gateway.py [--runs 3] [--duration 10s]
Needs `cargo build --release -p quartet`, python3, redis-benchmark and a Redis on
127.0.0.1:6379. Prints a Markdown table of medians.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUARTET = os.path.join(ROOT, "target", "release", "quartet")
CONNECTIONS = 32
OFF = ["--database-text-listen", "off", "--weather-text-listen", "off",
       "--chat-text-listen", "off", "--chat-udp-listen", "off"]


def start(command, count):
    """Starts a server and returns (process, [addresses from its announce lines])."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "RUST_LOG": "warn"})
    addresses = []
    while len(addresses) < count:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"{command[0]} exited before announcing itself")
        addresses.append(line.strip().rsplit(" ", 1)[1])
    return process, addresses


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bench_text(address, duration):
    report = subprocess.run(
        [QUARTET, "--output", "json", "bench", "text-transform", "--text-addr", address,
         "--concurrency", str(CONNECTIONS), "--duration", duration, "--warmup", "2s"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(report)


def redis_ceiling():
    output = subprocess.run(["redis-benchmark", "-q", "-c", "50", "-n", "300000", "-t", "get", "-P", "1"],
                            check=True, capture_output=True, text=True).stdout
    match = re.search(r"GET: ([\d.]+) requests per second, p50=([\d.]+) msec", output)
    if not match:
        raise SystemExit(f"unexpected redis-benchmark output: {output!r}")
    return {"per_second": float(match.group(1)), "latency_ms": {"p50": float(match.group(2)), "p99": float("nan")}}


def idle_connections(count=10_000):
    process, addresses = start([QUARTET, "serve", "gateway", "--transform-text-listen", "127.0.0.1:0", *OFF], 1)
    try:
        host, port = addresses[0].rsplit(":", 1)
        before = rss_kib(process.pid)
        sockets = []
        for _ in range(count):
            sockets.append(socket.create_connection((host, int(port))))
        # Every connection answered: the gateway holds them all, not just the kernel.
        probe = sockets[-1]
        probe.sendall(b"HELP\n")
        probe.settimeout(10)
        probe.recv(100)
        after = rss_kib(process.pid)
        for sock in sockets:
            sock.close()
        return before, after
    finally:
        process.terminate()
        process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--idle-only", action="store_true", help="only measure 10,000 idle connections")
    options = parser.parse_args()
    if options.idle_only:
        before, after = idle_connections()
        print(f"10,000 idle connections: gateway RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB "
              f"({(after - before) / 10_000:.1f} KiB per connection)")
        return

    gateway, addresses = start([QUARTET, "serve", "transform", "gateway", "--transform-listen", "127.0.0.1:0",
                                "--transform-text-listen", "127.0.0.1:0", *OFF], 2)
    text_address = next(a for a in addresses if a != addresses[0]) if len(addresses) > 1 else addresses[0]
    classic, classic_addresses = start([sys.executable, os.path.join(ROOT, "bench", "classic_transform_server.py")], 1)
    results = {"gateway": [], "classic": [], "redis": []}
    try:
        for run in range(options.runs):
            for name, measure in [("gateway", lambda: bench_text(text_address, options.duration)),
                                  ("classic", lambda: bench_text(classic_addresses[0], options.duration)),
                                  ("redis", redis_ceiling)]:
                report = measure()
                results[name].append(report)
                print(f"run {run + 1} {name:8} {report['per_second']:10.0f}/s "
                      f"p50 {report['latency_ms']['p50']:.3f} ms p99 {report['latency_ms']['p99']:.3f} ms",
                      file=sys.stderr)
    finally:
        for process in (gateway, classic):
            process.terminate()
            process.wait()

    print(f"| server | lines/s (median) | p50 ms | p99 ms | runs |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for name, reports in results.items():
        medians[name] = statistics.median(r["per_second"] for r in reports)
        p50 = statistics.median(r["latency_ms"]["p50"] for r in reports)
        p99 = statistics.median(r["latency_ms"]["p99"] for r in reports)
        print(f"| {name} | {medians[name]:,.0f} | {p50:.3f} | {p99:.3f} | {len(reports)} |")
    print(f"\ngateway / classic: {medians['gateway'] / medians['classic']:.2f}x; "
          f"gateway / redis ceiling: {medians['gateway'] / medians['redis']:.0%}")
    before, after = idle_connections()
    print(f"\n10,000 idle connections: gateway RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB "
          f"({(after - before) / 10_000:.1f} KiB per connection)")


if __name__ == "__main__":
    main()
