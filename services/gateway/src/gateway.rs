//! [`Gateway`]: binds the enabled listeners, serves them, and shuts them down
//! with the rest of the process.

use std::{
    collections::BTreeMap,
    io::{self, Write as _},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
};
use quartet_runtime::{DrainSignal, Metrics, Shutdown, ShutdownPolicy};
use tokio::{
    net::{TcpListener, TcpStream, UdpSocket},
    sync::Semaphore,
    task::JoinHandle,
};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::{
    chat,
    connection::{ConnectionLimits, LineProtocol, serve_connection},
    options::{GatewayOptions, Listen, Protocol},
    ordered::Calls,
    protocol::{database::DatabaseLines, transform::TransformLines, weather::WeatherLines},
    reply::err,
    upstreams::Upstreams,
};

/// Labels of the connections gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

/// The gateway before binding: options, upstreams, shutdown, metrics.
#[derive(Debug)]
pub struct Gateway {
    options: GatewayOptions,
    upstreams: Upstreams,
    shutdown: Shutdown,
    policy: ShutdownPolicy,
    connections: Family<ProtocolLabel, Gauge>,
    transform_streams: Gauge,
}

impl Gateway {
    /// A gateway calling `upstreams`, stopping with `shutdown` (its delay and
    /// drain timeout from `policy`), counting its connections in `metrics`.
    pub fn new(
        options: GatewayOptions,
        upstreams: Upstreams,
        shutdown: Shutdown,
        policy: ShutdownPolicy,
        metrics: &Metrics,
    ) -> Self {
        let connections = Family::<ProtocolLabel, Gauge>::default();
        metrics.register(
            "gateway_connections",
            "Open text-protocol connections (UDP: sessions), by protocol",
            connections.clone(),
        );
        let transform_streams = Gauge::default();
        metrics.register(
            "gateway_transform_streams",
            "TransformStream calls open upstream, one per transform connection with one",
            transform_streams.clone(),
        );
        Self {
            options,
            upstreams,
            shutdown,
            policy,
            connections,
            transform_streams,
        }
    }

    /// Binds every enabled listener; `host` is where unconfigured listeners
    /// listen (0.0.0.0 for the gateway binary, 127.0.0.1 for `quartet serve`).
    pub async fn bind(self, host: IpAddr) -> io::Result<BoundGateway> {
        let mut tcp = Vec::new();
        let mut udp = None;
        for protocol in Protocol::ALL {
            let Listen::At(addr) = self.options.listen(protocol, host) else {
                continue;
            };
            let named = |error: io::Error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot listen on {addr} for {}: {error}", protocol.name()),
                )
            };
            if protocol == Protocol::ChatUdp {
                let socket = UdpSocket::bind(addr).await.map_err(named)?;
                udp = Some(socket);
            } else {
                tcp.push((protocol, TcpListener::bind(addr).await.map_err(named)?));
            }
        }
        Ok(BoundGateway {
            gateway: self,
            tcp,
            udp,
        })
    }
}

/// A gateway whose listeners are bound.
#[derive(Debug)]
pub struct BoundGateway {
    gateway: Gateway,
    tcp: Vec<(Protocol, TcpListener)>,
    udp: Option<UdpSocket>,
}

impl BoundGateway {
    /// The bound address of each enabled listener.
    pub fn addresses(&self) -> BTreeMap<Protocol, SocketAddr> {
        let mut addresses = BTreeMap::new();
        for (protocol, listener) in &self.tcp {
            if let Ok(addr) = listener.local_addr() {
                addresses.insert(*protocol, addr);
            }
        }
        if let Some(addr) = self
            .udp
            .as_ref()
            .and_then(|socket| socket.local_addr().ok())
        {
            addresses.insert(Protocol::ChatUdp, addr);
        }
        addresses
    }

