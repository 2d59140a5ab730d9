//! The weather service over real sockets: a server on port 0 and the generated
//! tonic client, as a user would call it: stations and readings, from the
//! simulated climate and from a file of observations.

// Integration tests: a panic is the failure report. Values compared exactly were
// parsed from the same decimal text, so exact equality is what is meant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod harness;

use std::{sync::Arc, time::Duration};

use harness::{
    ALL, at, client, get, millis, next_reading, open_watch, present, read, sample_file, serve,
    start, start_with, watch,
};
use quartet_e2e::grpc::assert_status;
use quartet_proto::weather::v1::{
    GetReadingRequest, ListStationsRequest, Metric, Reading, ReadingSource,
};
use quartet_runtime::{RunningServer, ServerOptions};
use quartet_weather::{OpenWatches, WeatherOptions};
use tonic::Code;

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
    let observed = millis(&reading);
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
    assert_status(&status, Code::NotFound, "(1048576 bytes)");
    assert!(status.message().len() < 200, "{}", status.message());
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
        assert_status(&status, code, words);
    }
    // The edges of the range are in it.
    for edge in ["1900-01-01T00:00:00Z", "2200-12-31T23:59:59Z"] {
        read(&mut client, get("madrid", &[], Some(edge)))
            .await
            .unwrap();
    }
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
        let mut readings = open_watch(
            &mut client,
            watch(
                "london",
                &[Metric::Rainfall],
                Some(Duration::from_millis(100)),
            ),
        )
        .await;
        let first = next_reading(&mut readings).await;
        let second = next_reading(&mut readings).await;
        assert_eq!(first.observed_at, Some(at("2024-01-21T09:00:00Z")));
        assert_eq!(first, second);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_server_built_on_a_provider_of_our_own_serves_it() {
    // The trait is the extension point: any provider plugs into the handler.
    let provider: Arc<dyn quartet_weather::ReadingProvider> = Arc::new(
        quartet_weather::provider::observations::ObservationsProvider::from_reader(
            std::path::Path::new("inline.csv"),
            "station,observed_at,pressure_hpa\nreykjavik,2020-02-02T12:00:00Z,990.5\n".as_bytes(),
        )
        .unwrap(),
    );
    let server = serve(ServerOptions::default(), provider, OpenWatches::new(1)).await;
    let reading = read(&mut client(&server).await, get("reykjavik", &[], None))
        .await
        .unwrap();
    assert_eq!(present(&reading), [Metric::Pressure]);
    assert_eq!(reading.pressure.unwrap().value, 990.5);
    server.stop().await.unwrap();
}
