//! The accept loop: TCP connections admitted under a cap, brought through the
//! TLS handshake (when configured) and the HTTP/2 client preface, then handed to
//! the HTTP/2 server.
//!
//! Each connection is handled on its own task with one deadline for both
//! handshakes, so one slow or silent client cannot hold up the others, and a
//! client that never speaks holds its socket for a bounded time only. A client
//! whose first bytes are not the HTTP/2 preface (a plaintext client at a TLS
//! server, HTTP/1, a port scanner) is closed at once: these servers speak
//! HTTP/2 only. Every connection, in its handshake or served, holds one of the
//! listener's slots until it closes; one accepted with no slot free is closed
//! at once, so a flood exhausts neither file descriptors nor memory.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    time::Instant,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

use crate::{config::Limits, error::ServeError, reload::Reloading};

/// TCP keepalive on accepted sockets: finds peers that vanished without a FIN
/// even when HTTP/2 keepalive is turned down.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Connections through their handshakes but not yet taken by the HTTP/2 server.
pub(crate) const READY_CONNECTIONS: usize = 128;
/// Pause after an accept error (out of file descriptors, say) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Least time between two warnings that the connection cap is reached, so a
/// flood of refused connections cannot flood the log as well.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// The HTTP/2 client connection preface (RFC 9113, section 3.4): the first
/// bytes of every HTTP/2 client, so a connection that has not sent them is not
/// yet a client worth a place in the HTTP/2 server.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The connections of a listener, ready for the HTTP/2 server.
pub(crate) type Incoming = ReceiverStream<Result<Connection, io::Error>>;

/// A listener on `addr` (port 0 picks a free port).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// The byte stream under a connection, plain or TLS.
#[derive(Debug)]
enum Transport {
    /// Plaintext HTTP/2.
    Plain(TcpStream),
    /// HTTP/2 over TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection that has sent the HTTP/2 preface, as the HTTP/2 server sees it.
///
/// The preface was read to vet the client, so it is replayed here for hyper,
/// which reads it again; the connection's slot under the cap is held here, so
/// it is released exactly when hyper drops the connection.
#[derive(Debug)]
pub(crate) struct Connection {
    transport: Transport,
    /// How much of [`PREFACE`] hyper has been given back so far.
    preface_replayed: usize,
    /// Its slot under `--max-connections` (and its worker's load count).
    _hold: Hold,
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        let tcp = match &self.transport {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(tls) => tls.get_ref().0,
        };
        TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: tcp.peer_addr().ok(),
        }
    }
}

impl AsyncRead for Transport {
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

impl AsyncWrite for Transport {
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

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let unread = &PREFACE[this.preface_replayed..];
        if unread.is_empty() {
            return Pin::new(&mut this.transport).poll_read(cx, buf);
        }
        let len = unread.len().min(buf.remaining());
        buf.put_slice(&unread[..len]);
        this.preface_replayed += len;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().transport).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().transport).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().transport).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().transport).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.transport.is_write_vectored()
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

/// Accepts on `listener` until the returned stream is dropped, admitting at
/// most `limits.max_connections` connections at once and only those that
/// finish their handshakes within `limits.http2_handshake_timeout`; each is
/// brought through its handshakes on its own task of the calling runtime.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Option<Reloading<ServerConfig>>,
    limits: &Limits,
) -> Incoming {
    let (ready, receiver) = mpsc::channel(READY_CONNECTIONS);
    let deadline = limits.http2_handshake_timeout;
    let taken = ready.clone();
    tokio::spawn(accept_loop(
        listener,
        tls,
        limits.max_connections,
        async move { taken.closed().await },
        move |admitted| {
            tokio::spawn(establish(admitted, deadline, ready.clone()));
        },
    ));
    ReceiverStream::new(receiver)
}

/// A TCP connection admitted under the cap, before its handshakes.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) tcp: TcpStream,
    pub(crate) peer: SocketAddr,
    /// The TLS configuration current when it was accepted, if TLS is on.
    pub(crate) tls: Option<Arc<ServerConfig>>,
    pub(crate) hold: Hold,
}

/// What an open connection holds until it closes: its slot under
/// `--max-connections` and, when a connection worker serves it, its count in
/// that worker's load (which the dispatcher reads to pick the least loaded).
#[derive(Debug)]
pub(crate) struct Hold {
    _slot: OwnedSemaphorePermit,
    load: Option<Arc<AtomicUsize>>,
}

