//! The gateway's flags: which listeners run where, and the bounds every
//! connection lives within.

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use clap::Args;
use quartet_client::{Credentials, Resolution, parse_address};

/// The web door's port (DESIGN.md).
pub const DEFAULT_WEB_PORT: u16 = 7080;

/// Where a listener listens, or that it does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Listen on this address (port 0 picks a free port).
    At(SocketAddr),
    /// This listener is turned off.
    Off,
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        text.parse()
            .map(Self::At)
            .map_err(|_| format!("expected ADDRESS:PORT or \"off\", got {text:?}"))
    }
}

/// The text protocols, each on its own listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `UPPER`, `LOWER`, `REVERSE` over TCP.
    Transform,
    /// `ADD`/`ALTA`, `GET`/`CONSULTA`, ... over TCP.
    Database,
    /// `MIN_TEMP`, `MAX_TEMP`, ... over TCP.
    Weather,
    /// `NICK`, `JOIN`, lines, `bye` over TCP.
    ChatTcp,
    /// The same chat protocol, one datagram per line.
    ChatUdp,
    /// The web door: the page, and the chat and weather protocols over
    /// WebSockets (HTTP). Not in [`Protocol::ALL`]: it has a server of its own.
    Web,
}

impl Protocol {
    /// Every text protocol, in port order.
    pub const ALL: [Self; 5] = [
        Self::Transform,
        Self::Database,
        Self::Weather,
        Self::ChatTcp,
        Self::ChatUdp,
    ];

    /// The name in logs, metrics and announce lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Transform => "transform",
            Self::Database => "database",
            Self::Weather => "weather",
            Self::ChatTcp => "chat",
            Self::ChatUdp => "chat-udp",
            Self::Web => "web",
        }
    }

    /// The default port (DESIGN.md).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Transform => 7001,
            Self::Database => 7002,
            Self::Weather => 7003,
            Self::ChatTcp | Self::ChatUdp => 7004,
            Self::Web => DEFAULT_WEB_PORT,
        }
    }
}

/// The gateway's listeners and limits.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct GatewayOptions {
    /// Transform text protocol (TCP), or "off" [default: 0.0.0.0:7001; quartet serve: 127.0.0.1:7001].
    #[arg(long, env = "QUARTET_TRANSFORM_TEXT_LISTEN")]
    pub transform_text_listen: Option<Listen>,

    /// Database text protocol (TCP), or "off" [default: port 7002].
    #[arg(long, env = "QUARTET_DATABASE_TEXT_LISTEN")]
    pub database_text_listen: Option<Listen>,

    /// Weather text protocol (TCP), or "off" [default: port 7003].
    #[arg(long, env = "QUARTET_WEATHER_TEXT_LISTEN")]
    pub weather_text_listen: Option<Listen>,

    /// Chat text protocol over TCP, or "off" [default: port 7004].
    #[arg(long, env = "QUARTET_CHAT_TEXT_LISTEN")]
    pub chat_text_listen: Option<Listen>,

    /// Chat text protocol over UDP, or "off" [default: port 7004].
    #[arg(long, env = "QUARTET_CHAT_UDP_LISTEN")]
    pub chat_udp_listen: Option<Listen>,

    /// The web page and its WebSockets (HTTP), or "off" [default: 0.0.0.0:7080; quartet serve: 127.0.0.1:7080].
    #[arg(long, env = "QUARTET_WEB_LISTEN")]
    pub web_listen: Option<Listen>,

    /// Origins (`scheme://host[:port]`, comma-separated) whose pages may open
    /// the WebSockets besides the gateway's own page; a browser upgrade from
    /// any other origin is refused with 403, so another site cannot chat in
    /// its visitors' name.
    #[arg(long, env = "QUARTET_WEB_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub web_allowed_origins: Vec<String>,

    /// How often a WebSocket is pinged; one that has not answered the
    /// previous ping by the next is closed (a vanished browser, a dead NAT).
    #[arg(long, env = "QUARTET_WEB_PING_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration)]
    pub web_ping_interval: Duration,

    /// Longest line a client may send, in bytes; longer ones get `ERR line too
    /// long` and the connection closes.
    #[arg(long, env = "QUARTET_MAX_LINE_BYTES", default_value_t = 64 * 1024)]
    pub max_line_bytes: usize,

    /// A connection (or UDP session) with nothing to do for this long is closed.
    #[arg(long, env = "QUARTET_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// TCP connections open at once across every text listener; more are
    /// refused with one `ERR` line. Not a flag of its own: binaries copy the
    /// runtime's `--max-connections` here, so one flag caps the process (two
    /// flags of that name would collide).
    #[arg(skip = 16_384_usize)]
    pub max_connections: usize,

    /// UDP chat sessions (sender addresses) at once.
    #[arg(long, env = "QUARTET_MAX_UDP_SESSIONS", default_value_t = 4096)]
    pub max_udp_sessions: usize,

    /// With every UDP session slot taken, a session whose sender has sent
    /// nothing for this long gives its slot to a new sender.
    #[arg(long, env = "QUARTET_UDP_RECLAIM_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub udp_reclaim_after: Duration,

    /// Requests one connection may have in flight upstream at once; pipelined
    /// requests beyond it wait to be read.
    #[arg(long, env = "QUARTET_MAX_PIPELINED", default_value_t = 64)]
    pub max_pipelined: usize,

    /// Transform streams held open upstream (one per text connection that has
    /// transformed) past which a connection gives its stream back as soon as
    /// it has nothing in flight; services admit a bounded number of streams
    /// per connection (`--max-concurrent-streams`, 1,024 by default).
    #[arg(long, env = "QUARTET_MAX_IDLE_STREAMS", default_value_t = 256)]
    pub max_idle_streams: usize,

    /// Threads serving text connections, each with its own event loop and its
    /// own upstream connections [default: one per CPU].
    #[arg(long, env = "QUARTET_GATEWAY_WORKERS")]
    pub workers: Option<usize>,

    /// Deadline of each upstream call (sent as `grpc-timeout`); a transform
    /// stream that answers nothing for this long fails its pending lines.
    #[arg(long, env = "QUARTET_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Station the weather commands read when none is named.
    #[arg(long, env = "QUARTET_DEFAULT_STATION", default_value = "madrid")]
    pub default_station: String,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            transform_text_listen: None,
            database_text_listen: None,
            weather_text_listen: None,
            chat_text_listen: None,
            chat_udp_listen: None,
            web_listen: None,
            web_allowed_origins: Vec::new(),
            web_ping_interval: Duration::from_secs(20),
            max_line_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(300),
            max_connections: 16_384,
            max_udp_sessions: 4096,
            udp_reclaim_after: Duration::from_secs(30),
            max_pipelined: 64,
            max_idle_streams: 256,
            workers: None,
            upstream_timeout: Duration::from_secs(10),
            default_station: "madrid".into(),
        }
    }
}

