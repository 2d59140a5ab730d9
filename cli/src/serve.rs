//! `quartet serve [all|SERVICE]...`: runs servers in this process with embedded
//! defaults, for trying Quartet on one machine. Deployments run each service's
//! own binary instead. The services are assembled by `quartet-suite`.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
};

use anyhow::Context as _;

use crate::{client::ClientOptions, failure::UsageError};
use clap::{Args, ValueEnum};
use quartet_gateway::{GatewayOptions, UpstreamOptions};
use quartet_runtime::{Metrics, ServerOptions, Shutdown};
use quartet_suite::{Service, ServiceOptions, Suite};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// What to run.
    #[arg(value_enum, default_values_t = [Served::All])]
    services: Vec<Served>,

    /// Where the transform service listens.
    #[arg(
        long,
        env = "QUARTET_TRANSFORM_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    transform_listen: SocketAddr,

    /// Where the people database listens.
    #[arg(
        long,
        env = "QUARTET_DATABASE_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    database_listen: SocketAddr,

    /// Where the weather service listens.
    #[arg(
        long,
        env = "QUARTET_WEATHER_LISTEN",
        default_value = "127.0.0.1:50053"
    )]
    weather_listen: SocketAddr,

    /// Where the chat service listens.
    #[arg(long, env = "QUARTET_CHAT_LISTEN", default_value = "127.0.0.1:50054")]
    chat_listen: SocketAddr,

    /// The services' own flags: the store, weather's provider, chat's backplane.
    #[command(flatten)]
    service: ServiceOptions,

    /// The gateway's text listeners and limits (listeners default to 127.0.0.1 here).
    #[command(flatten)]
    gateway: GatewayOptions,

    #[command(flatten)]
    server: ServerOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Served {
    /// Every service.
    All,
    /// The transform service.
    Transform,
    /// The people database.
    Database,
    /// The weather service.
    Weather,
    /// The chat service.
    Chat,
    /// The plain-text gateway in front of the services.
    Gateway,
}

impl ServeArgs {
    fn wants(&self, served: Served) -> bool {
        self.services.contains(&Served::All) || self.services.contains(&served)
    }

    /// The gRPC services asked for, each with where it listens.
    fn listen(&self) -> Vec<(Service, SocketAddr)> {
        [
            (Served::Transform, Service::Transform, self.transform_listen),
            (Served::Database, Service::Database, self.database_listen),
            (Served::Weather, Service::Weather, self.weather_listen),
            (Served::Chat, Service::Chat, self.chat_listen),
        ]
        .into_iter()
        .filter(|(served, ..)| self.wants(*served))
        .map(|(_, service, addr)| (service, addr))
        .collect()
    }
}

pub(crate) async fn run(client: &ClientOptions, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.server.health_listen.is_some() {
        return Err(UsageError(
            "--health-listen serves one server's health; run the service's own binary for it"
                .into(),
        )
        .into());
    }
    let shutdown = Shutdown::on_signals().context("cannot install signal handlers")?;
    // Every server records into this registry.
    let metrics = Metrics::for_process(args.server.metrics_listen, &shutdown).await?;
    let mut suite = Suite::new(args.server.clone(), shutdown, metrics)
        .bind(&args.listen(), &args.service)
        .await?;
    if args.wants(Served::Gateway) {
        let upstreams = suite.upstreams(elsewhere(client));
        suite = suite
            .bind_gateway(args.gateway.clone(), upstreams, Ipv4Addr::LOCALHOST.into())
            .await?;
    }
    suite.announce()?;
    suite.spawn()?.stopped().await?;
    Ok(ExitCode::SUCCESS)
}

/// The services the gateway calls when they do not run here: where the global
/// `--<service>-addr` flags say, with the global credentials.
fn elsewhere(client: &ClientOptions) -> UpstreamOptions {
    UpstreamOptions {
        transform_addr: client.transform_addr.clone(),
        database_addr: client.database_addr.clone(),
        weather_addr: client.weather_addr.clone(),
        chat_addr: client.chat_addr.clone(),
        credentials: client.credentials.clone(),
        resolution: client.resolution.clone(),
    }
}
