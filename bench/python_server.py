#!/usr/bin/env python3
"""The baseline the Rust services are benchmarked against: what a Python user of
the classic exercises would write with grpcio, serving the repository's own
.proto files.

It serves, on one port:
  * quartet.transform.v1.TransformService: Transform and TransformStream;
  * quartet.database.v1.PeopleService: CreatePerson, GetPerson, ImportPeople,
    on SQLite in WAL mode with synchronous=FULL, so an acknowledged write is on
    disk as it is in the Rust store;
  * quartet.weather.v1.WeatherService: ListStations and GetReading, from a small
    simulated climate model over the same stations as the Rust service;
  * grpc.health.v1.Health, SERVING for "" and for each service above.
Every other method answers UNIMPLEMENTED, grpcio's default.

The protos are compiled with grpc_tools.protoc into a temporary directory at
start-up, so no generated code is kept in the repository and the baseline can
never drift from the protos the Rust side is built from.

Usage: python3 bench/python_server.py [--listen 127.0.0.1:0] [--mode aio|threads]
                                      [--data-dir DIR]
After binding it prints `python-grpcio listening on HOST:PORT` (the bound
port), like the Rust servers; SIGTERM or SIGINT stops it.

--mode aio (grpc.aio, one event loop) is the default because it was measured
faster where the benchmarks load a server: unary Transform with 64 calls in
flight on one connection, about 4,700 calls/s against 3,800 for --mode threads
(grpc.server on a thread pool) on the 2-CPU benchmark machine. With a single
call in flight threads is a few per cent faster.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import random
import re
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import grpc
import grpc_tools
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"
# Seconds in-flight calls get to finish on shutdown before they are cancelled.
SHUTDOWN_GRACE = 2.0
# Threads of --mode threads: one per call in flight at the benchmarks' usual
# concurrency. A TransformStream holds its thread for as long as it is open, so
# beyond this many open streams the next calls wait for a thread.
THREAD_WORKERS = 64
# The Rust clients ping a connection every 30 s, idle or not, to notice a server
# that vanished. grpc-core's default allows one ping per 5 minutes while no data
# flows and answers the third with GOAWAY "too many pings", which would cut an
# idle client (a quiet WatchPeople, a pooled connection) off; so allow them.
SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    # grpcio binds with SO_REUSEPORT by default, so a second server on a taken
    # port would silently share it with the first and split the benchmark.
    ("grpc.so_reuseport", 0),
]
# ImportPeople's limit per batch, as the proto documents.
MAX_IMPORT_BATCH = 1000


# --- Generated code ------------------------------------------------------------


@dataclass(frozen=True)
class Protos:
    """The generated modules: messages (`*_pb2`) and service stubs (`*_grpc`)."""

    transform: ModuleType
    transform_grpc: ModuleType
    database: ModuleType
    database_grpc: ModuleType
    weather: ModuleType
    weather_grpc: ModuleType


def compile_protos(out: Path) -> Protos:
    """Runs protoc (with grpcio's Python plugin) over the repository's protos
    into `out` and imports the result."""
    names = ("transform", "database", "weather")
    sources = [f"quartet/{name}/v1/{name}.proto" for name in names]
    # The well-known types (Timestamp, FieldMask, ...) ship inside grpc_tools.
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *sources,
        ]
    )
    if status != 0:
        raise SystemExit(f"protoc failed on {PROTO_ROOT} (exit status {status})")
    # The generated stubs import their messages by package path.
    sys.path.insert(0, str(out))
    modules: dict[str, ModuleType] = {}
    for name in names:
        modules[name] = importlib.import_module(f"quartet.{name}.v1.{name}_pb2")
        modules[f"{name}_grpc"] = importlib.import_module(f"quartet.{name}.v1.{name}_pb2_grpc")
    return Protos(**modules)


def service_name(messages: ModuleType, service: str) -> str:
    """The full gRPC name of a service, as health checks ask for it."""
    return messages.DESCRIPTOR.services_by_name[service].full_name


def with_generated_base(implementation: type, generated: type) -> type:
    """`implementation` with the generated servicer as a base, so each method it
    does not define answers UNIMPLEMENTED exactly as grpcio's generated code does
    (the generated classes only exist once protoc has run)."""
    return type(implementation.__name__, (implementation, generated), {})


class RpcFailure(Exception):
    """A status to end a call with. The service logic below is shared by the
    threaded and the asyncio servers, which abort a call differently."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


# --- Transform -----------------------------------------------------------------


class TransformLogic:
    """The operations, the plain Python way: `str.upper()` and `str.lower()` are
    full Unicode case mappings; reversal is by code point, not by grapheme."""

    def __init__(self, protos: Protos) -> None:
        self._pb = protos.transform
        self._operations: dict[int, Callable[[str], str]] = {
            self._pb.OPERATION_UPPER: str.upper,
            self._pb.OPERATION_LOWER: str.lower,
            self._pb.OPERATION_REVERSE: lambda text: text[::-1],
        }

    def answer(self, request: Any) -> Any:
        operation = self._operations.get(request.operation)
        if operation is None:
            known = self._pb.Operation.values()
            name = self._pb.Operation.Name(request.operation) if request.operation in known else request.operation
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"operation: {name} is not OPERATION_UPPER, OPERATION_LOWER or OPERATION_REVERSE",
            )
        return self._pb.TransformResponse(text=operation(request.text))


