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
use quartet_runtime::{DrainSignal, Metrics, ServerOptions, Shutdown, ShutdownPolicy};
use tokio::{
    net::{TcpListener, UdpSocket},
    sync::Semaphore,
    task::JoinHandle,
};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::{
    chat,
    connection::ConnectionLimits,
    options::{GatewayOptions, Listen, Protocol, UpstreamOptions},
    reply::err,
    upstreams::Upstreams,
    web::{self, WebLimits, WebState, origin::AllowedOrigins},
    workers::{WorkerConfig, Workers},
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
    upstreams: UpstreamOptions,
    shutdown: Shutdown,
    policy: ShutdownPolicy,
    connections: Family<ProtocolLabel, Gauge>,
    transform_streams: Gauge,
}

impl Gateway {
    /// A gateway calling the services at `upstreams`, stopping with
    /// `shutdown` (its delay and drain timeout from `policy`), counting its
    /// connections in `metrics`.
    pub fn new(
        options: GatewayOptions,
        upstreams: UpstreamOptions,
        shutdown: Shutdown,
        policy: ShutdownPolicy,
        metrics: &Metrics,
    ) -> Self {
        let connections = Family::<ProtocolLabel, Gauge>::default();
        metrics.register(
            "gateway_connections",
            "Open text-protocol connections (UDP: sessions; web: WebSockets), by protocol",
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

    /// A gateway beside the servers of a process, under their flags: the
    /// process's `--max-connections` caps its text connections too, and its
    /// shutdown delay and drain timeout stop it.
    pub fn under(
        options: GatewayOptions,
        upstreams: UpstreamOptions,
        server: &ServerOptions,
        shutdown: Shutdown,
        metrics: &Metrics,
    ) -> Self {
        let options = GatewayOptions {
            max_connections: server.limits.max_connections,
            ..options
        };
        Self::new(
            options,
            upstreams,
            shutdown,
            server.shutdown.clone(),
            metrics,
        )
    }

    /// The connections gauge of `protocol`.
    fn gauge(&self, protocol: Protocol) -> Gauge {
        self.connections
            .get_or_create(&ProtocolLabel {
                protocol: protocol.name(),
            })
            .clone()
    }

    /// The bounds of the UDP chat sessions.
    fn udp_limits(&self) -> chat::udp::UdpLimits {
        chat::udp::UdpLimits {
            max_line_bytes: self.options.max_line_bytes,
            idle: self.options.idle_timeout,
            max_sessions: self.options.max_udp_sessions,
            reclaim_after: self.options.udp_reclaim_after,
        }
    }

    /// What the web door's handlers share.
    fn web_state(&self, upstreams: Upstreams, tracker: &TaskTracker) -> WebState {
        WebState {
            upstreams,
            limits: WebLimits {
                max_line_bytes: self.options.max_line_bytes,
                idle: self.options.idle_timeout,
                ping_interval: self.options.web_ping_interval,
            },
            gauge: self.gauge(Protocol::Web),
            origins: Arc::new(AllowedOrigins::new(&self.options.web_allowed_origins)),
            drain: self.shutdown.drain_signal(),
            tracker: tracker.clone(),
            default_station: self.options.default_station.clone(),
        }
    }

    /// Binds every enabled listener and starts the worker threads; `host` is
    /// where unconfigured listeners listen (0.0.0.0 for the gateway binary,
    /// 127.0.0.1 for `quartet serve`). Fails when a port cannot be bound or the
    /// upstream options cannot be used (a TLS file that cannot be read).
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
        let tracker = TaskTracker::new();
        let config = WorkerConfig {
            options: self.options.clone(),
            upstreams: self.upstreams.clone(),
            limits: ConnectionLimits {
                max_line_bytes: self.options.max_line_bytes,
                idle_timeout: self.options.idle_timeout,
                max_pipelined: self.options.max_pipelined,
            },
            transform_streams: self.transform_streams.clone(),
            tracker: tracker.clone(),
            drain: self.shutdown.drain_signal(),
        };
        let workers = if tcp.is_empty() {
            None
        } else {
            Some(Workers::start(self.options.worker_count(), &config).await?)
        };
        let own_upstreams = || {
            Upstreams::new(&self.upstreams, self.options.upstream_timeout)
                .map_err(|status| io::Error::other(status.message().to_owned()))
        };
        let udp = match udp {
            Some(socket) => Some((socket, own_upstreams()?)),
            None => None,
        };
        let web = match self.options.listen(Protocol::Web, host) {
            Listen::At(addr) => {
                let listener = TcpListener::bind(addr).await.map_err(|error| {
                    io::Error::new(
                        error.kind(),
                        format!("cannot listen on {addr} for web: {error}"),
                    )
                })?;
                Some((listener, own_upstreams()?))
            }
            Listen::Off => None,
        };
        Ok(BoundGateway {
            gateway: self,
            tcp,
            udp,
            web,
            workers,
            tracker,
        })
    }
}

/// A gateway whose listeners are bound and whose workers are running.
pub struct BoundGateway {
    gateway: Gateway,
    tcp: Vec<(Protocol, TcpListener)>,
    /// The UDP chat socket, served on the caller's runtime with its own channels.
    udp: Option<(UdpSocket, Upstreams)>,
    /// The web door's listener, served on the caller's runtime with its own channels.
    web: Option<(TcpListener, Upstreams)>,
    workers: Option<Workers>,
    /// Every connection and session, to wait for on drain.
    tracker: TaskTracker,
}

impl std::fmt::Debug for BoundGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundGateway")
            .field("addresses", &self.addresses())
            .finish_non_exhaustive()
    }
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
            .and_then(|(socket, _)| socket.local_addr().ok())
        {
            addresses.insert(Protocol::ChatUdp, addr);
        }
        if let Some(addr) = self
            .web
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
        {
            addresses.insert(Protocol::Web, addr);
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
        let Self {
            gateway,
            tcp,
            udp,
            web,
            workers,
            tracker,
        } = self;
        let drain = gateway.shutdown.drain_signal();
        let workers = workers.map(Arc::new);
        let permits = Arc::new(Semaphore::new(gateway.options.max_connections));
        for (protocol, listener) in tcp {
            let Some(workers) = workers.clone() else {
                break;
            };
            let accepting = Accepting {
                protocol,
                workers,
                permits: permits.clone(),
                gauge: gateway.gauge(protocol),
                drain: drain.clone(),
            };
            tracker.spawn(accepting.run(listener));
        }
        if let Some((socket, upstreams)) = udp {
            tracker.spawn(chat::udp::serve(
                socket,
                upstreams,
                gateway.udp_limits(),
                gateway.gauge(Protocol::ChatUdp),
                drain.clone(),
            ));
        }
        if let Some((listener, upstreams)) = web {
            let state = gateway.web_state(upstreams, &tracker);
            tracker.spawn(web::serve(listener, permits, state));
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
        // The accept loops have ended, so this is the last handle.
        if let Some(workers) = workers.and_then(Arc::into_inner) {
            workers.stop().await;
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

/// One TCP listener's accept loop.
struct Accepting {
    protocol: Protocol,
    workers: Arc<Workers>,
    permits: Arc<Semaphore>,
    gauge: Gauge,
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
            self.workers
                .serve(self.protocol, stream, permit, self.gauge.clone());
        }
    }
}