impl Hold {
    /// Counts the connection in `load` (its one worker's) until it closes.
    pub(crate) fn count_in(&mut self, load: Arc<AtomicUsize>) {
        load.fetch_add(1, Ordering::Relaxed);
        self.load = Some(load);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(load) = &self.load {
            load.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Accepts on `listener` until `until` completes, admitting at most
/// `max_connections` connections at once, and gives each admitted one to
/// `place`, which starts its handshakes (here or on a connection worker).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<Reloading<ServerConfig>>,
    max_connections: usize,
    until: impl Future<Output = ()>,
    mut place: impl FnMut(Admitted),
) {
    // More permits than a semaphore can count would make it panic; no machine
    // holds that many sockets anyway.
    let slots = Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS)));
    let mut refusals = RefusalWarnings::default();
    let listening = listener
        .local_addr()
        .map_or_else(|_| "an unknown address".to_owned(), |addr| addr.to_string());
    let mut until = std::pin::pin!(until);
    loop {
        let accepted = tokio::select! {
            () = &mut until => return,
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed rather than left in the backlog: the client fails
            // fast and can try another replica.
            drop(tcp);
            if let Some(refused) = refusals.refused(Instant::now()) {
                warn!(
                    listener = %listening,
                    max_connections,
                    refused,
                    "connection limit reached; closing new connections at once"
                );
            }
            continue;
        };
        place(Admitted {
            tcp,
            peer,
            tls: tls.as_ref().map(Reloading::current),
            hold: Hold {
                _slot: slot,
                load: None,
            },
        });
    }
}

/// Brings one connection through its TLS handshake (when it has a TLS
/// configuration) and the HTTP/2 preface within `deadline`, then hands it to
/// the HTTP/2 server; a connection that fails either, or is too slow, is
/// closed here.
pub(crate) async fn establish(
    admitted: Admitted,
    deadline: Duration,
    ready: mpsc::Sender<Result<Connection, io::Error>>,
) {
    let Admitted {
        tcp,
        peer,
        tls,
        hold,
    } = admitted;
    configure(&tcp);
    let handshakes = async {
        let mut transport = match tls {
            None => Transport::Plain(tcp),
            Some(config) => {
                let tls = TlsAcceptor::from(config).accept(tcp).await?;
                Transport::Tls(Box::new(tls))
            }
        };
        read_preface(&mut transport).await?;
        Ok::<_, io::Error>(transport)
    };
    let established = tokio::select! {
        // The server stopped accepting: no one will take this connection.
        () = ready.closed() => return,
        established = tokio::time::timeout(deadline, handshakes) => established,
    };
    match established {
        Ok(Ok(transport)) => {
            let connection = Connection {
                transport,
                preface_replayed: 0,
                _hold: hold,
            };
            let _ = ready.send(Ok(connection)).await;
        }
        Ok(Err(error)) => debug!(%peer, error = %error, "handshake failed; connection closed"),
        Err(_) => debug!(
            %peer,
            timeout = %humantime::format_duration(deadline),
            "handshake timed out; connection closed"
        ),
    }
}

/// Reads the HTTP/2 client preface and not a byte more (what follows is
/// hyper's to read), failing at the first read that strays from it, so a
/// client speaking anything else is closed at once rather than at the deadline.
async fn read_preface(transport: &mut Transport) -> io::Result<()> {
    let mut received = [0_u8; PREFACE.len()];
    let mut filled = 0;
    while filled < PREFACE.len() {
        let read = transport.read(&mut received[filled..]).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if received[filled..filled + read] != PREFACE[filled..filled + read] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an HTTP/2 client preface",
            ));
        }
        filled += read;
    }
    Ok(())
}

/// Decides when a refused connection is worth a warning: the first refusal,
/// then at most one per [`REFUSAL_WARNING_INTERVAL`], each carrying how many
/// were refused since the last.
#[derive(Debug, Default)]
struct RefusalWarnings {
    /// Refusals since the last warning, this one included.
    unreported: u64,
    /// When the last warning was due, if ever.
    last_warning: Option<Instant>,
}

impl RefusalWarnings {
    /// Counts one refusal at `now`; returns the number to report when a
    /// warning is due.
    fn refused(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        if let Some(last) = self.last_warning
            && now.duration_since(last) < REFUSAL_WARNING_INTERVAL
        {
            return None;
        }
        self.last_warning = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::{REFUSAL_WARNING_INTERVAL, RefusalWarnings};
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn a_burst_of_refusals_is_one_warning_and_the_next_counts_the_rest() {
        let mut warnings = RefusalWarnings::default();
        let start = Instant::now();
        assert_eq!(warnings.refused(start), Some(1));
        for step in 1..=1000 {
            let during = start + REFUSAL_WARNING_INTERVAL * step / 1001;
            assert_eq!(warnings.refused(during), None);
        }
        let later = start + REFUSAL_WARNING_INTERVAL;
        assert_eq!(warnings.refused(later), Some(1001));
        assert_eq!(warnings.refused(later + Duration::from_millis(1)), None);
        // After a quiet spell the next refusal warns again at once.
        let much_later = later + REFUSAL_WARNING_INTERVAL * 5;
        assert_eq!(warnings.refused(much_later), Some(2));
    }
}