class ThreadedTransform(TransformLogic):
    def Transform(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return self.answer(request)
        except RpcFailure as failure:
            context.abort(failure.code, failure.details)

    def TransformStream(self, requests: Iterable[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        # grpcio holds the response headers back until the first answer, and a
        # tonic client waits for them before it hands its stream to the caller:
        # a caller that sends a request and then waits for its answer would wait
        # forever. Sending them first is what tonic's own servers do.
        context.send_initial_metadata(())
        # A generator: each answer is sent as soon as it is yielded, so the
        # answers before an invalid request reach the client before its status.
        for request in requests:
            try:
                yield self.answer(request)
            except RpcFailure as failure:
                context.abort(failure.code, failure.details)


class AsyncTransform(TransformLogic):
    async def Transform(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return self.answer(request)
        except RpcFailure as failure:
            await context.abort(failure.code, failure.details)

    async def TransformStream(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        await context.send_initial_metadata(())  # why: see ThreadedTransform
        async for request in requests:
            try:
                yield self.answer(request)
            except RpcFailure as failure:
                await context.abort(failure.code, failure.details)


# --- People --------------------------------------------------------------------

ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class Row(NamedTuple):
    """A person as stored; timestamps in microseconds since the epoch."""

    id: str
    name: str
    email: str
    age: int | None
    version: int
    create_us: int
    update_us: int


class PeopleStore:
    """People in SQLite, durable on acknowledgement (WAL, synchronous=FULL).

    One connection behind a lock: SQLite runs one writer at a time whatever the
    number of connections, and a point read takes microseconds next to the
    gRPC work around it, while writers on separate connections would wait for
    each other in SQLite's sleeping busy handler, which is far slower."""

    def __init__(self, path: Path) -> None:
        # Autocommit (isolation_level=None): a lone INSERT is its own
        # transaction, committed and synced before execute() returns.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS people (
                   id TEXT PRIMARY KEY,
                   name TEXT NOT NULL,
                   email TEXT NOT NULL,
                   age INTEGER,
                   version INTEGER NOT NULL,
                   create_us INTEGER NOT NULL,
                   update_us INTEGER NOT NULL
               ) WITHOUT ROWID"""
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, id: str, name: str, email: str, age: int | None) -> Row:
        now = time.time_ns() // 1000
        row = Row(id, name, email, age, 1, now, now)
        try:
            with self._lock:
                self._db.execute("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        except sqlite3.IntegrityError:
            raise RpcFailure(grpc.StatusCode.ALREADY_EXISTS, f"person {id!r} already exists") from None
        return row

    def get(self, id: str) -> Row | None:
        with self._lock:
            found = self._db.execute("SELECT * FROM people WHERE id = ?", (id,)).fetchone()
        return None if found is None else Row(*found)

    def upsert(self, people: list[tuple[str, str, str, int | None]]) -> tuple[int, int]:
        """Creates or updates every person in one transaction; returns
        (created, updated)."""
        now = time.time_ns() // 1000
        created = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for id, name, email, age in people:
                    (version,) = self._db.execute(
                        """INSERT INTO people VALUES (?, ?, ?, ?, 1, ?, ?)
                           ON CONFLICT (id) DO UPDATE SET
                               name = excluded.name, email = excluded.email,
                               age = excluded.age, version = version + 1,
                               update_us = excluded.update_us
                           RETURNING version""",
                        (id, name, email, age, now, now),
                    ).fetchone()
                    created += version == 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return created, len(people) - created


def person_problem(person: Any) -> str | None:
    """Why a person cannot be stored, naming the field; None when it can. The
    same rules as the Rust service, so both do the same work per write."""
    if not ID_PATTERN.fullmatch(person.id):
        return "person.id: must be 1 to 64 ASCII letters, digits, '-', '_', '.' or ':'"
    if not 1 <= len(person.name) <= 200 or person.name.isspace():
        return "person.name: must be 1 to 200 characters, not blank"
    if CONTROL.search(person.name):
        return "person.name: must not contain control characters"
    if person.email and (
        len(person.email) > 254 or CONTROL.search(person.email) or not EMAIL_PATTERN.fullmatch(person.email)
    ):
        return "person.email: not an email address"
    if person.HasField("age") and person.age > 150:
        return "person.age: must be 0 to 150"
    return None


def person_fields(person: Any) -> tuple[str, str, str, int | None]:
    return person.id, person.name, person.email, person.age if person.HasField("age") else None


class ImportTally:
    """What ImportPeople answers, accumulated batch by batch."""

    MAX_FAILURES = 100

    def __init__(self) -> None:
        self.created = self.updated = self.failed = 0
        self.failures: list[tuple[int, str, str]] = []
        self._seen = 0

    def valid_people(self, batch: Any) -> list[tuple[str, str, str, int | None]]:
        """The batch's storable people; counts and records the others."""
        if len(batch.people) > MAX_IMPORT_BATCH:
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"people: {len(batch.people)} in one batch, at most {MAX_IMPORT_BATCH}",
            )
        valid = []
        for person in batch.people:
            problem = person_problem(person)
            if problem is None:
                valid.append(person_fields(person))
            else:
                self.failed += 1
                if len(self.failures) < self.MAX_FAILURES:
                    self.failures.append((self._seen, person.id, problem))
            self._seen += 1
        return valid

    def add(self, counts: tuple[int, int]) -> None:
        self.created += counts[0]
        self.updated += counts[1]


class PeopleLogic:
    """Conversions between messages and rows, shared by both servers."""

    def __init__(self, protos: Protos, store: PeopleStore) -> None:
        self._pb = protos.database
        self.store = store

    def to_message(self, row: Row) -> Any:
        person = self._pb.Person(id=row.id, name=row.name, email=row.email, version=row.version)
        if row.age is not None:
            person.age = row.age
        person.create_time.FromMicroseconds(row.create_us)
        person.update_time.FromMicroseconds(row.update_us)
        return person

    def fields_to_create(self, request: Any) -> tuple[str, str, str, int | None]:
        problem = person_problem(request.person)
        if problem is not None:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return person_fields(request.person)

    def found(self, id: str, row: Row | None) -> Any:
        if row is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"no person {id!r}")
        return self.to_message(row)

    def import_response(self, tally: ImportTally) -> Any:
        return self._pb.ImportPeopleResponse(
            created=tally.created,
            updated=tally.updated,
            failed=tally.failed,
            failures=[self._pb.ImportFailure(index=i, id=id, reason=why) for i, id, why in tally.failures],
        )


class ThreadedPeople(PeopleLogic):
    def CreatePerson(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return self.to_message(self.store.create(*self.fields_to_create(request)))
        except RpcFailure as failure:
            context.abort(failure.code, failure.details)

    def GetPerson(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return self.found(request.id, self.store.get(request.id))
        except RpcFailure as failure:
            context.abort(failure.code, failure.details)

    def ImportPeople(self, batches: Iterable[Any], context: grpc.ServicerContext) -> Any:
        tally = ImportTally()
        try:
            for batch in batches:
                tally.add(self.store.upsert(tally.valid_people(batch)))
        except RpcFailure as failure:
            context.abort(failure.code, failure.details)
        return self.import_response(tally)


class AsyncPeople(PeopleLogic):
    """SQLite is called straight from the event loop. Handing each call to a
    thread (asyncio.to_thread) would let the loop serve other calls during a
    commit's fsync, but SQLite commits one at a time anyway, and on the
    benchmark machine the thread hop cost more than it saved: 64 in flight,
    about 2,450 creates/s direct against 2,000 through threads, and 4,650 gets/s
    against 3,150. On a disk with slow fsyncs the trade would turn."""

    async def CreatePerson(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return self.to_message(self.store.create(*self.fields_to_create(request)))
        except RpcFailure as failure:
            await context.abort(failure.code, failure.details)

    async def GetPerson(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return self.found(request.id, self.store.get(request.id))
        except RpcFailure as failure:
            await context.abort(failure.code, failure.details)

    async def ImportPeople(self, batches: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        tally = ImportTally()
        try:
            async for batch in batches:
                tally.add(self.store.upsert(tally.valid_people(batch)))
        except RpcFailure as failure:
            await context.abort(failure.code, failure.details)
        return self.import_response(tally)


# --- Weather -------------------------------------------------------------------


class StationClimate(NamedTuple):
    """A station as ListStations shows it, and the climate normals the model
    draws its weather from (the same places and figures as the Rust catalogue)."""

    id: str
    name: str
    country: str
    time_zone: str
    latitude: float
    longitude: float
    elevation_m: float
    mean_c: float
    seasonal_c: float
    diurnal_c: float
    annual_rain_mm: float
    wet_days: float


# Ordered by id, as ListStations answers.
STATIONS = [
    StationClimate(*row)
    for row in [
        ("anchorage", "Anchorage International Airport", "US", "America/Anchorage", 61.1744, -149.9964, 40, 3.0, 11.5, 7.0, 420, 115),
        ("buenosaires", "Buenos Aires Observatorio Central", "AR", "America/Argentina/Buenos_Aires", -34.5875, -58.4839, 25, 18.0, 6.9, 9.0, 1240, 100),
        ("cairo", "Cairo International Airport", "EG", "Africa/Cairo", 30.1219, 31.4056, 74, 22.5, 7.3, 12.0, 25, 4),
        ("capetown", "Cape Town International Airport", "ZA", "Africa/Johannesburg", -33.9715, 18.6021, 46, 17.0, 4.5, 10.0, 510, 62),
        ("denver", "Denver International Airport", "US", "America/Denver", 39.8466, -104.6562, 1656, 10.5, 12.0, 15.0, 380, 75),
        ("lapaz", "La Paz El Alto", "BO", "America/La_Paz", -16.5100, -68.1989, 4061, 7.5, 2.2, 14.0, 610, 110),
        ("lhasa", "Lhasa", "CN", "Asia/Shanghai", 29.6500, 91.1333, 3650, 8.0, 8.5, 15.0, 430, 75),
        ("london", "London Heathrow", "GB", "Europe/London", 51.4787, -0.4614, 25, 11.3, 6.8, 8.0, 600, 110),
        ("madrid", "Madrid Retiro", "ES", "Europe/Madrid", 40.4117, -3.6781, 667, 15.0, 9.7, 11.0, 420, 55),
        ("mcmurdo", "McMurdo Station", "AQ", "Antarctica/McMurdo", -77.8500, 166.6667, 24, -17.0, 12.5, 4.0, 200, 50),
        ("mexicocity", "Mexico City Tacubaya", "MX", "America/Mexico_City", 19.4036, -99.1964, 2309, 16.5, 2.8, 13.0, 820, 130),
        ("mumbai", "Mumbai Santacruz", "IN", "Asia/Kolkata", 19.0886, 72.8681, 14, 27.5, 3.0, 7.0, 2200, 75),
        ("nairobi", "Nairobi Dagoretti Corner", "KE", "Africa/Nairobi", -1.3019, 36.7600, 1798, 18.0, 1.6, 11.0, 900, 90),
        ("newyork", "New York Central Park", "US", "America/New_York", 40.7789, -73.9692, 42, 13.2, 12.2, 8.5, 1200, 120),
        ("reykjavik", "Reykjavík", "IS", "Atlantic/Reykjavik", 64.1275, -21.9028, 52, 4.6, 6.0, 5.0, 850, 150),
        ("singapore", "Singapore Changi", "SG", "Asia/Singapore", 1.3678, 103.9826, 15, 27.5, 1.0, 7.0, 2500, 165),
        ("sydney", "Sydney Observatory Hill", "AU", "Australia/Sydney", -33.8607, 151.2050, 39, 18.4, 5.0, 7.5, 1200, 140),
        ("tokyo", "Tokyo", "JP", "Asia/Tokyo", 35.6917, 139.7500, 25, 15.8, 10.7, 7.5, 1530, 105),
    ]
]
STATION_BY_ID = {station.id: station for station in STATIONS}
EARLIEST = int(datetime(1900, 1, 1, tzinfo=timezone.utc).timestamp())
LATEST = int(datetime(2201, 1, 1, tzinfo=timezone.utc).timestamp())  # exclusive
DAY = 86_400
YEAR_DAYS = 365.2425


class Weather(NamedTuple):
    min_c: float
    max_c: float
    pressure_hpa: float
    rain_mm: float


def simulate(station: StationClimate, seconds: int) -> Weather:
    """Plausible weather for the 24 hours ending at `seconds`: a seasonal
    cosine (warmest in late July north of the equator, mid-January south of
    it) plus day-to-day noise drawn from a generator seeded by station and day,
    so the same question always gets the same answer."""
    day = seconds // DAY
    day_of_year = day % YEAR_DAYS
    warmest = 205 if station.latitude >= 0 else 20
    season = math.cos(2 * math.pi * (day_of_year - warmest) / YEAR_DAYS)
    noise = random.Random(f"{station.id}/{day}")
    mean = station.mean_c + station.seasonal_c * season + noise.gauss(0, 2.5)
    spread = station.diurnal_c * noise.uniform(0.7, 1.3)
    # Barometric formula for the station's height, plus passing systems.
    pressure = 1013.25 * (1 - 2.25577e-5 * station.elevation_m) ** 5.25588 + noise.gauss(0, 7)
    wet = noise.random() < station.wet_days / YEAR_DAYS
    rain = noise.expovariate(station.wet_days / station.annual_rain_mm) if wet else 0.0
    return Weather(round(mean - spread / 2, 1), round(mean + spread / 2, 1), round(pressure, 1), round(rain, 1))


class WeatherLogic:
    """ListStations and GetReading over the simulated model; sync code that
    never blocks, so both servers call it directly."""

    def __init__(self, protos: Protos) -> None:
        pb = self._pb = protos.weather
        self._stations = pb.ListStationsResponse(
            stations=[
                pb.Station(
                    id=s.id, name=s.name, country=s.country, latitude=s.latitude,
                    longitude=s.longitude, elevation_m=s.elevation_m, time_zone=s.time_zone,
                )
                for s in STATIONS
            ]
        )
        self._all_metrics = {
            pb.METRIC_MIN_TEMPERATURE, pb.METRIC_MAX_TEMPERATURE, pb.METRIC_PRESSURE, pb.METRIC_RAINFALL,
        }

    def list_stations(self) -> Any:
        return self._stations

    def reading(self, request: Any) -> Any:
        pb = self._pb
        metrics = set(request.metrics) or self._all_metrics
        if not metrics <= self._all_metrics:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "metrics: unspecified or unknown metric")
        station = STATION_BY_ID.get(request.station_id)
        if station is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"no station {request.station_id!r}")
        if request.HasField("at"):
            at = request.at
            if not EARLIEST <= at.seconds < LATEST:
                raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "at: outside the years 1900 to 2200")
        else:
            at = None
        reading = pb.Reading(station_id=station.id, source=pb.READING_SOURCE_SIMULATED)
        if at is None:
            reading.observed_at.GetCurrentTime()
        else:
            reading.observed_at.CopyFrom(at)
        weather = simulate(station, reading.observed_at.seconds)
        for metric, field, value, unit in [
            (pb.METRIC_MIN_TEMPERATURE, reading.min_temperature, weather.min_c, "°C"),
            (pb.METRIC_MAX_TEMPERATURE, reading.max_temperature, weather.max_c, "°C"),
            (pb.METRIC_PRESSURE, reading.pressure, weather.pressure_hpa, "hPa"),
            (pb.METRIC_RAINFALL, reading.rainfall, weather.rain_mm, "mm"),
        ]:
            if metric in metrics:
                field.value = value
                field.unit = unit
        return reading


class ThreadedWeather(WeatherLogic):
    def ListStations(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.list_stations()

    def GetReading(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return self.reading(request)
        except RpcFailure as failure:
            context.abort(failure.code, failure.details)


class AsyncWeather(WeatherLogic):
    async def ListStations(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return self.list_stations()

    async def GetReading(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return self.reading(request)
        except RpcFailure as failure:
            await context.abort(failure.code, failure.details)


# --- Serving -------------------------------------------------------------------


def add_services(server: Any, protos: Protos, store: PeopleStore, asynchronous: bool) -> list[str]:
    """Registers the three services on `server`; returns their full names."""
    p = protos
    if asynchronous:
        transform, people, weather = AsyncTransform, AsyncPeople, AsyncWeather
    else:
        transform, people, weather = ThreadedTransform, ThreadedPeople, ThreadedWeather
    p.transform_grpc.add_TransformServiceServicer_to_server(
        with_generated_base(transform, p.transform_grpc.TransformServiceServicer)(p), server
    )
    p.database_grpc.add_PeopleServiceServicer_to_server(
        with_generated_base(people, p.database_grpc.PeopleServiceServicer)(p, store), server
    )
    p.weather_grpc.add_WeatherServiceServicer_to_server(
        with_generated_base(weather, p.weather_grpc.WeatherServiceServicer)(p), server
    )
    return [
        service_name(p.transform, "TransformService"),
        service_name(p.database, "PeopleService"),
        service_name(p.weather, "WeatherService"),
    ]


def bind(server: Any, listen: str) -> None:
    """Binds `listen` and prints the line harnesses wait for, in the Rust
    servers' format, with the port actually bound (port 0 picks one)."""
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as error:
        raise SystemExit(f"python-grpcio: cannot listen on {listen}: {error}") from None
    host = listen.rpartition(":")[0]
    print(f"python-grpcio listening on {host}:{port}", flush=True)


def serve_threads(listen: str, protos: Protos, store: PeopleStore) -> None:
    """grpc.server: each call runs on a pool thread, the classic grpcio server."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=THREAD_WORKERS), options=SERVER_OPTIONS)
    names = add_services(server, protos, store, asynchronous=False)
    checks = health.HealthServicer()
    for name in ["", *names]:
        checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    bind(server, listen)
    server.start()

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    checks.enter_graceful_shutdown()
    server.stop(SHUTDOWN_GRACE).wait()


async def serve_aio(listen: str, protos: Protos, store: PeopleStore) -> None:
    """grpc.aio: every call is a coroutine on one event loop."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    names = add_services(server, protos, store, asynchronous=True)
    checks = health.aio.HealthServicer()
    for name in ["", *names]:
        await checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    bind(server, listen)
    await server.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await checks.enter_graceful_shutdown()
    await server.stop(SHUTDOWN_GRACE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="where to listen (port 0 picks a free one)"
    )
    parser.add_argument(
        "--mode",
        choices=["aio", "threads"],
        default="aio",
        help="grpc.aio event loop (default: measured faster) or grpc.server on a thread pool",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="where the people database lives (default: a temporary directory)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="quartet-python-grpcio-") as scratch:
        protos = compile_protos(Path(scratch) / "generated")
        data_dir = args.data_dir or Path(scratch) / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        store = PeopleStore(data_dir / "people.sqlite3")
        try:
            if args.mode == "aio":
                asyncio.run(serve_aio(args.listen, protos, store))
            else:
                serve_threads(args.listen, protos, store)
        finally:
            store.close()


if __name__ == "__main__":
    main()
