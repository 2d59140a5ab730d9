//! Chat over UDP: each datagram from an address is a line of that address's
//! session, and the session answers to that address. Sessions are created by a
//! sender's first datagram and end on `bye`/`QUIT` or after the idle timeout.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use prometheus_client::metrics::gauge::Gauge;
use quartet_runtime::DrainSignal;
use tokio::{net::UdpSocket, sync::mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::session::{self, Input, LineSink};
use crate::{reply::err, upstreams::Upstreams};

/// Datagrams queued for one session; a sender faster than its session loses
/// the excess, as UDP may.
const SESSION_QUEUE: usize = 32;

/// Sends each line as its own datagram to the session's peer.
struct UdpSink {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
}

impl LineSink for UdpSink {
    async fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.socket
            .send_to(line.as_bytes(), self.peer)
            .await
            .map(drop)
    }
}

/// The settings of the UDP chat listener.
#[derive(Debug, Clone)]
pub struct UdpLimits {
    /// Longest line (datagram).
    pub max_line_bytes: usize,
    /// A session with nothing to do for this long ends.
    pub idle: Duration,
    /// Sessions at once.
    pub max_sessions: usize,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Input>>>>;

fn lines_of(datagram: &[u8]) -> Vec<Input> {
    let datagram = datagram.strip_suffix(b"\n").unwrap_or(datagram);
    datagram
        .split(|&byte| byte == b'\n')
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match std::str::from_utf8(line) {
                Ok(text) => Input::Line(text.to_owned()),
                Err(_) => Input::NotUtf8,
            }
        })
        .collect()
}

/// Serves the UDP chat listener until `drain` fires.
pub async fn serve(
    socket: UdpSocket,
    upstreams: Upstreams,
    limits: UdpLimits,
    gauge: Gauge,
    drain: DrainSignal,
) {
    let socket = Arc::new(socket);
    let sessions: Sessions = Arc::default();
    // One byte more than a line, to tell "at the limit" from "over it".
    let mut buffer = vec![0_u8; limits.max_line_bytes + 2];
    loop {
        let received = tokio::select! {
            () = drain.draining() => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        let Ok((len, peer)) = received else {
            continue;
        };
        let inputs = if len > limits.max_line_bytes + 1 {
            vec![Input::TooLong]
        } else {
            lines_of(&buffer[..len])
        };
        let existing = sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .cloned();
        let queue = if let Some(queue) = existing {
            queue
        } else {
            let count = sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len();
            if count >= limits.max_sessions {
                let refusal = err(
                    "RESOURCE_EXHAUSTED",
                    "too many UDP chat sessions; try again later",
                );
                let _ = socket.send_to(refusal.as_bytes(), peer).await;
                continue;
            }
            start_session(
                &socket, peer, &upstreams, &limits, &sessions, &gauge, &drain,
            )
        };
        for input in inputs {
            if queue.try_send(input).is_err() {
                debug!(%peer, "udp chat session busy; datagram dropped");
            }
        }
    }
}

fn start_session(
    socket: &Arc<UdpSocket>,
    peer: SocketAddr,
    upstreams: &Upstreams,
    limits: &UdpLimits,
    sessions: &Sessions,
    gauge: &Gauge,
    drain: &DrainSignal,
) -> mpsc::Sender<Input> {
    let (queue, inputs) = mpsc::channel(SESSION_QUEUE);
    sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(peer, queue.clone());
    gauge.inc();
    let sink = UdpSink {
        socket: socket.clone(),
        peer,
    };
    let upstreams = upstreams.clone();
    let idle = limits.idle;
    let sessions = sessions.clone();
    let gauge = gauge.clone();
    let drain = drain.clone();
    tokio::spawn(async move {
        session::run(upstreams, ReceiverStream::new(inputs), sink, idle, drain).await;
        sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&peer);
        gauge.dec();
    });
    queue
}

#[cfg(test)]
mod tests {
    use super::{Input, lines_of};

    #[test]
    fn a_datagram_is_a_line_or_several_with_optional_endings() {
        assert_eq!(lines_of(b"NICK uma"), [Input::Line("NICK uma".into())]);
        assert_eq!(lines_of(b"NICK uma\r\n"), [Input::Line("NICK uma".into())]);
        assert_eq!(
            lines_of(b"NICK uma\nJOIN plaza\n"),
            [
                Input::Line("NICK uma".into()),
                Input::Line("JOIN plaza".into())
            ]
        );
        assert_eq!(lines_of(b"\xff\n"), [Input::NotUtf8]);
    }
}
