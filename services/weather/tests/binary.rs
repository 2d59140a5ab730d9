//! The `quartet-weather` binary as deployed: a real process, its announce line,
//! its gRPC port, what SIGTERM does to an open watch, and how it refuses a bad
//! observations file.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use harness::{get, next_reading, open_watch, read, watch};
use quartet_e2e::{ServerProcess, Signal, assert_usage_error, exit_of, grpc::failure};
use quartet_proto::weather::v1::{ReadingSource, weather_service_client::WeatherServiceClient};
use tokio::process::Command;
use tonic::{Code, transport::Channel};

fn weather() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet-weather"));
    command
        .env_remove("QUARTET_OBSERVATIONS")
        .env_remove("QUARTET_LISTEN")
        .kill_on_drop(true);
    command
}

/// Starts the binary on a free port, with `extra` flags.
async fn start(extra: &[&str]) -> ServerProcess {
    let mut command = weather();
    command.args(["--listen", "127.0.0.1:0"]).args(extra);
    ServerProcess::start(command, &["weather"]).await.unwrap()
}

/// A client of the binary's weather service.
async fn client(server: &ServerProcess) -> WeatherServiceClient<Channel> {
    WeatherServiceClient::connect(server.url("weather").unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn sigterm_ends_open_watches_with_unavailable_and_exits_zero() {
    let mut server = start(&[]).await;
    let mut client = client(&server).await;
    let reading = read(&mut client, get("madrid", &[], None)).await.unwrap();
    assert_eq!(reading.source(), ReadingSource::Simulated);

    let hourly = watch("mumbai", &[], Some(Duration::from_secs(3600)));
    let mut watch = open_watch(&mut client, hourly).await;
    next_reading(&mut watch).await;

    server.signal(Signal::SIGTERM).unwrap();

    assert_eq!(failure(&mut watch).await.code(), Code::Unavailable);
    assert_eq!(server.exit_code().await.unwrap(), Some(0));
}

#[tokio::test]
async fn serves_the_observations_file_it_is_given() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/data/observations-sample.csv");
    let server = start(&["--observations", sample]).await;
    let reading = read(&mut client(&server).await, get("london", &[], None))
        .await
        .unwrap();
    assert_eq!(reading.source(), ReadingSource::Observed);
}

#[tokio::test]
async fn a_bad_observations_file_stops_the_start_naming_line_and_column() {
    let dir = std::env::temp_dir().join(format!("quartet-weather-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.csv");
    std::fs::write(
        &file,
        "station,observed_at,min_temperature_c\nmadrid,2024-01-01T09:00:00Z,cold\n",
    )
    .unwrap();
    let exit = exit_of(
        weather()
            .args(["--listen", "127.0.0.1:0", "--observations"])
            .arg(&file),
    )
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(exit.code, Some(1));
    assert!(exit.stdout.is_empty(), "announced despite the bad file");
    assert!(
        exit.stderr
            .contains("line 2, column 3 (min_temperature_c): \"cold\" is not a number"),
        "{exit:?}"
    );
}

#[tokio::test]
async fn bad_flags_exit_with_usage_code_two() {
    assert_usage_error(weather().args(["--max-watches", "many"]), "--max-watches").await;
}
