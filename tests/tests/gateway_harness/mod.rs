//! Every service on port 0 (assembled by `quartet-suite`, as `quartet serve`
//! assembles them), a gateway in front of them, and line clients.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use quartet_chat::AnyBackplane;
use quartet_gateway::{Gateway, GatewayOptions, Protocol, RunningGateway, UpstreamOptions};
use quartet_runtime::{Metrics, ServerOptions, Shutdown, ShutdownPolicy};
use quartet_suite::{Handler, RunningSuite, Service, ServiceOptions, Suite};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    time::timeout,
};

pub use quartet_e2e::DEADLINE;

/// The four services, running.
pub struct Services {
    suite: RunningSuite,
    /// The chat server's backplane, to say what the service itself would refuse.
    pub chat_backplane: Arc<AnyBackplane>,
    _data: tempfile::TempDir,
}

impl Services {
    /// Every service; the database on an embedded store of its own.
    pub async fn start() -> Self {
        Self::start_with_database(None).await
    }

    /// Every service; the database on PostgreSQL at `database_url`, or on an
    /// embedded store of its own.
    pub async fn start_with_database(database_url: Option<String>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut options = ServiceOptions::embedded(data.path().to_owned());
        options.store.database_url = database_url;
        let chat = Handler::open(Service::Chat, &options).await.unwrap();
        let Handler::Chat(chat_handler) = &chat else {
            unreachable!("Handler::open(Service::Chat) builds the chat handler")
        };
        let chat_backplane = chat_handler.backplane().clone();
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listen = [Service::Transform, Service::Database, Service::Weather]
            .map(|service| (service, any_port));
        let suite = Suite::new(ServerOptions::default(), Shutdown::new(), Metrics::new())
            .bind(&listen, &options)
            .await
            .unwrap()
            .bind_handler(chat, any_port)
            .await
            .unwrap()
            .spawn()
            .unwrap();
        Self {
            suite,
            chat_backplane,
            _data: data,
        }
    }

    /// The gRPC URL of `service`.
    pub fn url(&self, service: Service) -> String {
        self.suite.server(service).unwrap().url()
    }

    /// The registry every service records into.
    pub fn metrics(&self) -> &Metrics {
        self.suite.server(Service::Transform).unwrap().metrics()
    }

    pub fn upstream_options(&self) -> UpstreamOptions {
        UpstreamOptions {
            transform_addr: self.url(Service::Transform),
            database_addr: self.url(Service::Database),
            weather_addr: self.url(Service::Weather),
            chat_addr: self.url(Service::Chat),
            ..UpstreamOptions::default()
        }
    }
}

/// Every service, and a gateway on port 0 in front of them.
pub async fn start(options: GatewayOptions) -> (Services, RunningGateway) {
    let services = Services::start().await;
    let gateway = gateway(options, &services.upstream_options()).await;
    (services, gateway)
}

/// A gateway on port 0 in front of `upstreams`.
pub async fn gateway(options: GatewayOptions, upstreams: &UpstreamOptions) -> RunningGateway {
    gateway_with_metrics(options, upstreams, &Metrics::new()).await
}

/// A gateway on port 0 in front of `upstreams`, recording into `metrics`.
pub async fn gateway_with_metrics(
    options: GatewayOptions,
    upstreams: &UpstreamOptions,
    metrics: &Metrics,
) -> RunningGateway {
    let policy = ShutdownPolicy {
        drain_timeout: Duration::from_secs(2),
        ..ShutdownPolicy::default()
    };
    Gateway::new(options, upstreams.clone(), Shutdown::new(), policy, metrics)
        .bind("127.0.0.1".parse().unwrap())
        .await
        .unwrap()
        .spawn()
}

/// The value of the metric sample `series` (`name{labels}`) in `metrics`, if
/// it is there.
pub fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics.encode().lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Waits until `series` in `metrics` reads `value`.
pub async fn until_sample(metrics: &Metrics, series: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while sample(metrics, series) != Some(value) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never read {value}; it reads {:?}",
            sample(metrics, series)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `count` lines in one string, the i-th `line(i)`: what a user pastes.
pub fn paste(count: usize, line: impl Fn(usize) -> String) -> String {
    (0..count).map(|i| line(i) + "\n").collect()
}

/// A telnet-like user: writes lines, reads lines.
pub struct LineClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl LineClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            reader: BufReader::new(read),
            writer: write,
        }
    }

    pub async fn connect_to(gateway: &RunningGateway, protocol: Protocol) -> Self {
        Self::connect(gateway.address(protocol).unwrap()).await
    }

    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// The next line, or `None` when the gateway closed the connection.
    pub async fn recv(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = timeout(DEADLINE, self.reader.read_line(&mut line))
            .await
            .expect("no answer in time")
            .unwrap();
        if read == 0 {
            return None;
        }
        assert!(line.ends_with('\n'), "answers end with a newline: {line:?}");
        Some(line.trim_end_matches('\n').to_owned())
    }

    pub async fn line(&mut self) -> String {
        self.recv()
            .await
            .expect("the gateway closed the connection")
    }

    /// Sends a request and returns its one-line answer.
    pub async fn ask(&mut self, line: &str) -> String {
        self.send(line).await;
        self.line().await
    }
}

/// A `nc -u`-like user of the UDP chat port.
pub struct UdpUser {
    pub socket: tokio::net::UdpSocket,
    buffer: Vec<u8>,
}

impl UdpUser {
    /// A socket of its own, connected to the gateway's UDP chat port.
    pub async fn new(gateway: &RunningGateway) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket
            .connect(gateway.address(Protocol::ChatUdp).unwrap())
            .await
            .unwrap();
        Self {
            socket,
            buffer: vec![0; 70_000],
        }
    }

    pub async fn send(&self, datagram: &str) {
        self.socket.send(datagram.as_bytes()).await.unwrap();
    }

    /// The next datagram, as text.
    pub async fn recv(&mut self) -> String {
        let len = timeout(DEADLINE, self.socket.recv(&mut self.buffer))
            .await
            .expect("no datagram in time")
            .unwrap();
        String::from_utf8(self.buffer[..len].to_vec()).unwrap()
    }

    /// The next datagram, which must be a cookie challenge (`COOKIE xxxx`).
    pub async fn challenge(&mut self) -> String {
        let challenge = self.recv().await;
        assert!(
            challenge.starts_with("COOKIE "),
            "expected a cookie, got {challenge:?}"
        );
        challenge
    }

    /// Sends `first`, expects the cookie challenge, echoes it and expects
    /// `OK cookie`: from then on the session is open and `first` is read.
    pub async fn start(&mut self, first: &str) {
        self.send(first).await;
        let challenge = self.challenge().await;
        self.send(&challenge).await;
        assert_eq!(self.recv().await, "OK cookie");
    }
}
