//! The weather service over real sockets: a server on port 0 and the generated
//! tonic client, as a user would call it.

// Integration tests: a panic is the failure report. Values compared exactly were
// parsed from the same decimal text, so exact equality is what is meant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use quartet_e2e::grpc::{failure, next, within};
use quartet_proto::weather::v1::{
    GetReadingRequest, ListStationsRequest, Metric, Reading, ReadingSource, WatchReadingsRequest,
    weather_service_client::WeatherServiceClient,
};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use quartet_weather::{OpenWatches, WeatherHandler, WeatherOptions};
use tonic::{Code, Status, transport::Channel};

fn sample_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/observations-sample.csv")
}

async fn start_with(weather: &WeatherOptions) -> RunningServer {
    quartet_weather::server(ServerOptions::default(), Shutdown::new(), weather)
        .unwrap()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

async fn start() -> RunningServer {
    start_with(&WeatherOptions::default()).await
}

/// A simulated server whose open watches the test can see.
async fn start_counting(limit: usize) -> (RunningServer, OpenWatches) {
    let shutdown = Shutdown::new();
    let watches = OpenWatches::new(limit);
    let handler = WeatherHandler::new(
        WeatherOptions::default().provider().unwrap(),
        shutdown.drain_signal(),
        watches.clone(),
    );
    (start_handler(shutdown, handler).await, watches)
}

/// A server hosting `handler`, which watches `shutdown`'s drain.
async fn start_handler(shutdown: Shutdown, handler: WeatherHandler) -> RunningServer {
    quartet_weather::server_with_handler(ServerOptions::default(), shutdown, handler)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

async fn client(server: &RunningServer) -> WeatherServiceClient<Channel> {
    WeatherServiceClient::connect(server.url()).await.unwrap()
}

fn at(text: &str) -> prost_types::Timestamp {
    let at: jiff::Timestamp = text.parse().unwrap();
    prost_types::Timestamp {
        seconds: at.as_second(),
        nanos: at.subsec_nanosecond(),
    }
}

fn get(station: &str, metrics: &[Metric], time: Option<&str>) -> GetReadingRequest {
    GetReadingRequest {
        station_id: station.to_owned(),
        metrics: metrics.iter().map(|metric| (*metric).into()).collect(),
        at: time.map(at),
    }
}

async fn read(
    client: &mut WeatherServiceClient<Channel>,
    request: GetReadingRequest,
) -> Result<Reading, Status> {
    within(client.get_reading(request))
        .await
        .map(tonic::Response::into_inner)
}

/// Which metrics a reading carries, checking each has its unit.
fn present(reading: &Reading) -> Vec<Metric> {
    let mut present = Vec::new();
    for (metric, measurement, unit) in [
        (Metric::MinTemperature, &reading.min_temperature, "°C"),
        (Metric::MaxTemperature, &reading.max_temperature, "°C"),
        (Metric::Pressure, &reading.pressure, "hPa"),
        (Metric::Rainfall, &reading.rainfall, "mm"),
    ] {
        if let Some(measurement) = measurement {
            assert_eq!(measurement.unit, unit, "{metric:?}");
            present.push(metric);
        }
    }
    present
}

const ALL: [Metric; 4] = [
    Metric::MinTemperature,
    Metric::MaxTemperature,
    Metric::Pressure,
    Metric::Rainfall,
];

#[tokio::test]
async fn list_stations_returns_the_catalogue_ordered_by_id() {
    let server = start().await;
    let mut client = client(&server).await;
    let stations = client
        .list_stations(ListStationsRequest {})
        .await
        .unwrap()
        .into_inner()
        .stations;
    assert!(stations.len() >= 12, "{}", stations.len());
    let ids: Vec<&str> = stations.iter().map(|station| station.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    let madrid = stations
        .iter()
        .find(|station| station.id == "madrid")
        .unwrap();
    assert_eq!(madrid.name, "Madrid Retiro");
    assert_eq!(madrid.country, "ES");
    assert_eq!(madrid.time_zone, "Europe/Madrid");
    assert!((madrid.elevation_m - 667.0).abs() < 1.0);
    assert!((40.0..41.0).contains(&madrid.latitude));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn each_metric_alone_comes_alone() {
    let server = start().await;
    let mut client = client(&server).await;
    let time = Some("2024-02-01T12:00:00Z");
    let everything = read(&mut client, get("london", &[], time)).await.unwrap();
    for metric in ALL {
        let reading = read(&mut client, get("london", &[metric], time))
            .await
            .unwrap();
        assert_eq!(present(&reading), [metric]);
        let value = |reading: &Reading| match metric {
            Metric::MinTemperature => reading.min_temperature.clone(),
            Metric::MaxTemperature => reading.max_temperature.clone(),
            Metric::Pressure => reading.pressure.clone(),
            Metric::Rainfall => reading.rainfall.clone(),
            Metric::Unspecified => unreachable!(),
        };
        assert_eq!(value(&reading), value(&everything), "{metric:?}");
        assert_eq!(reading.source(), ReadingSource::Simulated);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn no_metric_or_all_four_give_all_four_and_duplicates_count_once() {
    let server = start().await;
    let mut client = client(&server).await;
    let time = Some("2024-02-01T12:00:00Z");
    let none = read(&mut client, get("tokyo", &[], time)).await.unwrap();
    let all = read(&mut client, get("tokyo", &ALL, time)).await.unwrap();
    assert_eq!(present(&none), ALL);
    assert_eq!(none, all);
    let two = read(
        &mut client,
        get(
            "tokyo",
            &[Metric::Rainfall, Metric::Pressure, Metric::Rainfall],
            time,
        ),
    )
    .await
    .unwrap();
    assert_eq!(present(&two), [Metric::Pressure, Metric::Rainfall]);
    let reading = none;
    assert!(
        reading.min_temperature.unwrap().value <= reading.max_temperature.unwrap().value,
        "min above max"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_station_and_time_give_the_same_reading_on_any_server() {
    let first = start().await;
    let second = start().await;
    let time = Some("1987-06-05T04:03:02.010Z");
    let a = read(&mut client(&first).await, get("sydney", &[], time))
        .await
        .unwrap();
    let b = read(&mut client(&second).await, get("sydney", &[], time))
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.observed_at, Some(at("1987-06-05T04:03:02.010Z")));
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

#[tokio::test]
async fn a_reading_without_a_time_is_now() {
    let server = start().await;
    let mut client = client(&server).await;
    let before = jiff::Timestamp::now().as_millisecond();
    let reading = read(&mut client, get("cairo", &[], None)).await.unwrap();
    let after = jiff::Timestamp::now().as_millisecond();
    let observed = reading.observed_at.unwrap();
    let observed = observed.seconds * 1000 + i64::from(observed.nanos) / 1_000_000;
    assert!(
        (before..=after).contains(&observed),
        "{before} {observed} {after}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_megabyte_station_id_is_not_found_and_quoted_only_in_part() {
    let server = start().await;
    let mut client = client(&server).await;
    let station = "x".repeat(1 << 20);
    let status = client
        .get_reading(get(&station, &[], None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().len() < 200, "{}", status.message());
    assert!(
        status.message().contains("(1048576 bytes)"),
        "{}",
        status.message()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_precise_statuses() {
    let server = start().await;
    let mut client = client(&server).await;
    let cases = [
        (get("atlantis", &[], None), Code::NotFound, "atlantis"),
        (get("", &[], None), Code::InvalidArgument, "station_id"),
        (
            get("madrid", &[Metric::Unspecified], None),
            Code::InvalidArgument,
            "METRIC_UNSPECIFIED",
        ),
        (
            GetReadingRequest {
                metrics: vec![7],
                ..get("madrid", &[], None)
            },
            Code::InvalidArgument,
            "7 is not a known metric",
        ),
        (
            get("madrid", &[], Some("1899-12-31T23:59:59Z")),
            Code::InvalidArgument,
            "1899",
        ),
        (
            get("madrid", &[], Some("2201-01-01T00:00:00Z")),
            Code::InvalidArgument,
            "2201",
        ),
        (
            GetReadingRequest {
                at: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..get("madrid", &[], None)
            },
            Code::InvalidArgument,
            "nanos",
        ),
    ];
    for (request, code, words) in cases {
        let status = read(&mut client, request.clone()).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(status.message().contains(words), "{}", status.message());
    }
    // The edges of the range are in it.
    for edge in ["1900-01-01T00:00:00Z", "2200-12-31T23:59:59Z"] {
        read(&mut client, get("madrid", &[], Some(edge)))
            .await
            .unwrap();
    }
    server.stop().await.unwrap();
}

fn watch(station: &str, metrics: &[Metric], interval: Option<Duration>) -> WatchReadingsRequest {
    WatchReadingsRequest {
        station_id: station.to_owned(),
        metrics: metrics.iter().map(|metric| (*metric).into()).collect(),
        interval: interval.map(|interval| prost_types::Duration::try_from(interval).unwrap()),
    }
}

fn millis(reading: &Reading) -> i64 {
    let at = reading.observed_at.unwrap();
    at.seconds * 1000 + i64::from(at.nanos) / 1_000_000
}

#[tokio::test]
async fn watch_sends_a_reading_now_then_one_every_interval() {
    let server = start().await;
    let mut client = client(&server).await;
    let interval = Duration::from_millis(100);
    let started = tokio::time::Instant::now();
    let mut readings = client
        .watch_readings(watch("madrid", &[Metric::Pressure], Some(interval)))
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    for _ in 0..6 {
        let reading = next(&mut readings).await;
        assert_eq!(present(&reading), [Metric::Pressure]);
        received.push(reading);
    }
    let elapsed = started.elapsed();
    // Five intervals separate six readings, and none came early.
    assert!(elapsed >= interval * 5, "{elapsed:?}");
    let times: Vec<i64> = received.iter().map(millis).collect();
    for pair in times.windows(2) {
        // Ticks are 100 ms apart; a reading is stamped when its tick is
        // served, which a loaded machine may delay by a few milliseconds. A
        // burst would show gaps near zero.
        assert!(pair[1] - pair[0] >= 50, "{times:?}");
    }
    assert!(times[5] - times[0] >= 490, "{times:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_without_an_interval_reads_every_second() {
    let server = start().await;
    let mut client = client(&server).await;
    let mut readings = client
        .watch_readings(watch("nairobi", &[], None))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut readings).await;
    let second = next(&mut readings).await;
    assert_eq!(present(&first), ALL);
    let gap = millis(&second) - millis(&first);
    // The first reading is taken before the schedule starts, so the gap is at
    // least the interval; the upper bound only tells 1 s from a longer default.
    assert!((999..2500).contains(&gap), "{gap} ms");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_watches_fail_before_any_reading() {
    let server = start().await;
    let mut client = client(&server).await;
    let cases = [
        (watch("atlantis", &[], None), Code::NotFound),
        (
            watch("madrid", &[Metric::Unspecified], None),
            Code::InvalidArgument,
        ),
        (
            watch("madrid", &[], Some(Duration::from_millis(99))),
            Code::InvalidArgument,
        ),
        (
            watch("madrid", &[], Some(Duration::ZERO)),
            Code::InvalidArgument,
        ),
        (
            watch(
                "madrid",
                &[],
                Some(Duration::from_secs(24 * 3600) + Duration::from_nanos(1)),
            ),
            Code::InvalidArgument,
        ),
        (
            WatchReadingsRequest {
                interval: Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                }),
                ..watch("madrid", &[], None)
            },
            Code::InvalidArgument,
        ),
    ];
    for (request, code) in cases {
        let status = within(client.watch_readings(request.clone()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
    }
    // The bounds themselves are accepted.
    for interval in [Duration::from_millis(100), Duration::from_secs(24 * 3600)] {
        let mut readings = client
            .watch_readings(watch("madrid", &[], Some(interval)))
            .await
            .unwrap()
            .into_inner();
        next(&mut readings).await;
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_ends_on_the_server_when_the_client_goes() {
    let (server, watches) = start_counting(100).await;
    let mut client = client(&server).await;
    let mut readings = client
        .watch_readings(watch("london", &[], Some(Duration::from_millis(100))))
        .await
        .unwrap()
        .into_inner();
    next(&mut readings).await;
    assert_eq!(watches.count(), 1);
    drop(readings);
    within(watches.wait_for(|open| *open == 0)).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_ends_with_unavailable_when_the_server_drains() {
    let (server, watches) = start_counting(100).await;
    let mut client = client(&server).await;
    // A long interval: only the drain can end this stream in time.
    let mut readings = client
        .watch_readings(watch("sydney", &[], Some(Duration::from_secs(3600))))
        .await
        .unwrap()
        .into_inner();
    next(&mut readings).await;
    server.shutdown().request();
    let status = failure(&mut readings).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("reconnect"),
        "{}",
        status.message()
    );
    within(server.stopped()).await.unwrap();
    assert_eq!(watches.count(), 0);
}

#[tokio::test]
async fn watches_past_the_cap_are_resource_exhausted_until_one_closes() {
    let (server, watches) = start_counting(2).await;
    let mut client = client(&server).await;
    let hour = Some(Duration::from_secs(3600));
    let mut first = client
        .watch_readings(watch("lhasa", &[], hour))
        .await
        .unwrap()
        .into_inner();
    let _second = client
        .watch_readings(watch("lhasa", &[], hour))
        .await
        .unwrap()
        .into_inner();
    next(&mut first).await;
    let status = client
        .watch_readings(watch("lhasa", &[], hour))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    drop(first);
    within(watches.wait_for(|open| *open == 1)).await;
    client
        .watch_readings(watch("lhasa", &[], hour))
        .await
        .unwrap();
    server.stop().await.unwrap();
}

mod observations {
    use super::*;

    async fn start_sample() -> RunningServer {
        start_with(&WeatherOptions {
            observations: Some(sample_file()),
            ..WeatherOptions::default()
        })
        .await
    }

    #[tokio::test]
    async fn lists_only_the_stations_of_the_file() {
        let server = start_sample().await;
        let stations = client(&server)
            .await
            .list_stations(ListStationsRequest {})
            .await
            .unwrap()
            .into_inner()
            .stations;
        let ids: Vec<&str> = stations.iter().map(|station| station.id.as_str()).collect();
        assert_eq!(ids, ["london", "madrid", "sydney"]);
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn serves_the_latest_record_at_or_before_the_time() {
        let server = start_sample().await;
        let mut client = client(&server).await;
        // Madrid reports at 09:00 local (08:00 UTC in winter).
        let reading = read(
            &mut client,
            get("madrid", &[], Some("2024-01-10T07:59:00Z")),
        )
        .await
        .unwrap();
        assert_eq!(reading.observed_at, Some(at("2024-01-09T08:00:00Z")));
        assert_eq!(reading.source(), ReadingSource::Observed);
        assert_eq!(reading.min_temperature.unwrap().value, -0.5);
        assert_eq!(reading.max_temperature.unwrap().value, 10.8);
        assert_eq!(reading.pressure.unwrap().value, 943.4);
        assert_eq!(reading.rainfall.unwrap().value, 0.0);

        // London did not report pressure on the 11th: absent, not zero.
        let london = read(
            &mut client,
            get("london", &[], Some("2024-01-11T12:00:00Z")),
        )
        .await
        .unwrap();
        assert_eq!(
            present(&london),
            [
                Metric::MinTemperature,
                Metric::MaxTemperature,
                Metric::Rainfall
            ]
        );
        let only_pressure = read(
            &mut client,
            get("london", &[Metric::Pressure], Some("2024-01-11T12:00:00Z")),
        )
        .await
        .unwrap();
        assert_eq!(present(&only_pressure), []);
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn a_time_before_the_records_is_not_found() {
        let server = start_sample().await;
        let mut client = client(&server).await;
        let status = read(
            &mut client,
            get("sydney", &[], Some("2024-01-01T00:00:00Z")),
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert!(
            status
                .message()
                .contains("records start at 2024-01-07T22:00:00Z"),
            "{}",
            status.message()
        );
        let status = read(&mut client, get("tokyo", &[], None))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::NotFound,
            "tokyo is in the catalogue, not in the file"
        );
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn watch_repeats_the_latest_record() {
        let server = start_sample().await;
        let mut client = client(&server).await;
        let mut readings = client
            .watch_readings(watch(
                "london",
                &[Metric::Rainfall],
                Some(Duration::from_millis(100)),
            ))
            .await
            .unwrap()
            .into_inner();
        let first = next(&mut readings).await;
        let second = next(&mut readings).await;
        assert_eq!(first.observed_at, Some(at("2024-01-21T09:00:00Z")));
        assert_eq!(first, second);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_server_built_on_a_provider_of_our_own_serves_it() {
    // The trait is the extension point: any provider plugs into the handler.
    let shutdown = Shutdown::new();
    let provider: Arc<dyn quartet_weather::ReadingProvider> = Arc::new(
        quartet_weather::provider::observations::ObservationsProvider::from_reader(
            std::path::Path::new("inline.csv"),
            "station,observed_at,pressure_hpa\nreykjavik,2020-02-02T12:00:00Z,990.5\n".as_bytes(),
        )
        .unwrap(),
    );
    let handler = WeatherHandler::new(provider, shutdown.drain_signal(), OpenWatches::new(1));
    let server = start_handler(shutdown, handler).await;
    let reading = read(&mut client(&server).await, get("reykjavik", &[], None))
        .await
        .unwrap();
    assert_eq!(present(&reading), [Metric::Pressure]);
    assert_eq!(reading.pressure.unwrap().value, 990.5);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn open_watches_are_exported_as_a_gauge() {
    let (server, watches) = start_counting(10).await;
    let metrics = server.metrics().clone();
    let mut client = client(&server).await;
    let stream = client
        .watch_readings(WatchReadingsRequest {
            station_id: "madrid".into(),
            metrics: Vec::new(),
            interval: None,
        })
        .await
        .unwrap()
        .into_inner();
    within(watches.wait_for(|open| *open == 1)).await;
    assert!(
        metrics.encode().contains("quartet_weather_watches 1\n"),
        "{}",
        metrics.encode()
    );
    drop(stream);
    within(watches.wait_for(|open| *open == 0)).await;
    assert!(metrics.encode().contains("quartet_weather_watches 0\n"));
    server.stop().await.unwrap();
}
