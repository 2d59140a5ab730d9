#!/usr/bin/env python3
"""Database benchmark: durable creates with 1 and 64 clients, and gets, on the
embedded store and on PostgreSQL, beside the transform service as the baseline
(the cost of a gRPC round trip with no store behind it), all in one run.

Usage: python3 bench/database.py [--runs 3] [--duration 10s] [--postgres URL]
Needs `cargo build --release -p quartet`. Prints a Markdown table of medians.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUARTET = os.path.join(ROOT, "target", "release", "quartet")


def serve(args, env=None):
    """Starts `quartet serve ...` and returns (process, {service: url})."""
    process = subprocess.Popen(
        [QUARTET, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "RUST_LOG": "warn", **(env or {})},
    )
    urls = {}
    wanted = sum(1 for arg in args if arg.endswith("-listen"))
    while len(urls) < wanted:
        line = process.stdout.readline()
        if not line:
            raise SystemExit("server exited before announcing itself")
        service, _, address = line.strip().partition(" listening on ")
        urls[service] = f"http://{address}"
    return process, urls


def bench(scenario, urls, concurrency, duration, connections=1):
    command = [
        QUARTET, "--output", "json",
        "--transform-addr", urls.get("transform", "http://127.0.0.1:1"),
        "--database-addr", urls.get("database", "http://127.0.0.1:1"),
        "bench", scenario,
        "--concurrency", str(concurrency),
        "--connections", str(connections),
        "--duration", duration, "--warmup", "2s",
    ]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def postgres_schema(url):
    schema = f"quartet_bench_{os.getpid()}_{int(time.time())}"
    subprocess.run(["psql", url, "-qc", f"CREATE SCHEMA {schema}"], check=True, env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"})
    separator = "&" if "?" in url else "?"
    return schema, f"{url}{separator}options=-c%20search_path%3D{schema}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--postgres", default=os.environ.get("QUARTET_TEST_POSTGRES_URL"))
    options = parser.parse_args()

    cases = [
        ("transform (baseline)", "transform", 64),
        ("create, 1 client", "db-create", 1),
        ("create, 64 clients", "db-create", 64),
        ("get, 64 clients", "db-get", 64),
    ]
    stores = [("embedded (redb)", None)]
    if options.postgres:
        stores.append(("PostgreSQL", options.postgres))

    results = {}
    for run in range(options.runs):
        for store, url in stores:
            data = tempfile.mkdtemp(prefix="quartet-bench-")
            schema = None
            args = ["all", "--transform-listen", "127.0.0.1:0", "--database-listen", "127.0.0.1:0", "--data-dir", data]
            env = {}
            if url:
                schema, schema_url = postgres_schema(url)
                env["QUARTET_DATABASE_URL"] = schema_url
            process, urls = serve(args, env)
            try:
                for label, scenario, concurrency in cases:
                    report = bench(scenario, urls, concurrency, options.duration)
                    results.setdefault((store, label), []).append(report)
                    print(f"run {run + 1} {store:16} {label:22} {report['per_second']:10.0f}/s "
                          f"p50 {report['latency_ms']['p50']:.3f} ms p99 {report['latency_ms']['p99']:.3f} ms "
                          f"errors {report['errors']}", file=sys.stderr)
            finally:
                process.terminate()
                process.wait()
                if schema:
                    subprocess.run(["psql", url, "-qc", f"DROP SCHEMA {schema} CASCADE"], check=True, env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"})

    print("| store | scenario | calls/s (median) | p50 ms | p99 ms | runs |")
    print("|---|---|---:|---:|---:|---:|")
    for (store, label), reports in results.items():
        rate = statistics.median(r["per_second"] for r in reports)
        p50 = statistics.median(r["latency_ms"]["p50"] for r in reports)
        p99 = statistics.median(r["latency_ms"]["p99"] for r in reports)
        print(f"| {store} | {label} | {rate:,.0f} | {p50:.3f} | {p99:.3f} | {len(reports)} |")
    for store, _ in stores:
        one = statistics.median(r["per_second"] for r in results[(store, "create, 1 client")])
        many = statistics.median(r["per_second"] for r in results[(store, "create, 64 clients")])
        print(f"\n{store}: 64-client creates are {many / one:.1f}x the 1-client rate")


if __name__ == "__main__":
    main()
