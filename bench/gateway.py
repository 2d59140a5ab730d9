#!/usr/bin/env python3
"""Gateway benchmark: what the text-protocol hop costs, beside what users
would compare it with, all in one run (runs alternate between the setups so a
burst of load from elsewhere on this shared machine hits them alike):

- transform lines through the gateway (`UPPER hola, mundo`, 32 connections, one
  line in flight each), the classic thread-per-connection Python server
  speaking the same protocol, and the same 32 clients calling `Transform`
  directly over gRPC (32 connections);
- database `GET` lines through the gateway beside direct `GetPerson` calls at
  the same concurrency;
- the same gateway in front of three transform replicas, given as a list
  (issue 15: balanced per stream), beside it in front of one;
- the CPU each process spent per line or call over the measured window (from
  /proc/PID/stat), so the gateway's own cost is visible: every server runs as
  its own process.

Then the memory of 10,000 idle gateway connections, and optionally
redis-benchmark against the local Redis as the practical ceiling of a
request-per-line protocol on this machine.

Usage: python3 bench/gateway.py [--runs 3] [--duration 10s] [--warmup 2s]
Needs the release binaries (`cargo build --release --workspace --bins`).
Prints a Markdown table of medians; --json FILE writes the whole result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
QUARTET = RELEASE / "quartet"
CONNECTIONS = 32
OFF = ["--weather-text-listen", "off", "--chat-text-listen", "off", "--chat-udp-listen", "off",
       "--web-listen", "off"]
TICKS = os.sysconf("SC_CLK_TCK")


def start(command, count):
    """Starts a server; returns (process, {name: address}) from its announce lines."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
    addresses = {}
    while len(addresses) < count:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"{command[0]} exited before announcing itself")
        name, _, address = line.strip().rpartition(" listening on ")
        addresses[name] = address
    return process, addresses


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def seconds(duration):
    match = re.fullmatch(r"([\d.]+)(ms|s)", duration)
    if not match:
        raise SystemExit(f"durations are like 10s or 500ms, not {duration!r}")
    return float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)


def bench(args, watched, duration, warmup):
    """Runs `quartet bench ARGS`; returns its report plus the CPU seconds each
    watched process (name -> pid) spent in the measured window."""
    command = [str(QUARTET), "--output", "json", "bench", *args, "--concurrency", str(CONNECTIONS),
               "--duration", duration, "--warmup", warmup]
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(seconds(warmup))
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    output, errors = load.communicate()
    after = {name: cpu_seconds(pid) for name, pid in watched.items()}
    if load.returncode != 0:
        raise SystemExit(f"quartet bench failed: {errors}")
    report = json.loads(output)
    calls = max(report["ok"], 1)
    report["cpu_us_per_call"] = {name: (after[name] - before[name]) * 1e6 / calls for name in watched}
    return report


def redis_ceiling():
    output = subprocess.run(["redis-benchmark", "-q", "-c", str(CONNECTIONS), "-n", "300000", "-t", "get", "-P", "1"],
                            check=True, capture_output=True, text=True).stdout
    match = re.search(r"GET: ([\d.]+) requests per second, p50=([\d.]+) msec", output)
    if not match:
        raise SystemExit(f"unexpected redis-benchmark output: {output!r}")
    return {"per_second": float(match.group(1)), "latency_ms": {"p50": float(match.group(2)), "p99": float("nan")},
            "cpu_us_per_call": {}}


def idle_connections(count=10_000):
    """The gateway's resident memory before and after `count` idle connections."""
    process, addresses = start([str(RELEASE / "quartet-gateway"), "--listen", "127.0.0.1:0",
                                "--transform-text-listen", "127.0.0.1:0", "--database-text-listen", "off", *OFF], 2)
    try:
        host, port = addresses["gateway transform"].rsplit(":", 1)
        before = rss_kib(process.pid)
        sockets = [socket.create_connection((host, int(port))) for _ in range(count)]
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


