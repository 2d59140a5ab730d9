#!/usr/bin/env python3
"""Quartet's benchmark suite, end to end: builds the release binaries, starts
the servers, loads them with `quartet bench`, and writes one JSON file and one
SVG chart per scenario, each with its baselines measured in the same run.

Every gRPC scenario runs against three servers that answer the same proto:

- quartet: the real service binary (shared runtime, all layers on);
- bare: `quartet-bare`, the same handler on a plain tonic server with no
  layers (bench/bare): what tonic itself costs, our limit;
- python: `bench/python_server.py`, a grpcio (asyncio) server, what a user of
  the classic exercises would write.

Runs alternate between the servers (run 1 of each, then run 2 of each, ...)
so that a burst of load from elsewhere on this shared machine hits all of them
alike; the report is the median of the runs.

Usage:
    python3 -m pip install -r bench/requirements.txt
    python3 bench/suite.py                       # everything (about 25 minutes, mostly building)
    python3 bench/suite.py --only transform,startup --runs 5 --duration 5s
    python3 bench/suite.py --list

Scenarios: transform, transform-stream, db-create, db-get, weather-get,
transform-h2load (unary Transform under h2load against quartet, bare tonic and
grpc-go, bench/go; server CPU per call; bench/h2load.py), startup (process start to SERVING, idle RSS), weather-watch (10,000 watches,
`cargo bench -p quartet-weather`), chat-fanout (`cargo bench -p quartet-chat`),
gateway (text lines through the gateway, bench/gateway.py), db-postgres
(quartet-database on PostgreSQL beside pgbench running the same statements,
bench/postgres.py; QUARTET_TEST_POSTGRES_URL names the server).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import charts  # noqa: E402  (the sibling module, after the path is set)
import gateway  # noqa: E402
import h2load  # noqa: E402
import postgres  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
QUARTET = RELEASE / "quartet"
PYTHON_SERVER = [sys.executable, str(ROOT / "bench" / "python_server.py")]
GO_PEER = ROOT / "target" / "bench" / "quartet-transform-go"
ANNOUNCE = re.compile(r"^(\S+) listening on (\S+)$")
START_DEADLINE = 60.0

GRPC_SCENARIOS = {
    # scenario: (quartet bench scenario, server kind, client flag)
    "transform": ("transform", "transform", "--transform-addr"),
    "transform-stream": ("transform-stream", "transform", "--transform-addr"),
    "db-create": ("db-create", "database", "--database-addr"),
    "db-get": ("db-get", "database", "--database-addr"),
    "weather-get": ("weather-get", "weather", "--weather-addr"),
}
OTHER_SCENARIOS = [
    "transform-h2load", "startup", "weather-watch", "chat-fanout", "gateway", "db-postgres",
]


class Server:
    """A server process started for a scenario; its gRPC address is read from
    its `<name> listening on ADDR` line, so every server binds port 0."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True
        )
        deadline = time.monotonic() + START_DEADLINE
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit(f"{name}: {command[0]} exited before announcing its address")
            match = ANNOUNCE.match(line.strip())
            if match:
                self.address = match.group(2)
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: no address announced within {START_DEADLINE} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def server_commands(kind: str, scratch: Path) -> dict[str, list[str]]:
    """The three servers of a scenario, by name."""
    quartet = [str(RELEASE / f"quartet-{kind}"), "--listen", "127.0.0.1:0"]
    bare = [str(RELEASE / "quartet-bare"), kind]
    python = list(PYTHON_SERVER)
    if kind == "database":
        quartet += ["--data-dir", str(scratch / "quartet")]
        bare += ["--data-dir", str(scratch / "bare")]
        python += ["--data-dir", str(scratch / "python")]
    return {"quartet": quartet, "bare": bare, "python": python}


