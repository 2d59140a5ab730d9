//! `quartet-bare`: the benchmark baseline "a bare tonic server with no layers
//! doing the same work".
//!
//! It serves one of Quartet's service handlers (the very code the real servers
//! run, built from its options by `quartet-suite` as `quartet serve` builds it)
//! on `tonic::transport::Server` with tonic's defaults: no call tracing, no
//! metrics, no auth, no concurrency or size limits beyond tonic's own 4 MiB
//! (the real servers' default too), no request timeout, no reflection and no
//! custom accept loop. Health is kept because the benchmark suite waits on it
//! to time start-up. The gap between this process and the real one is what
//! the shared runtime costs.

use std::{io::Write as _, net::SocketAddr, path::PathBuf};

use clap::{Parser, ValueEnum};
use quartet_proto::{
    chat::v1::preencoded::chat_service_server::{self, ChatServiceServer},
    database::v1::people_service_server::{self, PeopleServiceServer},
    transform::v1::transform_service_server::{self, TransformServiceServer},
    weather::v1::weather_service_server::{self, WeatherServiceServer},
};
use quartet_suite::{Handler, Service, ServiceOptions};
use quartet_weather::WeatherOptions;
use tonic::transport::Server;
use tonic_health::ServingStatus;

/// Serves one Quartet service on a plain tonic server (benchmark baseline).
#[derive(Debug, Parser)]
#[command(name = "quartet-bare", version, about)]
struct Args {
    /// Which service to host.
    #[arg(value_enum)]
    service: Bare,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory of the embedded people store (database only).
    #[arg(long, default_value = "quartet-bare-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    weather: WeatherOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bare {
    Transform,
    Database,
    Weather,
    Chat,
}

impl From<Bare> for Service {
    fn from(bare: Bare) -> Self {
        match bare {
            Bare::Transform => Self::Transform,
            Bare::Database => Self::Database,
            Bare::Weather => Self::Weather,
            Bare::Chat => Self::Chat,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = ServiceOptions {
        weather: args.weather.clone(),
        ..ServiceOptions::embedded(args.data_dir.clone())
    };
    let handler = Handler::open(args.service.into(), &options).await?;
    let name = match &handler {
        Handler::Transform(_) => transform_service_server::SERVICE_NAME,
        Handler::Database(_) => people_service_server::SERVICE_NAME,
        Handler::Weather(_) => weather_service_server::SERVICE_NAME,
        Handler::Chat(_) => chat_service_server::SERVICE_NAME,
    };
    let mut server = Server::builder();
    let router = match handler {
        Handler::Transform(handler) => server.add_service(TransformServiceServer::new(handler)),
        Handler::Database(handler) => server.add_service(PeopleServiceServer::new(handler)),
        Handler::Weather(handler) => server.add_service(WeatherServiceServer::new(handler)),
        Handler::Chat(handler) => server.add_service(ChatServiceServer::new(handler)),
    };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(name, ServingStatus::Serving)
        .await;
    let router = router.add_service(health);

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let local_addr = listener.local_addr()?;
    // The announce line the benchmark scripts read, as the real servers print it.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "bare listening on {local_addr}")?;
    stdout.flush()?;
    drop(stdout);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
