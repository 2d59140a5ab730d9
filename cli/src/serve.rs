//! `quartet serve [all|SERVICE]...`: runs servers in this process with embedded
//! defaults, for trying Quartet on one machine. Deployments run each service's
//! own binary instead.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
};

use anyhow::Context as _;

use crate::{client::ClientOptions, failure::UsageError};
use clap::{Args, ValueEnum};
use quartet_chat::{BackplaneOptions, ChatConfig};
use quartet_gateway::{Gateway, GatewayOptions, UpstreamOptions};
use quartet_runtime::{BoundServer, Metrics, ServerOptions, Shutdown};
use quartet_weather::WeatherOptions;
use tokio::task::JoinSet;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// What to run.
    #[arg(value_enum, default_values_t = [Service::All])]
    services: Vec<Service>,

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

    /// Chat's backplane: in-process, or NATS with --nats-url.
    #[command(flatten)]
    chat_backplane: BackplaneOptions,

    /// The weather service's provider and limits.
    #[command(flatten)]
    weather: WeatherOptions,

    /// The gateway's text listeners and limits (listeners default to 127.0.0.1 here).
    #[command(flatten)]
    gateway: GatewayOptions,

    #[command(flatten)]
    store: quartet_database::StoreOptions,

    #[command(flatten)]
    server: ServerOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Service {
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
    fn wants(&self, service: Service) -> bool {
        self.services.contains(&Service::All) || self.services.contains(&service)
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
    // Every server below records into this registry.
    let metrics = Metrics::for_process(args.server.metrics_listen, &shutdown).await?;

    // Bind everything first: a taken port fails the command before anything serves.
    let mut bound: Vec<BoundServer> = Vec::new();
    if args.wants(Service::Transform) {
        let server = quartet_transform::server(args.server.clone(), shutdown.clone())
            .record_into(&metrics)
            .bind(args.transform_listen)
            .await?;
        bound.push(server);
    }
    if args.wants(Service::Database) {
        let store = args
            .store
            .open()
            .await
            .context("cannot open the people store")?;
        let server = quartet_database::server(args.server.clone(), shutdown.clone(), store)
            .record_into(&metrics)
            .bind(args.database_listen)
            .await?;
        bound.push(server);
    }
    if args.wants(Service::Weather) {
        let server = quartet_weather::server(args.server.clone(), shutdown.clone(), &args.weather)?
            .record_into(&metrics)
            .bind(args.weather_listen)
            .await?;
        bound.push(server);
    }
    if args.wants(Service::Chat) {
        let server = quartet_chat::server_with_backplane(
            args.server.clone(),
            shutdown.clone(),
            ChatConfig::default(),
            &args.chat_backplane,
        )
        .await
        .context("cannot start the chat backplane")?
        .record_into(&metrics)
        .bind(args.chat_listen)
        .await?;
        bound.push(server);
    }

    let gateway = if args.wants(Service::Gateway) {
        let upstreams = gateway_upstreams(&bound, client);
        let options = GatewayOptions {
            max_connections: args.server.limits.max_connections,
            ..args.gateway.clone()
        };
        let gateway = Gateway::new(
            options,
            upstreams,
            shutdown.clone(),
            args.server.shutdown.clone(),
            &metrics,
        );
        Some(gateway.bind(Ipv4Addr::LOCALHOST.into()).await?)
    } else {
        None
    };

    let mut running = JoinSet::new();
    for server in bound {
        server.announce()?;
        running.spawn(server.spawn()?.stopped());
    }
    if let Some(gateway) = gateway {
        gateway.announce()?;
        let gateway = gateway.spawn();
        running.spawn(async move {
            gateway.stopped().await;
            Ok(())
        });
    }
    let mut failure = None;
    while let Some(stopped) = running.join_next().await {
        if let Err(error) = stopped.context("server task failed")? {
            // One server failing stops the others too.
            shutdown.request();
            failure.get_or_insert(error);
        }
    }
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// The gateway calls the services running here at their bound addresses, and
/// any other where the global `--<service>-addr` flags say (a list, or a
/// `dns:///` name, spreads its calls), with the global credentials.
fn gateway_upstreams(bound: &[BoundServer], client: &ClientOptions) -> UpstreamOptions {
    let mut upstreams = UpstreamOptions {
        transform_addr: client.transform_addr.clone(),
        database_addr: client.database_addr.clone(),
        weather_addr: client.weather_addr.clone(),
        chat_addr: client.chat_addr.clone(),
        credentials: client.credentials.clone(),
        resolution: client.resolution.clone(),
    };
    for server in bound {
        let mut addr = server.local_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let url = format!("http://{addr}");
        match server.name() {
            "transform" => upstreams.transform_addr = url,
            "database" => upstreams.database_addr = url,
            "weather" => upstreams.weather_addr = url,
            "chat" => upstreams.chat_addr = url,
            _ => {}
        }
    }
    upstreams
}
