//! The services and a gateway with its web door on port 0 in this process
//! (from the gateway tests' harness), and what only a browser door needs: a
//! WebSocket user, plain HTTP, and frames written by hand.

use std::net::SocketAddr;

use futures_util::{SinkExt as _, StreamExt as _};
use quartet_gateway::{GatewayOptions, Protocol, RunningGateway};

use super::gateway_harness::Services;
use tokio::{io::AsyncWriteExt as _, net::TcpStream, time::timeout};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        self, Message,
        client::IntoClientRequest as _,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

pub use super::gateway_harness::{DEADLINE, LineClient as LineUser};

/// Every service, and a gateway in front of them with its web door.
pub struct Quartet {
    pub gateway: RunningGateway,
    _services: Services,
}

impl Quartet {
    /// Everything on port 0, with the gateway's default options.
    pub async fn start() -> Self {
        Self::with(GatewayOptions::ephemeral()).await
    }

    /// Everything on port 0, the gateway under `options`.
    pub async fn with(options: GatewayOptions) -> Self {
        let (services, gateway) = super::gateway_harness::start(options).await;
        Self {
            gateway,
            _services: services,
        }
    }

    pub fn web(&self) -> SocketAddr {
        self.gateway.address(Protocol::Web).unwrap()
    }

    pub fn chat_tcp(&self) -> SocketAddr {
        self.gateway.address(Protocol::ChatTcp).unwrap()
    }

    /// A telnet user on the chat port who has sent NICK and `join`; the user
    /// and its `OK joined` line.
    pub async fn telnet_user(&self, nick: &str, join: &str) -> (LineUser, String) {
        let mut user = LineUser::connect(self.chat_tcp()).await;
        assert_eq!(
            user.ask(&format!("NICK {nick}")).await,
            format!("OK nick {nick}")
        );
        let joined = user.ask(join).await;
        assert!(joined.starts_with("OK joined "), "{joined}");
        (user, joined)
    }

    /// `ws://<web door><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.web())
    }
}

/// A WebSocket user.
pub struct WebUser {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code and reason.
    Closed(u16, String),
    /// The connection ended without a close frame.
    Dropped,
}

impl WebUser {
    /// Connects to `url` with no `Origin` (not a browser).
    pub async fn connect(url: &str) -> Self {
        Self::try_connect(url, None).await.unwrap()
    }

    /// Connects to `url` sending `origin`, if any; the handshake's error otherwise.
    pub async fn try_connect(url: &str, origin: Option<&str>) -> Result<Self, tungstenite::Error> {
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let (socket, _) = timeout(DEADLINE, connect_async(request))
            .await
            .expect("no handshake in time")?;
        Ok(Self { socket })
    }

    pub async fn send(&mut self, line: &str) {
        self.socket.send(Message::text(line)).await.unwrap();
    }

    pub async fn send_message(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// The next text frame, or how the socket ended.
    pub async fn recv(&mut self) -> Result<String, Ended> {
        loop {
            let next = timeout(DEADLINE, self.socket.next())
                .await
                .expect("no frame in time");
            match next {
                Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return Err(Ended::Closed(u16::from(code), reason.as_str().to_owned()));
                }
                Some(Ok(Message::Close(None))) => {
                    return Err(Ended::Closed(u16::from(CloseCode::Status), String::new()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Ended::Dropped),
            }
        }
    }

    pub async fn line(&mut self) -> String {
        self.recv().await.expect("the socket ended")
    }

    pub async fn ask(&mut self, line: &str) -> String {
        self.send(line).await;
        self.line().await
    }

    /// The next `n` lines.
    pub async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            lines.push(self.line().await);
        }
        lines
    }

    /// Reads until the socket ends; the code and reason it closed with.
    pub async fn ended(&mut self) -> Ended {
        loop {
            if let Err(ended) = self.recv().await {
                return ended;
            }
        }
    }
}

/// One HTTP/1.1 GET on a fresh connection: the status line and headers
/// (lower-cased names), and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response),
    )
    .await
    .expect("no response in time")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

/// A WebSocket opened by hand over `TcpStream`, for what a well-behaved client
/// library never does (stay silent to pings, send bytes that are not UTF-8):
/// the stream just after the server's `101` head.
pub async fn raw_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let handshake = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = timeout(DEADLINE, tokio::io::AsyncReadExt::read_u8(&mut stream))
            .await
            .expect("no handshake answer in time")
            .unwrap();
        head.push(byte);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// A client frame: final, with `opcode`, masked (as RFC 6455 requires of
/// clients) with a zero mask, so the payload goes as it is.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "only small frames");
    let mut frame = vec![
        0x80 | opcode,
        0x80 | u8::try_from(payload.len()).unwrap(),
        0,
        0,
        0,
        0,
    ];
    frame.extend_from_slice(payload);
    frame
}

/// Everything the server sends until it closes the connection, as
/// `(opcode, payload)` of each (small, unmasked) frame.
pub async fn server_frames(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut received = Vec::new();
    timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_to_end(stream, &mut received),
    )
    .await
    .expect("the server never closed the connection")
    .unwrap();
    let mut bytes = received.as_slice();
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let len = usize::from(bytes[1] & 0x7f);
        assert!(len < 126, "only small frames expected");
        frames.push((opcode, bytes[2..2 + len].to_vec()));
        bytes = &bytes[2 + len..];
    }
    frames
}

/// The code and reason of the last frame, which must be a close.
pub fn last_close(frames: &[(u8, Vec<u8>)]) -> (u16, String) {
    let (opcode, payload) = frames.last().expect("no frame at all");
    assert_eq!(*opcode, 0x8, "the last frame is a close: {frames:?}");
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    (code, String::from_utf8_lossy(&payload[2..]).into_owned())
}
