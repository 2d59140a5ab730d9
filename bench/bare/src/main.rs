//! `quartet-bare`: the benchmark baseline "a bare tonic server with no layers
//! doing the same work".
//!
//! It serves one of Quartet's service handlers (the very code the real servers
//! run) on `tonic::transport::Server` with tonic's defaults: no call tracing, no
//! metrics, no auth, no concurrency or size limits, no request timeout, no
//! reflection and no custom accept loop. Health is kept because the benchmark
//! suite waits on it to time start-up. The gap between this process and the real
//! one is what the shared runtime costs.

use std::{io::Write as _, net::SocketAddr, path::PathBuf, sync::Arc};

use clap::{Parser, ValueEnum};
use quartet_chat::{ChatConfig, ChatHandler, LocalBackplane, RoomHub};
use quartet_database::{PeopleHandler, StoreOptions};
use quartet_proto::{
    chat::v1::preencoded::chat_service_server::ChatServiceServer,
    database::v1::people_service_server::PeopleServiceServer,
    transform::v1::transform_service_server::TransformServiceServer,
    weather::v1::weather_service_server::WeatherServiceServer,
};
use quartet_runtime::DrainSignal;
use quartet_transform::TransformHandler;
use quartet_weather::{OpenWatches, WeatherHandler, WeatherOptions};
use tonic::transport::Server;

/// Largest message either way, as the real servers default to (4 MiB).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Serves one Quartet service on a plain tonic server (benchmark baseline).
#[derive(Debug, Parser)]
#[command(name = "quartet-bare", version, about)]
struct Args {
    /// Which service to host.
    #[arg(value_enum)]
    service: Service,
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
enum Service {
    Transform,
    Database,
    Weather,
    Chat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let drain = DrainSignal::never();
    let mut server = Server::builder();
    let router = match args.service {
        Service::Transform => {
            health_reporter
                .set_serving::<TransformServiceServer<TransformHandler>>()
                .await;
            server.add_service(health).add_service(
                TransformServiceServer::new(TransformHandler::new(MAX_MESSAGE_BYTES, drain))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
        }
        Service::Database => {
            let store = StoreOptions {
                data_dir: args.data_dir.clone(),
                database_url: None,
                database_url_file: None,
                change_retention: 100_000,
            }
            .open()
            .await?;
            health_reporter
                .set_serving::<PeopleServiceServer<PeopleHandler>>()
                .await;
            server.add_service(health).add_service(
                PeopleServiceServer::new(PeopleHandler::new(store, drain))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
        }
        Service::Weather => {
            let handler = WeatherHandler::new(
                args.weather.provider()?,
                drain,
                OpenWatches::new(args.weather.max_watches),
            );
            health_reporter
                .set_serving::<WeatherServiceServer<WeatherHandler>>()
                .await;
            server
                .add_service(health)
                .add_service(WeatherServiceServer::new(handler))
        }
        Service::Chat => {
            let config = ChatConfig::default();
            let hub = Arc::new(RoomHub::new(config.hub_limits()));
            let handler = ChatHandler::new(Arc::new(LocalBackplane::new(hub)), config, drain);
            health_reporter
                .set_serving::<ChatServiceServer<ChatHandler<LocalBackplane>>>()
                .await;
            server
                .add_service(health)
                .add_service(ChatServiceServer::new(handler))
        }
    };
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
