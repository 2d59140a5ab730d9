//! The web port's listener: every connection, a page load's as much as a
//! WebSocket's, holds one of the gateway's connection permits (the budget the
//! text ports share) for as long as it is open, and is closed once it has
//! read and written nothing for the idle timeout. So the web port cannot be
//! used to hold more connections than the text ports, nor to hold them for
//! ever (axum's server has no idle or header timeout of its own).

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Duration, Instant, Sleep, sleep},
};
use tracing::warn;

/// What a connection past the limit is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 54\r\nconnection: close\r\n\r\nERR UNAVAILABLE too many connections; try again later\n";

/// Accepts connections within the gateway's connection budget.
#[derive(Debug)]
pub struct LimitedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl LimitedListener {
    /// Accepts on `listener`, each connection taking a permit from `permits`
    /// and closed after `idle` without traffic.
    pub fn new(listener: TcpListener, permits: Arc<Semaphore>, idle: Duration) -> Self {
        Self {
            listener,
            permits,
            idle,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Permitted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Permitted, SocketAddr) {
        loop {
            let (stream, addr) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(protocol = "web", error = %error, "accept failed");
                    sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                // Best effort: the refusal fits in the socket buffer of a new connection.
                let _ = stream.try_write(REFUSAL);
                continue;
            };
            let connection = Permitted {
                stream,
                idle: Box::pin(sleep(self.idle)),
                patience: self.idle,
                _permit: permit,
            };
            return (connection, addr);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection holding its permit, with an idle deadline that every read and
/// write pushes back.
#[derive(Debug)]
pub struct Permitted {
    stream: TcpStream,
    idle: Pin<Box<Sleep>>,
    patience: Duration,
    _permit: OwnedSemaphorePermit,
}

impl Permitted {
    /// Traffic: the deadline moves.
    fn active(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.patience);
    }

    /// Waiting: an error once the deadline has passed.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Permitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(read) => {
                self.active();
                Poll::Ready(read)
            }
            Poll::Pending => self.waiting(cx),
        }
    }
}

impl AsyncWrite for Permitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(written) => {
                self.active();
                Poll::Ready(written)
            }
            Poll::Pending => self.waiting(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
