#!/usr/bin/env python3
"""quartet-database on PostgreSQL beside pgbench running the same statements
on the same server, in one run (issue 19): what our gRPC service, its group
commit and its change log cost over raw PostgreSQL.

Each run, in turn for every workload: pgbench (64 clients, `-j 2 -M prepared`)
with the script of bench/pgbench/, then `quartet bench` at 64 in flight
against `quartet-database --database-url` (one HTTP/2 connection). Runs
alternate so that load from elsewhere on the shared machine hits both alike;
every run gets fresh databases (one for pgbench, one for quartet), created
here and dropped after. pgbench gets the same warm-up as `quartet bench`
(an unreported pgbench run of the warm-up's length first).

Workloads (bench/pgbench/*.sql say exactly what each statement does):
- get: GetPerson of 1,000 records / select.sql, the point SELECT; and
  GetPerson of one record under h2load (4 connections x 16 streams), a
  client in C as pgbench's is.
- create: CreatePerson / insert.sql, the row and its change-log row in one
  transaction; insert_bare.sql, the INSERT alone, as a reference.
- update: UpdatePerson at the expected version, each worker on its own record /
  update.sql, the versioned UPDATE and its change-log row; update_bare.sql,
  the UPDATE alone, as a reference.

With --replicas 2, the creates also run against two quartet-database
processes on one database (calls balanced over both), for every variant: do
replicas' commits serialize on something they share?

To compare builds or settings (the levers of BENCHMARKS.md), give
`--server "LABEL PATH [VAR=VALUE]..."` once per variant: each run then
measures pgbench and every variant in turn, on fresh databases each.

Usage: python3 bench/postgres.py [--runs 3] [--duration 10s] [--warmup 2s]
         [--postgres URL] [--replicas 2] [--clients 64] [--json FILE]
Needs `cargo build --release -p quartet -p quartet-database`, pgbench and psql.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).parent))
import gateway  # noqa: E402  (the sibling module: server start-up and durations)
import h2load  # noqa: E402  (the sibling module: h2load runs and gRPC framing)

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
SCRIPTS = ROOT / "bench" / "pgbench"
CLIENTS = 64
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"

# workload: (quartet bench scenario, the target pgbench script, reference scripts)
WORKLOADS = {
    "get": ("db-get", "select", []),
    "create": ("db-create", "insert", ["insert_bare"]),
    "update": ("db-update", "update", ["update_bare"]),
}
# The targets: quartet / pgbench, same run, 64 in flight.
TARGETS = {"get": 0.6, "create": 0.9, "update": 0.8}
# The record h2load reads, and the method.
H2LOAD_ID = "h2load-reader"
GET_METHOD = "/quartet.database.v1.PeopleService/GetPerson"
# What each ratio key's workload is called among the samples.
SCENARIOS = {**{workload: scenario for workload, (scenario, _, _) in WORKLOADS.items()},
             "get-h2load": "db-get (h2load)"}
QUIET = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def psql(url: str, *args: str) -> None:
    subprocess.run(["psql", url, "-qX", "-v", "ON_ERROR_STOP=1", *args], check=True, env=QUIET,
                   stdout=subprocess.DEVNULL)


class Databases:
    """Fresh databases on the server, dropped when done."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.names: list[str] = []

    def create(self, label: str) -> str:
        safe = re.sub(r"\W", "_", label)
        name = f"quartet_bench_{safe}_{os.getpid()}_{len(self.names)}"
        psql(self.url, "-c", f"CREATE DATABASE {name}")
        self.names.append(name)
        return with_database(self.url, name)

    def drop_all(self) -> None:
        for name in self.names:
            psql(self.url, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.names.clear()


class Variant:
    """A quartet-database binary and the environment it runs with."""

    def __init__(self, spec: str) -> None:
        label, path, *settings = spec.split()
        self.label = label
        self.path = path
        self.env = dict(setting.split("=", 1) for setting in settings)


DEFAULT_VARIANT = Variant(f"quartet {RELEASE / 'quartet-database'}")


def start_database(url: str, variant: Variant = DEFAULT_VARIANT) -> tuple[subprocess.Popen, str]:
    """A quartet-database on `url` (it runs its migrations); its gRPC URL."""
    saved = {name: os.environ.get(name) for name in variant.env}
    os.environ.update(variant.env)
    try:
        process, addresses = gateway.start([variant.path, "--listen", "127.0.0.1:0", "--database-url", url], 1)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return process, f"http://{addresses['database']}"


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pgbench_database(databases: Databases) -> str:
    """A database with quartet's tables (made by its own migrations, so both
    sides use the same schema) and the rows and sequence of setup.sql."""
    url = databases.create("pgbench")
    process, _ = start_database(url)
    stop(process)
    psql(url, "-v", f"clients={CLIENTS}", "-f", str(SCRIPTS / "setup.sql"))
    return url


def pgbench(url: str, script: str, duration: str, warmup: str) -> dict:
    """pgbench with `script`: a warm-up run, then the measured one."""
    report = {}
    for seconds in (gateway.seconds(warmup), gateway.seconds(duration)):
        if seconds <= 0:
            continue
        psql(url, "-v", f"clients={CLIENTS}", "-f", str(SCRIPTS / "reset.sql"))
        command = ["pgbench", "-n", "-c", str(CLIENTS), "-j", "2", "-M", "prepared",
                   "-T", str(max(1, round(seconds))), "-D", "version=1", "-f", str(SCRIPTS / f"{script}.sql"), url]
        result = subprocess.run(command, capture_output=True, text=True, env=QUIET)
        report = parse_pgbench(result.stdout + result.stderr, command)
    return report


def parse_pgbench(output: str, command: list[str]) -> dict:
    values = {}
    for line in output.splitlines():
        key, _, value = line.partition(" = ")
        if key.startswith("tps"):
            values["per_second"] = float(value.split()[0])
        elif key == "latency average":
            values["latency_avg_ms"] = float(value.split()[0])
        elif line.startswith("number of failed transactions:"):
            values["failed"] = int(line.split(":")[1].split()[0])
    if "aborted" in output or "number of transactions actually processed" not in output:
        raise SystemExit(f"pgbench failed ({' '.join(command)}):\n{output}")
    # No transaction finished at all (a stalled disk): pgbench prints no rate.
    values.setdefault("per_second", 0.0)
    values.setdefault("latency_avg_ms", float("nan"))
    return values


def quartet_bench(scenario: str, address: str, duration: str, warmup: str, clients: int | None = None) -> dict:
    command = [str(RELEASE / "quartet"), "--output", "json", "--database-addr", address, "bench", scenario,
               "--concurrency", str(clients or CLIENTS), "--connections", "1", "--duration", duration,
               "--warmup", warmup]
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    if report["errors"]:
        raise SystemExit(f"quartet bench {scenario} had errors: {report['errors']}")
    return report


def one_run(run: int, options: argparse.Namespace, samples: dict, log) -> None:
    """Every workload once, pgbench and quartet alternating, on fresh databases."""
    databases = Databases(options.postgres)
    variants = [Variant(spec) for spec in options.server] or [DEFAULT_VARIANT]
    try:
        raw = pgbench_database(databases)
        # A database per variant for the whole run; each server runs only for
        # its own measurement (PostgreSQL's connection limit is shared).
        urls = {variant.label: databases.create(variant.label) for variant in variants}
        for workload, (scenario, script, references) in WORKLOADS.items():
            if workload not in options.workloads.split(","):
                continue
            for name in [script, *references]:
                report = pgbench(raw, name, options.duration, options.warmup)
                samples.setdefault(f"pgbench {name}", []).append(report["per_second"])
                log(f"run {run} pgbench {name:12} {report['per_second']:>9.0f}/s "
                    f"avg {report['latency_avg_ms']:.2f} ms")
            for variant in variants:
                server, address = start_database(urls[variant.label], variant)
                try:
                    report = quartet_bench(scenario, address, options.duration, options.warmup)
                    read = h2load_get(address, options.duration, options.warmup) if workload == "get" else None
                finally:
                    stop(server)
                samples.setdefault(f"{variant.label} {scenario}", []).append(report["per_second"])
                log(f"run {run} {variant.label} {scenario:12} {report['per_second']:>9.0f}/s "
                    f"p50 {report['latency_ms']['p50']:.2f} ms p99 {report['latency_ms']['p99']:.2f} ms")
                if read:
                    samples.setdefault(f"{variant.label} {SCENARIOS['get-h2load']}", []).append(read["per_second"])
                    log(f"run {run} {variant.label} db-get under h2load {read['per_second']:>9.0f}/s")
        if options.replicas > 1:
            replicas_run(run, options, databases, samples, log)
    finally:
        databases.drop_all()


def h2load_get(address: str, duration: str, warmup: str) -> dict:
    """GetPerson of one record under h2load, 4 connections x 16 streams (64 in
    flight, as pgbench's 64 clients): a load generator written in C, as
    pgbench is, so that the client's own CPU, on the same two cores as both
    servers, weighs alike on both sides (`quartet bench`, in Rust with tonic,
    spends about as much CPU per call as the server). The record is created
    first, and one call is checked with curl (h2load counts HTTP 200s, not
    gRPC statuses)."""
    subprocess.run([str(RELEASE / "quartet"), "--database-addr", address, "db", "create", H2LOAD_ID,
                    "Bench Mark"], check=True, capture_output=True)
    host = address.removeprefix("http://")
    with tempfile.TemporaryDirectory(prefix="quartet-bench-get-") as scratch:
        request = Path(scratch) / "get.grpc"
        request.write_bytes(h2load.frame(bytes([0x0A, len(H2LOAD_ID)]) + H2LOAD_ID.encode()))
        h2load.check_answer("GetPerson", host, request, GET_METHOD, b"Bench Mark")
        h2load.h2load(host, request, warmup, GET_METHOD)
        report = h2load.h2load(host, request, duration, GET_METHOD)
    if report["failed"]:
        raise SystemExit(f"h2load GetPerson: {report['failed']} calls failed")
    return report


def replicas_run(run: int, options: argparse.Namespace, databases: Databases, samples: dict, log) -> None:
    """Creates through `options.replicas` processes of each variant sharing
    one database (a fresh one per variant)."""
    variants = [Variant(spec) for spec in options.server] or [DEFAULT_VARIANT]
    for variant in variants:
        url = databases.create(f"{variant.label}_replicas")
        servers = [start_database(url, variant) for _ in range(options.replicas)]
        try:
            addresses = ",".join(address for _, address in servers)
            clients = options.per_replica * options.replicas if options.per_replica else CLIENTS
            report = quartet_bench("db-create", addresses, options.duration, options.warmup, clients)
            key = f"{variant.label} db-create, {options.replicas} replicas"
            samples.setdefault(key, []).append(report["per_second"])
            log(f"run {run} {key} {report['per_second']:>9.0f}/s p50 {report['latency_ms']['p50']:.2f} ms")
        finally:
            for process, _ in servers:
                stop(process)


def measure(options: argparse.Namespace, log) -> dict:
    # Every pgbench and `quartet bench` call of this run uses it.
    global CLIENTS
    CLIENTS = options.clients
    samples: dict[str, list[float]] = {}
    for run in range(1, options.runs + 1):
        one_run(run, options, samples, log)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {}
    labels = [Variant(spec).label for spec in options.server] or ["quartet"]
    for label in labels:
        for workload, (scenario, script, _) in WORKLOADS.items():
            if workload not in options.workloads.split(","):
                continue
            ratio = medians[f"{label} {scenario}"] / medians[f"pgbench {script}"]
            key = workload if label == "quartet" else f"{label} {workload}"
            ratios[key] = {"vs_pgbench": ratio, "target": TARGETS[workload], "met": ratio >= TARGETS[workload]}
            if workload == "get":
                ratio = medians[f"{label} {SCENARIOS['get-h2load']}"] / medians[f"pgbench {script}"]
                ratios[f"{key}-h2load"] = {"vs_pgbench": ratio, "target": TARGETS[workload],
                                           "met": ratio >= TARGETS[workload]}
    return {
        "scenario": "db-postgres",
        "clients": CLIENTS,
        "runs": options.runs,
        "duration": options.duration,
        "medians": medians,
        "samples": {name: [round(value) for value in values] for name, values in samples.items()},
        "ratios": ratios,
    }


def table(result: dict) -> str:
    lines = ["| setup | per second (median) | runs | vs pgbench's target script |", "|---|---:|---|---:|"]
    ratios = {}
    for key, ratio in result["ratios"].items():
        label, _, workload = key.rpartition(" ")
        ratios[f"{label or 'quartet'} {SCENARIOS[workload]}"] = ratio["vs_pgbench"]
    for name, median in result["medians"].items():
        ratio = f"{ratios[name]:.2f}x" if name in ratios else ""
        lines.append(f"| {name} | {median:,.0f} | {result['samples'][name]} | {ratio} |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("--runs", type=int, default=3)
    arguments.add_argument("--duration", default="10s")
    arguments.add_argument("--warmup", default="2s")
    arguments.add_argument("--postgres", default=os.environ.get("QUARTET_TEST_POSTGRES_URL", DEFAULT_URL))
    arguments.add_argument("--replicas", type=int, default=1, help="also run creates through this many replicas")
    arguments.add_argument("--clients", type=int, default=CLIENTS,
                           help="pgbench clients, and calls in flight through quartet")
    arguments.add_argument("--per-replica", type=int, default=0, metavar="N",
                           help="with --replicas: N calls in flight per replica (default: --clients in all)")
    arguments.add_argument("--server", action="append", default=[], metavar="'LABEL PATH [VAR=VALUE]...'",
                           help="a quartet-database variant to measure (repeatable; default: the release build)")
    arguments.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: get,create,update")
    arguments.add_argument("--json", type=Path, help="write the whole result here")
    return arguments


def main() -> None:
    options = parser().parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    result = measure(options, lambda message: print(message, file=sys.stderr, flush=True))
    result["load_before"] = load_before
    result["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    print(table(result))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
