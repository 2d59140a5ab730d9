#!/usr/bin/env python3
"""Writes services/link/startup.order: the functions each server runs from
process start to idle, which the release link places first in `.text`.

Why: the kernel maps a file-backed executable 64 KiB at a time around each page
a process touches ("fault-around"), so the idle RSS of a server is about 64 KiB
per distinct 64 KiB window of code that start-up touched. Left where the
compiler puts them, the ~1.7 MB of functions a server runs to become SERVING
are spread over most of its 5 to 7 MB of code (the database touched 75 of 106
windows); placed together they fill a few dozen (BENCHMARKS.md, "Start-up and
idle memory").

How: each server runs under valgrind's callgrind until it announces its
address, answers one `grpc.health.v1.Health/Check` (what `quartet bench
startup` asks), idles 2 s and is stopped with SIGTERM; the names of the
functions of its own binary that ran are the union over the servers, in the
order first seen. Names are the linker's (mangled) symbols, and their hashes depend on the
code, the toolchain and the features cargo unified for the build: the servers
built with `--workspace`, with `-p` for the five of them, or one per container
(deploy/docker) get different names for the same function. So the file keeps
the names it had and adds the new ones (`--replace` starts over): a name a
binary lacks is skipped by the linker, and a function whose name went stale
is left where the compiler put it. Run it again, on release binaries built
the way you ship them, when the idle RSS of `python3 bench/suite.py --only
startup` creeps up, then build again (the build scripts relink on a change).

Usage:
    cargo build --release --workspace --bins
    python3 bench/startup_order.py [--replace]     # needs valgrind
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
ORDER = ROOT / "services" / "link" / "startup.order"
ANNOUNCE = re.compile(r"^\S+ listening on (\S+)$")
# Under valgrind a server starts about 50 times slower than natively.
START_DEADLINE = 120.0
IDLE = 2.0
# callgrind's records of the current object and function: `ob=(3) /path` the
# first time an id appears, `ob=(3)` after.
RECORD = re.compile(r"^(ob|fn|cob|cfn)=\((\d+)\)(?: (.*))?$")
# A mangled Rust symbol, legacy (`_ZN...E`) or v0 (`_R...`), or a C one.
SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")


def server_commands(scratch: Path) -> dict[str, list[str]]:
    """The servers whose start-up is profiled, configured as the startup
    scenario of bench/suite.py runs them."""
    text_off = ["--transform-text-listen", "127.0.0.1:0", "--database-text-listen", "127.0.0.1:0",
                "--weather-text-listen", "127.0.0.1:0", "--chat-text-listen", "127.0.0.1:0",
                "--chat-udp-listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0"]
    return {
        "quartet-transform": ["--listen", "127.0.0.1:0"],
        "quartet-database": ["--listen", "127.0.0.1:0", "--data-dir", str(scratch / "database")],
        "quartet-weather": ["--listen", "127.0.0.1:0"],
        "quartet-chat": ["--listen", "127.0.0.1:0"],
        "quartet-gateway": ["--listen", "127.0.0.1:0", *text_off],
    }


def profile(binary: str, args: list[str], out: Path) -> Path:
    """Runs `binary` under callgrind to idle and back; returns its profile."""
    profile_path = out / f"{binary}.callgrind"
    command = ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={profile_path}",
               str(RELEASE / binary), *args]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, text=True)
    try:
        address = announced_address(server)
        health = subprocess.run([str(RELEASE / "quartet"), "health", "--service", "", "--addr",
                                 f"http://{address}"], capture_output=True, text=True)
        if health.returncode != 0:
            raise SystemExit(f"{binary}: health check failed: {health.stdout}{health.stderr}")
        time.sleep(IDLE)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return profile_path


def announced_address(server: subprocess.Popen) -> str:
    """The gRPC address of the first `NAME listening on ADDR` line (the
    gateway's text listeners have two-word names and come first)."""
    deadline = time.monotonic() + START_DEADLINE
    assert server.stdout is not None  # piped above
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        match = ANNOUNCE.match(line.strip())
        if match:
            return match.group(1)
    raise SystemExit(f"{server.args[2]}: no gRPC address announced")


def functions_run(profile_path: Path, binary: str) -> list[str]:
    """The functions of `binary` that have costs in a callgrind profile."""
    objects: dict[str, str] = {}
    functions: dict[str, str] = {}
    current_object = ""
    names: list[str] = []
    for line in profile_path.read_text(errors="replace").splitlines():
        match = RECORD.match(line)
        if not match:
            continue
        kind, ident, name = match.groups()
        table = objects if kind.endswith("ob") else functions
        if name is not None:
            table[ident] = name
        if kind == "ob":
            current_object = objects[ident]
        elif kind == "fn" and current_object.endswith("/" + binary):
            # Addresses without a symbol (`0x...`) and valgrind's own
            # names (`(below main)`) cannot be ordered.
            # callgrind names a recursive call's frames `name'2`.
            name = functions[ident].split("'")[0]
            if SYMBOL.fullmatch(name):
                names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replace", action="store_true",
                        help="drop the names the file has instead of adding to them")
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    order: dict[str, None] = {}
    if ORDER.exists() and not options.replace:
        order.update(dict.fromkeys(ORDER.read_text().split()))
    known = len(order)
    with tempfile.TemporaryDirectory(prefix="quartet-startup-order-") as scratch:
        for binary, args in server_commands(Path(scratch)).items():
            names = functions_run(profile(binary, args, Path(scratch)), binary)
            print(f"{binary}: {len(set(names))} functions run", file=sys.stderr)
            order.update(dict.fromkeys(names))
    ORDER.write_text("".join(f"{name}\n" for name in order))
    print(f"{ORDER.relative_to(ROOT)}: {len(order)} functions, {len(order) - known} new", file=sys.stderr)


if __name__ == "__main__":
    main()