    /// Prints `gateway <protocol> listening on ADDR` for each listener, on stdout.
    pub fn announce(&self) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        for (protocol, addr) in self.addresses() {
            writeln!(stdout, "gateway {} listening on {addr}", protocol.name())?;
        }
        stdout.flush()
    }

    /// Serves on background tasks.
    pub fn spawn(self) -> RunningGateway {
        let addresses = self.addresses();
        let shutdown = self.gateway.shutdown.clone();
        RunningGateway {
            addresses,
            shutdown,
            task: tokio::spawn(self.serve()),
        }
    }

    /// Serves until shutdown: then stops accepting, lets connections finish
    /// what they started (chat sessions are told and closed), up to the drain
    /// timeout.
    pub async fn serve(self) {
        let Self { gateway, tcp, udp } = self;
        let drain = gateway.shutdown.drain_signal();
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(gateway.options.max_connections));
        let limits = ConnectionLimits {
            max_line_bytes: gateway.options.max_line_bytes,
            idle_timeout: gateway.options.idle_timeout,
            max_pipelined: gateway.options.max_pipelined,
        };
        for (protocol, listener) in tcp {
            let handler = Handler::for_protocol(protocol, &gateway, limits);
            let accepting = Accepting {
                protocol,
                handler: Arc::new(handler),
                permits: permits.clone(),
                gauge: gateway
                    .connections
                    .get_or_create(&ProtocolLabel {
                        protocol: protocol.name(),
                    })
                    .clone(),
                tracker: tracker.clone(),
                drain: drain.clone(),
            };
            tracker.spawn(accepting.run(listener));
        }
        if let Some(socket) = udp {
            let udp_limits = chat::udp::UdpLimits {
                max_line_bytes: gateway.options.max_line_bytes,
                idle: gateway.options.idle_timeout,
                max_sessions: gateway.options.max_udp_sessions,
            };
            let gauge = gateway
                .connections
                .get_or_create(&ProtocolLabel {
                    protocol: Protocol::ChatUdp.name(),
                })
                .clone();
            tracker.spawn(chat::udp::serve(
                socket,
                gateway.upstreams.clone(),
                udp_limits,
                gauge,
                drain.clone(),
            ));
        }
        info!("gateway serving");

        gateway.shutdown.requested().await;
        tokio::time::sleep(gateway.policy.shutdown_delay).await;
        gateway.shutdown.start_draining();
        tracker.close();
        if tokio::time::timeout(gateway.policy.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                timeout = %humantime::format_duration(gateway.policy.drain_timeout),
                "gateway drain timed out; closing the connections still open"
            );
        }
        info!("gateway stopped");
    }
}

/// A gateway serving on background tasks.
#[derive(Debug)]
pub struct RunningGateway {
    addresses: BTreeMap<Protocol, SocketAddr>,
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

impl RunningGateway {
    /// Where `protocol` listens, if it is enabled.
    pub fn address(&self, protocol: Protocol) -> Option<SocketAddr> {
        self.addresses.get(&protocol).copied()
    }

    /// Waits for the gateway to stop by itself (after a shutdown request).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }

    /// Requests shutdown and waits for the gateway to stop.
    pub async fn stop(self) {
        self.shutdown.request();
        self.stopped().await;
    }
}

/// What serves one protocol's connections.
struct Handler {
    kind: HandlerKind,
    limits: ConnectionLimits,
}

enum HandlerKind {
    Lines(Box<dyn LineProtocol>),
    Chat(Box<Upstreams>),
}

impl Handler {
    fn for_protocol(protocol: Protocol, gateway: &Gateway, limits: ConnectionLimits) -> Self {
        let (upstreams, options) = (&gateway.upstreams, &gateway.options);
        let kind = match protocol {
            Protocol::Transform => HandlerKind::Lines(Box::new(TransformLines::new(
                upstreams.clone(),
                options.max_pipelined,
                options.max_idle_streams,
                gateway.transform_streams.clone(),
            ))),
            Protocol::Database => HandlerKind::Lines(Box::new(Calls(Arc::new(
                DatabaseLines::new(upstreams.clone()),
            )))),
            Protocol::Weather => HandlerKind::Lines(Box::new(Calls(Arc::new(WeatherLines::new(
                upstreams.clone(),
                options.default_station.clone(),
            ))))),
            Protocol::ChatTcp | Protocol::ChatUdp => HandlerKind::Chat(Box::new(upstreams.clone())),
        };
        Self { kind, limits }
    }

    async fn serve(&self, stream: TcpStream, drain: DrainSignal) {
        let limits = self.limits;
        match &self.kind {
            HandlerKind::Lines(protocol) => {
                serve_connection(stream, protocol.session(), limits, async move {
                    drain.draining().await;
                })
                .await;
            }
            HandlerKind::Chat(upstreams) => {
                chat::tcp::serve_connection(
                    stream,
                    upstreams.as_ref().clone(),
                    limits.max_line_bytes,
                    limits.idle_timeout,
                    drain,
                )
                .await;
            }
        }
    }
}

/// One TCP listener's accept loop.
struct Accepting {
    protocol: Protocol,
    handler: Arc<Handler>,
    permits: Arc<Semaphore>,
    gauge: Gauge,
    tracker: TaskTracker,
    drain: DrainSignal,
}

impl Accepting {
    async fn run(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                () = self.drain.draining() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    warn!(protocol = self.protocol.name(), error = %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                // Best effort: the refusal fits in the socket buffer of a new connection.
                let refusal = format!(
                    "{}\n",
                    err("UNAVAILABLE", "too many connections; try again later")
                );
                let _ = stream.try_write(refusal.as_bytes());
                continue;
            };
            let handler = self.handler.clone();
            let gauge = self.gauge.clone();
            let drain = self.drain.clone();
            gauge.inc();
            self.tracker.spawn(async move {
                handler.serve(stream, drain).await;
                gauge.dec();
                drop(permit);
            });
        }
    }
}
