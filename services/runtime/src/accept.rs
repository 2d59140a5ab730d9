//! The accept loop: TCP connections, optionally through a TLS handshake, handed to
//! the HTTP/2 server as they become ready.
//!
//! Handshakes run on their own tasks with a deadline, so one slow or silent
//! client cannot hold up the others; a plaintext client at a TLS server fails
//! its handshake and is dropped.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

use crate::reload::Reloading;

/// TCP keepalive on accepted sockets: finds peers that vanished without a FIN
/// even when HTTP/2 keepalive is turned down.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted but not yet taken by the HTTP/2 server.
const READY_CONNECTIONS: usize = 128;
/// Pause after an accept error (out of file descriptors, say) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// An accepted connection, plain or TLS.
#[derive(Debug)]
pub(crate) enum Connection {
    /// Plaintext HTTP/2.
    Plain(TcpStream),
    /// HTTP/2 over TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        let tcp = match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref().0,
        };
        TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: tcp.peer_addr().ok(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }
}

fn configure(tcp: &TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        debug!(error = %error, "cannot set TCP_NODELAY");
    }
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    if let Err(error) = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
        debug!(error = %error, "cannot set TCP keepalive");
    }
}

/// Accepts on `listener` until the returned stream is dropped.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Option<Reloading<ServerConfig>>,
) -> ReceiverStream<Result<Connection, io::Error>> {
    let (ready, receiver) = mpsc::channel(READY_CONNECTIONS);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = ready.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(error = %error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            configure(&tcp);
            match &tls {
                None => {
                    if ready.send(Ok(Connection::Plain(tcp))).await.is_err() {
                        return;
                    }
                }
                Some(config) => {
                    tokio::spawn(handshake(tcp, peer, config.current(), ready.clone()));
                }
            }
        }
    });
    ReceiverStream::new(receiver)
}

async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    ready: mpsc::Sender<Result<Connection, io::Error>>,
) {
    let accepted =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(tcp)).await;
    match accepted {
        Ok(Ok(tls)) => {
            let _ = ready.send(Ok(Connection::Tls(Box::new(tls)))).await;
        }
        Ok(Err(error)) => debug!(%peer, error = %error, "tls handshake failed"),
        Err(_) => debug!(%peer, "tls handshake timed out"),
    }
}