impl GatewayOptions {
    /// Where `protocol` listens: as configured, else its default port on `host`.
    pub fn listen(&self, protocol: Protocol, host: IpAddr) -> Listen {
        let configured = match protocol {
            Protocol::Transform => self.transform_text_listen,
            Protocol::Database => self.database_text_listen,
            Protocol::Weather => self.weather_text_listen,
            Protocol::ChatTcp => self.chat_text_listen,
            Protocol::ChatUdp => self.chat_udp_listen,
            Protocol::Web => self.web_listen,
        };
        configured.unwrap_or(Listen::At(SocketAddr::new(host, protocol.default_port())))
    }

    /// How many worker threads serve text connections.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// Every listener on port 0 of 127.0.0.1, for tests.
    pub fn ephemeral() -> Self {
        let any = Some(Listen::At(SocketAddr::from(([127, 0, 0, 1], 0))));
        Self {
            transform_text_listen: any,
            database_text_listen: any,
            weather_text_listen: any,
            chat_text_listen: any,
            chat_udp_listen: any,
            web_listen: any,
            ..Self::default()
        }
    }
}

/// Where the gRPC services are, and how to authenticate to them.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct UpstreamOptions {
    /// The transform service: a URL, a comma-separated list of URLs, or
    /// dns:///host:port (every address of the name; calls are balanced).
    #[arg(long, env = "QUARTET_TRANSFORM_ADDR", default_value = "http://127.0.0.1:50051", value_parser = parse_address)]
    pub transform_addr: String,

    /// The people database.
    #[arg(long, env = "QUARTET_DATABASE_ADDR", default_value = "http://127.0.0.1:50052", value_parser = parse_address)]
    pub database_addr: String,

    /// The weather service.
    #[arg(long, env = "QUARTET_WEATHER_ADDR", default_value = "http://127.0.0.1:50053", value_parser = parse_address)]
    pub weather_addr: String,

    /// The chat service.
    #[arg(long, env = "QUARTET_CHAT_ADDR", default_value = "http://127.0.0.1:50054", value_parser = parse_address)]
    pub chat_addr: String,

    /// TLS and token for the upstream calls.
    #[command(flatten)]
    pub credentials: Credentials,

    /// How dns:/// upstream addresses are kept current.
    #[command(flatten)]
    pub resolution: Resolution,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            transform_addr: "http://127.0.0.1:50051".into(),
            database_addr: "http://127.0.0.1:50052".into(),
            weather_addr: "http://127.0.0.1:50053".into(),
            chat_addr: "http://127.0.0.1:50054".into(),
            credentials: Credentials::default(),
            resolution: Resolution::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Listen;

    #[test]
    fn listen_is_an_address_or_off() {
        assert_eq!("off".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!("OFF".parse::<Listen>(), Ok(Listen::Off));
        assert!(matches!(
            "127.0.0.1:7001".parse::<Listen>(),
            Ok(Listen::At(_))
        ));
        assert!("7001".parse::<Listen>().is_err());
    }
}
