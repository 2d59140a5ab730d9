//! WatchReadings over real sockets: the schedule of readings, the bounds on
//! intervals, and the server's count and cap of open watches.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use harness::{
    ALL, client, millis, next_reading, open_watch, present, start, start_counting, watch,
};
use quartet_e2e::grpc::{failure, within};
use quartet_proto::weather::v1::{Metric, WatchReadingsRequest};
use tonic::Code;

#[tokio::test]
async fn watch_sends_a_reading_now_then_one_every_interval() {
    let server = start().await;
    let mut client = client(&server).await;
    let interval = Duration::from_millis(100);
    let started = tokio::time::Instant::now();
    let mut readings = open_watch(
        &mut client,
        watch("madrid", &[Metric::Pressure], Some(interval)),
    )
    .await;
    let mut received = Vec::new();
    for _ in 0..6 {
        let reading = next_reading(&mut readings).await;
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
    let mut readings = open_watch(&mut client, watch("nairobi", &[], None)).await;
    let first = next_reading(&mut readings).await;
    let second = next_reading(&mut readings).await;
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
        let mut readings = open_watch(&mut client, watch("madrid", &[], Some(interval))).await;
        next_reading(&mut readings).await;
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_ends_on_the_server_when_the_client_goes() {
    let (server, watches) = start_counting(100).await;
    let mut client = client(&server).await;
    let mut readings = open_watch(
        &mut client,
        watch("london", &[], Some(Duration::from_millis(100))),
    )
    .await;
    next_reading(&mut readings).await;
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
    let mut readings = open_watch(
        &mut client,
        watch("sydney", &[], Some(Duration::from_secs(3600))),
    )
    .await;
    next_reading(&mut readings).await;
    server.shutdown().request();
    let status = failure(&mut readings).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "server is shutting down; reconnect to resume"
    );
    within(server.stopped()).await.unwrap();
    assert_eq!(watches.count(), 0);
}

#[tokio::test]
async fn watches_past_the_cap_are_resource_exhausted_until_one_closes() {
    let (server, watches) = start_counting(2).await;
    let mut client = client(&server).await;
    let hour = Some(Duration::from_secs(3600));
    let mut first = open_watch(&mut client, watch("lhasa", &[], hour)).await;
    let _second = open_watch(&mut client, watch("lhasa", &[], hour)).await;
    next_reading(&mut first).await;
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

#[tokio::test]
async fn open_watches_are_exported_as_a_gauge() {
    let (server, watches) = start_counting(10).await;
    let metrics = server.metrics();
    let mut client = client(&server).await;
    let stream = open_watch(&mut client, watch("madrid", &[], None)).await;
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