def quartet_bench(args: list[str]) -> dict:
    output = subprocess.run(
        [str(QUARTET), "--output", "json", "bench", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> float | None:
    """Half the min-max range: the whisker drawn on a chart."""
    return (max(values) - min(values)) / 2 if len(values) > 1 else None


def grpc_scenario(name: str, options: argparse.Namespace, out: Path) -> dict:
    scenario, kind, flag = GRPC_SCENARIOS[name]
    with tempfile.TemporaryDirectory(prefix=f"quartet-bench-{name}-") as scratch:
        servers = {
            label: Server(label, command) for label, command in server_commands(kind, Path(scratch)).items()
        }
        runs: dict[str, list[dict]] = {label: [] for label in servers}
        try:
            for run in range(options.runs):
                for label, server in servers.items():
                    report = quartet_bench([
                        flag, f"http://{server.address}", scenario,
                        "--concurrency", str(options.concurrency), "--connections", "1",
                        "--duration", options.duration, "--warmup", options.warmup,
                    ])
                    runs[label].append(report)
                    log(f"{name} run {run + 1} {label:8} {report['per_second']:>9.0f}/s "
                        f"p50 {report['latency_ms']['p50']:.2f} ms p99 {report['latency_ms']['p99']:.2f} ms "
                        f"errors {report['errors']}")
        finally:
            stop_all(servers)
    summary = {
        label: {
            "per_second": median([r["per_second"] for r in reports]),
            "p50_ms": median([r["latency_ms"]["p50"] for r in reports]),
            "p99_ms": median([r["latency_ms"]["p99"] for r in reports]),
            "errors": sum(sum(r["errors"].values()) for r in reports),
            "runs": [round(r["per_second"]) for r in reports],
        }
        for label, reports in runs.items()
    }
    quartet = summary["quartet"]["per_second"]
    result = {
        "scenario": name,
        "concurrency": options.concurrency,
        "servers": summary,
        "quartet_vs_bare": quartet / summary["bare"]["per_second"],
        "quartet_vs_python": quartet / summary["python"]["per_second"],
    }
    charts.bar_chart(
        str(out / f"{name}.svg"),
        f"{name}: {options.concurrency} calls in flight, one connection (median of {options.runs})",
        "calls/s",
        [(label, [(label, s["per_second"], spread([float(v) for v in s["runs"]]))]) for label, s in summary.items()],
    )
    return result


def stop_all(servers: dict) -> None:
    """Stops every server of a scenario, however its runs ended."""
    for server in servers.values():
        server.stop()


def build_go_peer() -> None:
    """bench/go: grpc-go from Debian's sources, GOPATH mode, nothing downloaded;
    the Go stubs generated from proto/ first (protoc and protoc-gen-go 1.3 with
    its grpc plugin), into a GOPATH entry under target/."""
    GO_PEER.parent.mkdir(parents=True, exist_ok=True)
    generated = GO_PEER.parent / "go-generated" / "src"
    generated.mkdir(parents=True, exist_ok=True)
    proto = "quartet/transform/v1/transform.proto"
    subprocess.run(["protoc", "-I", "proto",
                    f"--go_out=plugins=grpc,M{proto}=quartet/transform/v1:{generated}", f"proto/{proto}"],
                   cwd=ROOT, check=True)
    gopath = f"{ROOT / 'bench' / 'go'}:{generated.parent}:/usr/share/gocode"
    env = {**os.environ, "GOPATH": gopath, "GO111MODULE": "off"}
    subprocess.run(["go", "build", "-o", str(GO_PEER), "quartet-transform"], cwd=ROOT, env=env, check=True)


def h2load_scenario(options: argparse.Namespace, out: Path) -> dict:
    """Unary Transform under h2load: quartet, bare tonic and grpc-go (plus any
    --extra-server, for trying a lever), runs alternating, medians."""
    commands = {
        "quartet": [str(RELEASE / "quartet-transform"), "--listen", "127.0.0.1:0"],
        "bare tonic": [str(RELEASE / "quartet-bare"), "transform"],
        "grpc-go": [str(GO_PEER), "--listen", "127.0.0.1:0"],
    }
    for extra in options.extra_server:
        label, _, command = extra.partition("=")
        commands[label] = shlex.split(command)
    with tempfile.TemporaryDirectory(prefix="quartet-bench-h2load-") as scratch:
        request = h2load.write_request(Path(scratch))
        servers: dict[str, Server] = {}
        runs: dict[str, list[dict]] = {label: [] for label in commands}
        try:
            for label, command in commands.items():
                servers[label] = Server(label, command)
            for label, server in servers.items():
                h2load.check_answer(label, server.address, request)
            for run in range(options.runs):
                for label, server in servers.items():
                    report = h2load.measure(server.address, server.process.pid, request,
                                            options.duration, options.warmup)
                    runs[label].append(report)
                    log(f"transform-h2load run {run + 1} {label:12} {report['per_second']:>9.0f}/s "
                        f"{report['cpu_us_per_call']:5.2f} CPU-us/call failed {report['failed']}")
        finally:
            stop_all(servers)
    summary = {label: h2load.summary(reports) for label, reports in runs.items()}
    quartet, bare, go = summary["quartet"], summary["bare tonic"], summary["grpc-go"]
    for server in summary.values():
        # The targets of issue 19, for every server (levers come as extra servers).
        server["vs_grpc_go"] = server["per_second"] / go["per_second"]
        server["cpu_vs_bare"] = server["cpu_us_per_call"] / bare["cpu_us_per_call"]
    title = (f"Transform under h2load, {h2load.CONNECTIONS} connections x {h2load.STREAMS_PER_CONNECTION} "
             f"streams (median of {options.runs})")
    charts.bar_chart(str(out / "transform-h2load.svg"), title, "calls/s",
                     [(label, [("calls/s", s["per_second"], spread([float(v) for v in s["runs"]]))])
                      for label, s in summary.items()])
    charts.bar_chart(str(out / "transform-h2load-cpu.svg"), "Server CPU per call under h2load (median)",
                     "CPU-us per call",
                     [(label, [("CPU-us", s["cpu_us_per_call"], spread(s["runs_cpu_us_per_call"]))])
                      for label, s in summary.items()])
    return {
        "scenario": "transform-h2load",
        "connections": h2load.CONNECTIONS,
        "streams_per_connection": h2load.STREAMS_PER_CONNECTION,
        "servers": summary,
        "quartet_vs_grpc_go": quartet["per_second"] / go["per_second"],
        "quartet_cpu_vs_bare": quartet["cpu_us_per_call"] / bare["cpu_us_per_call"],
        "quartet_vs_bare": quartet["per_second"] / bare["per_second"],
    }


def startup_scenario(options: argparse.Namespace, out: Path) -> dict:
    text_off = ["--transform-text-listen", "127.0.0.1:0", "--database-text-listen", "127.0.0.1:0",
                "--weather-text-listen", "127.0.0.1:0", "--chat-text-listen", "127.0.0.1:0",
                "--chat-udp-listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0"]
    with tempfile.TemporaryDirectory(prefix="quartet-bench-startup-") as scratch:
        commands = {
            "transform": [str(RELEASE / "quartet-transform"), "--listen", "127.0.0.1:0"],
            "database": [str(RELEASE / "quartet-database"), "--listen", "127.0.0.1:0", "--data-dir", scratch],
            "weather": [str(RELEASE / "quartet-weather"), "--listen", "127.0.0.1:0"],
            "chat": [str(RELEASE / "quartet-chat"), "--listen", "127.0.0.1:0"],
            "gateway": [str(RELEASE / "quartet-gateway"), "--listen", "127.0.0.1:0", *text_off],
            "bare transform (baseline)": [str(RELEASE / "quartet-bare"), "transform"],
            "python grpcio (baseline)": list(PYTHON_SERVER),
        }
        servers = {}
        for label, command in commands.items():
            try:
                report = quartet_bench(["startup", "--runs", str(max(options.runs, 3)), "--idle", "2s", "--",
                                        *command])
            except subprocess.CalledProcessError as error:
                if "baseline" not in label:
                    raise
                # A baseline that cannot start here (grpcio not installed, say) is left out.
                log(f"startup {label}: skipped, it did not start: {error.stderr.strip()[-200:]}")
                continue
            servers[label] = {
                "serving_ms": report["median_serving_ms"],
                "idle_rss_mib": report["median_idle_rss_mib"],
                "runs_ms": report["serving_ms"],
                "runs_rss_mib": report["idle_rss_mib"],
            }
            log(f"startup {label:28} SERVING after {report['median_serving_ms']:.1f} ms, "
                f"idle RSS {report['median_idle_rss_mib']:.1f} MiB")
    charts.bar_chart(str(out / "startup-serving.svg"), "Process start to SERVING (median)", "ms",
                     [(label, [("ms", s["serving_ms"], spread(s["runs_ms"]))]) for label, s in servers.items()])
    charts.bar_chart(str(out / "startup-idle-rss.svg"), "Idle resident memory (median)", "MiB",
                     [(label, [("MiB", s["idle_rss_mib"], spread(s["runs_rss_mib"]))])
                      for label, s in servers.items()])
    return {"scenario": "startup", "servers": servers}


def cargo_bench(bench: str, args: list[str], env: dict[str, str]) -> str:
    """Runs a crate's own `cargo bench` target. With --workspace every bench builds
    with the workspace's features, once, rather than each package rebuilding the
    shared crates with its own feature set."""
    command = ["cargo", "bench", "--quiet", "--workspace", "--bench", bench, "--", *args]
    log("$ " + " ".join(command))
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True,
                            env={**os.environ, **env}).stdout
    for line in output.splitlines():
        log("  " + line)
    return output


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    if not match:
        raise SystemExit(f"cannot find {pattern!r} in the benchmark's output")
    return float(match.group(1))


WATCH_ROUNDS = 3
WATCH_ROUND = re.compile(
    r"opened in ([\d.]+)s \((\d+) failed\)\n"
    r"watch: (\d+) readings/s delivered.*server CPU (\d+)% of one core\n"
    r"watch: gap between a stream's readings p50 (\d+) ms, p99 (\d+) ms, p99\.9 (\d+) ms.*\n"
    r"watch: server RSS holding \d+ streams: (\d+) KiB\n"
    r"watch: server RSS after the streams closed: (\d+) KiB")


def weather_watch_scenario(options: argparse.Namespace, out: Path) -> dict:
    # Three watch rounds on one server: RSS that keeps growing by the same
    # step each round is a leak, growth that shrinks is the allocator.
    output = cargo_bench("weather", [], {
        "WEATHER_BENCH_RUNS": str(options.runs), "WEATHER_BENCH_STREAMS": "10000",
        "WEATHER_BENCH_WATCH_ROUNDS": str(WATCH_ROUNDS), "WEATHER_BENCH_WINDOW_SECS": "10",
    })
    rounds = [
        {
            "opened_in_s": float(m.group(1)), "failed": int(m.group(2)),
            "delivered_per_second": float(m.group(3)), "server_cpu_percent": float(m.group(4)),
            "gap_p50_ms": float(m.group(5)), "gap_p99_ms": float(m.group(6)), "gap_p999_ms": float(m.group(7)),
            "rss_holding_mib": int(m.group(8)) / 1024, "rss_after_mib": int(m.group(9)) / 1024,
        }
        for m in WATCH_ROUND.finditer(output)
    ]
    if len(rounds) != WATCH_ROUNDS:
        raise SystemExit(f"expected {WATCH_ROUNDS} watch rounds in the benchmark's output, found {len(rounds)}")
    result = {
        "scenario": "weather-watch",
        "provider_readings_per_second": number(r"provider alone \(baseline\): median (\d+)", output),
        "get_reading_per_second": number(r"GetReading over gRPC: median (\d+)", output),
        "idle_rss_mib": number(r"server idle RSS: (\d+) KiB", output) / 1024,
        "streams": 10_000,
        "rounds": rounds,
        "delivered_per_second": rounds[0]["delivered_per_second"],
        "gap_p50_ms": rounds[0]["gap_p50_ms"],
        "gap_p99_ms": rounds[0]["gap_p99_ms"],
        "server_cpu_percent": rounds[0]["server_cpu_percent"],
        "rss_holding_mib": rounds[0]["rss_holding_mib"],
        "raw": output,
    }
    charts.bar_chart(str(out / "weather-watch.svg"), "10,000 watch streams at 1 s: readings delivered per second",
                     "readings/s", [("ideal", [("ideal", 10_000.0, None)])] +
                     [(f"round {i + 1}", [("delivered", r["delivered_per_second"], None)])
                      for i, r in enumerate(rounds)])
    return result


CHAT_RATES = [500, 1000, 2000]
FANOUT_LINE = re.compile(
    r"^(\w+)\s+members=\d+ rate=\d+/s deliveries/s=(\d+) delivered=(\d+)/(\d+) "
    r"p50=([\d.]+)ms p99=([\d.]+)ms max=([\d.]+)ms skipped=(\d+) broken=(\d+)", re.MULTILINE)


def fanout_setups(output: str) -> dict:
    """The setups of one `fanout` bench run (hub, grpc, nats), by name."""
    return {
        match.group(1): {
            "deliveries_per_second": float(match.group(2)),
            "delivered": int(match.group(3)), "expected": int(match.group(4)),
            "p50_ms": float(match.group(5)), "p99_ms": float(match.group(6)),
            "max_ms": float(match.group(7)), "skipped": int(match.group(8)), "broken": int(match.group(9)),
        }
        for match in FANOUT_LINE.finditer(output)
    }


def fanout_summary(runs: list[dict]) -> dict:
    """Medians over runs of one rate, per setup; losses summed, never hidden
    by a median."""
    summary = {}
    for name in runs[0]["setups"]:
        setups = [run["setups"][name] for run in runs if name in run["setups"]]
        summary[name] = {
            "deliveries_per_second": median([s["deliveries_per_second"] for s in setups]),
            "p50_ms": median([s["p50_ms"] for s in setups]),
            "p99_ms": median([s["p99_ms"] for s in setups]),
            "max_ms": median([s["max_ms"] for s in setups]),
            "p99_runs_ms": [s["p99_ms"] for s in setups],
            "delivered": sum(s["delivered"] for s in setups),
            "expected": sum(s["expected"] for s in setups),
            "skipped": sum(s["skipped"] for s in setups),
            "broken": sum(s["broken"] for s in setups),
        }
    return summary


def chat_fanout_scenario(options: argparse.Namespace, out: Path) -> dict:
    # One `cargo bench` per rate and run, the rates alternating within each
    # round so that load from elsewhere hits every rate alike. With
    # QUARTET_TEST_NATS_URL set, each run measures the nats setup too.
    nats = os.environ.get("QUARTET_TEST_NATS_URL")
    runs: dict[int, list[dict]] = {rate: [] for rate in CHAT_RATES}
    for _ in range(options.runs):
        for rate in CHAT_RATES:
            args = ["--seconds", "10", "--rate", str(rate)]
            if nats:
                args += ["--nats-url", nats]
            load = Path("/proc/loadavg").read_text().split()[0]
            output = cargo_bench("fanout", args, {})
            runs[rate].append({"load_before": load, "setups": fanout_setups(output), "raw": output})
    rates = {str(rate): {"summary": fanout_summary(rate_runs), "runs": rate_runs}
             for rate, rate_runs in runs.items()}
    charts.bar_chart(
        str(out / "chat-fanout.svg"),
        f"Chat fan-out: 200 members, p99 latency (median of {options.runs})", "ms",
        [(f"{int(rate) * 200 // 1000}k deliveries/s ({rate} lines/s)",
          [(name, s["p99_ms"], spread(s["p99_runs_ms"])) for name, s in r["summary"].items()])
         for rate, r in rates.items()])
    return {"scenario": "chat-fanout", "members": 200, "rates": rates}


def gateway_scenario(options: argparse.Namespace, out: Path) -> dict:
    # bench/gateway.py: every server its own process, the gateway in front.
    result = gateway.measure(options.runs, options.duration, options.warmup, log)
    setups = result["setups"]

    def bars(prefix: str) -> list:
        return [(label.split(": ", 1)[1], s["per_second"], spread([float(v) for v in s["runs"]]))
                for label, s in setups.items() if label.startswith(prefix)]

    groups = [("transform, UPPER", bars("transform: ")), ("database, GET", bars("database: "))]
    if "redis GET (ceiling)" in setups:
        groups.append(("redis GET (ceiling)", [("redis", setups["redis GET (ceiling)"]["per_second"], None)]))
    charts.bar_chart(str(out / "gateway.svg"),
                     f"Lines via the gateway and baselines, {gateway.CONNECTIONS} connections",
                     "per second", groups)
    cpu = [(label, [(name, us, None) for name, us in s["cpu_us_per_call"].items()])
           for label, s in setups.items() if s["cpu_us_per_call"]]
    charts.bar_chart(str(out / "gateway-cpu.svg"), "CPU per line or call, by process (median)", "us", cpu)
    return result


def without_raw(value):
    """`value` without the benchmarks' raw output, at any depth: the summary
    printed at the end."""
    if isinstance(value, dict):
        return {k: without_raw(v) for k, v in value.items() if k != "raw"}
    if isinstance(value, list):
        return [without_raw(v) for v in value]
    return value


def db_postgres_scenario(options: argparse.Namespace, out: Path) -> dict:
    # bench/postgres.py: pgbench and quartet-database alternating on one server.
    settings = postgres.parser().parse_args([
        "--runs", str(options.runs), "--duration", options.duration, "--warmup", options.warmup,
        "--replicas", "2",
    ])
    result = postgres.measure(settings, log)
    samples = result["samples"]

    def bar(name: str) -> tuple[str, float, float | None]:
        return (name, result["medians"][name], spread([float(v) for v in samples[name]]))

    groups = []
    for workload, (scenario, script, references) in postgres.WORKLOADS.items():
        names = [f"quartet {scenario}", f"pgbench {script}", *(f"pgbench {r}" for r in references)]
        if workload == "get":
            names.insert(1, f"quartet {postgres.SCENARIOS['get-h2load']}")
        groups.append((workload, [bar(name) for name in names]))
    groups.append(("create, 2 replicas", [bar("quartet db-create, 2 replicas")]))
    charts.bar_chart(str(out / "db-postgres.svg"),
                     f"PostgreSQL: quartet-database beside pgbench, {postgres.CLIENTS} in flight "
                     f"(median of {options.runs})", "per second", groups)
    return result


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def machine_note() -> Iterator[dict]:
    """The machine and its load at the start and end, for the report."""
    note = {
        "cores": os.cpu_count(),
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    yield note
    note["load_after"] = Path("/proc/loadavg").read_text().split()[:3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated scenarios (default: all)")
    parser.add_argument("--list", action="store_true", help="print the scenarios and exit")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", default="5s", help="measured time per run")
    parser.add_argument("--warmup", default="1s")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (gRPC scenarios)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="where the JSON results and SVG charts go")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries already built")
    parser.add_argument("--extra-server", action="append", default=[], metavar="LABEL=COMMAND",
                        help="transform-h2load: one more server to measure beside the others "
                             "(a variant binary, or `env VAR=value BINARY ...`); repeatable")
    options = parser.parse_args()
    every = [*GRPC_SCENARIOS, *OTHER_SCENARIOS]
    if options.list:
        print("\n".join(every))
        return
    chosen = options.only.split(",") if options.only else every
    unknown = [name for name in chosen if name not in every]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; --list shows them")
    if not options.no_build:
        subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT, check=True)
    if "transform-h2load" in chosen:
        build_go_peer()
    options.out.mkdir(parents=True, exist_ok=True)

    for name in chosen:
        with machine_note() as note:
            if name in GRPC_SCENARIOS:
                result = grpc_scenario(name, options, options.out)
            elif name == "transform-h2load":
                result = h2load_scenario(options, options.out)
            elif name == "startup":
                result = startup_scenario(options, options.out)
            elif name == "weather-watch":
                result = weather_watch_scenario(options, options.out)
            elif name == "chat-fanout":
                result = chat_fanout_scenario(options, options.out)
            elif name == "db-postgres":
                result = db_postgres_scenario(options, options.out)
            else:
                result = gateway_scenario(options, options.out)
        result["machine"] = note
        result["command"] = " ".join(sys.argv)
        (options.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(without_raw({k: v for k, v in result.items() if k != "machine"})), flush=True)


if __name__ == "__main__":
    main()