class Setup:
    """Every server of the benchmark, each its own process."""

    def __init__(self, scratch):
        self.transform, transform = start([str(RELEASE / "quartet-transform"), "--listen", "127.0.0.1:0"], 1)
        self.database, database = start([str(RELEASE / "quartet-database"), "--listen", "127.0.0.1:0",
                                         "--data-dir", str(scratch)], 1)
        self.transform_url = f"http://{transform['transform']}"
        self.database_url = f"http://{database['database']}"
        self.gateway, gateway = start([
            str(RELEASE / "quartet-gateway"), "--listen", "127.0.0.1:0",
            "--transform-addr", self.transform_url, "--database-addr", self.database_url,
            "--transform-text-listen", "127.0.0.1:0", "--database-text-listen", "127.0.0.1:0", *OFF], 3)
        self.transform_text = gateway["gateway transform"]
        self.database_text = gateway["gateway database"]
        self.classic, classic = start([sys.executable, str(ROOT / "bench" / "classic_transform_server.py")], 1)
        self.classic_text = classic["classic"]
        # Issue 15: the same gateway in front of three transform replicas,
        # given as a list (calls balanced per stream over every replica).
        self.replicas = [self.transform]
        urls = [self.transform_url]
        for _ in range(2):
            replica, announced = start([str(RELEASE / "quartet-transform"), "--listen", "127.0.0.1:0"], 1)
            self.replicas.append(replica)
            urls.append(f"http://{announced['transform']}")
        self.balanced, balanced = start([
            str(RELEASE / "quartet-gateway"), "--listen", "127.0.0.1:0",
            "--transform-addr", ",".join(urls), "--transform-text-listen", "127.0.0.1:0",
            "--database-text-listen", "off", *OFF], 2)
        self.balanced_text = balanced["gateway transform"]

    def measures(self, duration, warmup):
        """label -> a function running one measurement."""
        gateway, transform, database = self.gateway.pid, self.transform.pid, self.database.pid
        measures = {
            "transform: gateway lines": lambda: bench(
                ["text-transform", "--text-addr", self.transform_text],
                {"gateway": gateway, "transform": transform}, duration, warmup),
            "transform: gateway lines, 3 replicas": lambda: bench(
                ["text-transform", "--text-addr", self.balanced_text],
                {"gateway": self.balanced.pid,
                 **{f"transform {i + 1}": replica.pid for i, replica in enumerate(self.replicas)}},
                duration, warmup),
            "transform: classic python lines": lambda: bench(
                ["text-transform", "--text-addr", self.classic_text],
                {"classic": self.classic.pid}, duration, warmup),
            "transform: direct gRPC calls": lambda: bench(
                ["--transform-addr", self.transform_url, "transform", "--connections", str(CONNECTIONS)],
                {"transform": transform}, duration, warmup),
            "database: gateway GET lines": lambda: bench(
                ["--database-addr", self.database_url, "text-db-get", "--text-addr", self.database_text],
                {"gateway": gateway, "database": database}, duration, warmup),
            "database: direct GetPerson calls": lambda: bench(
                ["--database-addr", self.database_url, "db-get", "--connections", str(CONNECTIONS)],
                {"database": database}, duration, warmup),
        }
        if shutil.which("redis-benchmark"):
            measures["redis GET (ceiling)"] = redis_ceiling
        return measures

    def stop(self):
        for process in (self.gateway, self.balanced, *self.replicas, self.database, self.classic):
            process.terminate()
            process.wait()


def median(values):
    return statistics.median(values) if values else float("nan")


def measure(runs, duration, warmup, log=lambda message: print(message, file=sys.stderr, flush=True)):
    """Runs every setup `runs` times, alternating; returns medians and ratios."""
    with tempfile.TemporaryDirectory(prefix="quartet-bench-gateway-") as scratch:
        setup = Setup(Path(scratch))
        reports = {}
        try:
            measures = setup.measures(duration, warmup)
            for run in range(runs):
                for label, run_one in measures.items():
                    report = run_one()
                    reports.setdefault(label, []).append(report)
                    cpu = ", ".join(f"{name} {us:.1f} us" for name, us in report["cpu_us_per_call"].items())
                    log(f"gateway run {run + 1} {label:34} {report['per_second']:>9.0f}/s  "
                        f"p50 {report['latency_ms']['p50']:.3f} ms  CPU per call: {cpu}")
        finally:
            setup.stop()
    summary = {}
    for label, runs_of in reports.items():
        names = runs_of[0]["cpu_us_per_call"].keys()
        summary[label] = {
            "per_second": median([r["per_second"] for r in runs_of]),
            "p50_ms": median([r["latency_ms"]["p50"] for r in runs_of]),
            "p99_ms": median([r["latency_ms"]["p99"] for r in runs_of]),
            "errors": sum(sum(r.get("errors", {}).values()) for r in runs_of),
            "cpu_us_per_call": {name: median([r["cpu_us_per_call"][name] for r in runs_of]) for name in names},
            "runs": [round(r["per_second"]) for r in runs_of],
        }
    lines = summary["transform: gateway lines"]
    get_lines = summary["database: gateway GET lines"]
    ratios = {
        "transform_gateway_vs_classic": lines["per_second"] / summary["transform: classic python lines"]["per_second"],
        "transform_gateway_vs_direct": lines["per_second"] / summary["transform: direct gRPC calls"]["per_second"],
        "get_gateway_vs_direct": get_lines["per_second"] / summary["database: direct GetPerson calls"]["per_second"],
        "three_replicas_vs_one":
            summary["transform: gateway lines, 3 replicas"]["per_second"] / lines["per_second"],
        "gateway_cpu_per_line_vs_transform_cpu_per_call":
            lines["cpu_us_per_call"]["gateway"]
            / summary["transform: direct gRPC calls"]["cpu_us_per_call"]["transform"],
    }
    return {"scenario": "gateway", "connections": CONNECTIONS, "duration": duration, "runs": runs,
            "setups": summary, "ratios": ratios}


def markdown(result):
    rows = ["| setup | per second (median) | p50 ms | p99 ms | CPU us per line or call | runs |",
            "|---|---:|---:|---:|---|---|"]
    for label, s in result["setups"].items():
        cpu = ", ".join(f"{name} {us:.1f}" for name, us in s["cpu_us_per_call"].items()) or "-"
        rows.append(f"| {label} | {s['per_second']:,.0f} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {cpu} | "
                    f"{', '.join(f'{v:,}' for v in s['runs'])} |")
    rows.append("")
    rows += [f"- {name}: {value:.2f}x" for name, value in result["ratios"].items()]
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--warmup", default="2s")
    parser.add_argument("--json", type=Path, help="write the whole result here")
    parser.add_argument("--idle-only", action="store_true", help="only measure 10,000 idle connections")
    options = parser.parse_args()
    if not options.idle_only:
        result = measure(options.runs, options.duration, options.warmup)
        print(markdown(result))
        if options.json:
            options.json.write_text(json.dumps(result, indent=2) + "\n")
    before, after = idle_connections()
    print(f"\n10,000 idle connections: gateway RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB "
          f"({(after - before) / 10_000:.1f} KiB per connection)")


if __name__ == "__main__":
    main()
