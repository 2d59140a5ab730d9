//! Chat over UDP: each datagram from an address is a line (or several) of
//! that address's session, and the session answers to that address. Sessions
//! end on `bye`/`QUIT` or after the idle timeout.
//!
//! UDP senders can lie about their address, so a session starts only once its
//! address has proven it receives our datagrams, and until then the gateway
//! sends it at most three times the bytes it received (the anti-amplification
//! rule of QUIC, RFC 9000 section 8). A new sender's datagram is answered with
//! `COOKIE <8 hex digits>` alone (when three times its size allows); the
//! sender echoes `COOKIE <cookie>`, is answered `OK cookie`, and its session
//! starts with the lines of its first datagram, kept for a short while, then
//! the rest of the echoing datagram. Cookies are stateless ([`CookieJar`]).
//!
//! Under pressure (every session slot taken), a session that has sent
//! nothing for `--udp-reclaim-after` (30 s) gives its slot to a new sender.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use prometheus_client::metrics::gauge::Gauge;
use quartet_runtime::DrainSignal;
use tokio::{net::UdpSocket, sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::{
    cookie::{self, CookieJar},
    session::{self, Input, LineSink},
};
use crate::{protocol::split_command, reply::err, upstreams::Upstreams};

/// Datagrams queued for one session; a sender faster than its session loses
/// the excess, as UDP may.
const SESSION_QUEUE: usize = 32;
/// How many times the bytes received from an unvalidated address the gateway
/// may send to it (RFC 9000, section 8.1).
pub const AMPLIFICATION_LIMIT: usize = 3;
/// The verb of the challenge and of its echo.
pub const COOKIE_VERB: &str = "COOKIE";
/// First datagrams kept while their senders fetch a cookie; past this the
/// oldest is forgotten (its sender types its first line again).
const PENDING_SENDERS: usize = 1024;
/// Longest first datagram kept for replay.
const PENDING_BYTES: usize = 512;
/// How long a first datagram is kept for replay.
const PENDING_FOR: Duration = Duration::from_secs(30);

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
    /// With every slot taken, a session silent this long gives its slot to a
    /// new sender.
    pub reclaim_after: Duration,
}

/// A validated sender's session.
struct Session {
    queue: mpsc::Sender<Input>,
    /// Tells this session from a later one of the same address.
    id: u64,
    /// When the sender last sent a datagram.
    heard: Instant,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, Session>>>;

/// The first datagram of a sender that has not echoed its cookie yet.
struct Pending {
    inputs: Vec<Input>,
    at: Instant,
}

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

/// The cookie a line echoes, if it is `COOKIE <cookie>`.
fn echoed_cookie(input: &Input) -> Option<&str> {
    let Input::Line(line) = input else {
        return None;
    };
    let (verb, cookie) = split_command(line);
    (verb == COOKIE_VERB).then_some(cookie)
}

/// Serves the UDP chat listener until `drain` fires.
pub async fn serve(
    socket: UdpSocket,
    upstreams: Upstreams,
    limits: UdpLimits,
    gauge: Gauge,
    drain: DrainSignal,
) {
    let Some(jar) = CookieJar::new() else {
        warn!("no system randomness for UDP cookies; UDP chat is off");
        return;
    };
    let mut listener = Listener {
        socket: Arc::new(socket),
        upstreams,
        limits,
        gauge,
        drain,
        jar,
        sessions: Arc::default(),
        pending: HashMap::new(),
        next_id: 0,
    };
    // One byte more than a line, to tell "at the limit" from "over it".
    let mut buffer = vec![0_u8; listener.limits.max_line_bytes + 2];
    loop {
        let received = tokio::select! {
            () = listener.drain.draining() => return,
            received = listener.socket.recv_from(&mut buffer) => received,
        };
        let Ok((len, peer)) = received else {
            continue;
        };
        let inputs = if len > listener.limits.max_line_bytes + 1 {
            vec![Input::TooLong]
        } else {
            lines_of(&buffer[..len])
        };
        listener.datagram(peer, len, inputs).await;
    }
}

/// The UDP listener's state.
struct Listener {
    socket: Arc<UdpSocket>,
    upstreams: Upstreams,
    limits: UdpLimits,
    gauge: Gauge,
    drain: DrainSignal,
    jar: CookieJar,
    sessions: Sessions,
    pending: HashMap<SocketAddr, Pending>,
    next_id: u64,
}

impl Listener {
    async fn datagram(&mut self, peer: SocketAddr, len: usize, inputs: Vec<Input>) {
        let now = Instant::now();
        let known = {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            sessions.get_mut(&peer).map(|session| {
                session.heard = now;
                session.queue.clone()
            })
        };
        if let Some(queue) = known {
            deliver(&queue, peer, inputs);
            return;
        }
        let window = cookie::window(SystemTime::now());
        let validated = inputs
            .first()
            .and_then(echoed_cookie)
            .is_some_and(|cookie| self.jar.check(peer, cookie, window));
        if validated {
            self.admit(peer, inputs.into_iter().skip(1), now).await;
            return;
        }
        if !inputs.iter().any(|input| echoed_cookie(input).is_some()) {
            self.remember(peer, len, inputs, now);
        }
        let challenge = format!("{COOKIE_VERB} {}", self.jar.issue(peer, window));
        if challenge.len() <= AMPLIFICATION_LIMIT * len {
            let _ = self.socket.send_to(challenge.as_bytes(), peer).await;
        }
    }

    /// Keeps a first datagram to replay once its sender is validated.
    fn remember(&mut self, peer: SocketAddr, len: usize, inputs: Vec<Input>, now: Instant) {
        if len > PENDING_BYTES || inputs.contains(&Input::TooLong) {
            return;
        }
        self.pending
            .retain(|_, pending| now.duration_since(pending.at) < PENDING_FOR);
        if self.pending.len() >= PENDING_SENDERS
            && !self.pending.contains_key(&peer)
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, pending)| pending.at)
                .map(|(addr, _)| *addr)
        {
            self.pending.remove(&oldest);
        }
        self.pending.insert(peer, Pending { inputs, at: now });
    }

    /// Starts the session of a validated sender, with its kept first lines.
    async fn admit(&mut self, peer: SocketAddr, rest: impl Iterator<Item = Input>, now: Instant) {
        if !self.make_room(now) {
            let refusal = err(
                "RESOURCE_EXHAUSTED",
                "too many UDP chat sessions; try again later",
            );
            let _ = self.socket.send_to(refusal.as_bytes(), peer).await;
            return;
        }
        let _ = self.socket.send_to(b"OK cookie", peer).await;
        let kept = self
            .pending
            .remove(&peer)
            .filter(|pending| now.duration_since(pending.at) < PENDING_FOR)
            .map(|pending| pending.inputs)
            .unwrap_or_default();
        let queue = self.start_session(peer, now);
        deliver(&queue, peer, kept.into_iter().chain(rest));
    }

    /// Whether a new session fits, ending the longest-silent one if every
    /// slot is taken and it has been silent for `reclaim_after`.
    fn make_room(&self, now: Instant) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() < self.limits.max_sessions {
            return true;
        }
        let silent = sessions
            .iter()
            .min_by_key(|(_, session)| session.heard)
            .filter(|(_, session)| now.duration_since(session.heard) >= self.limits.reclaim_after)
            .map(|(addr, _)| *addr);
        match silent {
            Some(addr) => {
                // Dropping its queue ends the session: it leaves its room.
                sessions.remove(&addr);
                debug!(peer = %addr, "udp chat session reclaimed for a new sender");
                true
            }
            None => false,
        }
    }

    fn start_session(&mut self, peer: SocketAddr, now: Instant) -> mpsc::Sender<Input> {
        let (queue, inputs) = mpsc::channel(SESSION_QUEUE);
        let id = self.next_id;
        self.next_id += 1;
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                peer,
                Session {
                    queue: queue.clone(),
                    id,
                    heard: now,
                },
            );
        self.gauge.inc();
        let sink = UdpSink {
            socket: self.socket.clone(),
            peer,
        };
        let upstreams = self.upstreams.clone();
        let idle = self.limits.idle;
        let sessions = self.sessions.clone();
        let gauge = self.gauge.clone();
        let drain = self.drain.clone();
        tokio::spawn(async move {
            session::run(upstreams, ReceiverStream::new(inputs), sink, idle, drain).await;
            let mut sessions = sessions.lock().unwrap_or_else(PoisonError::into_inner);
            // A later session of the same address is not ours to remove.
            if sessions.get(&peer).is_some_and(|session| session.id == id) {
                sessions.remove(&peer);
            }
            gauge.dec();
        });
        queue
    }
}

/// Hands a datagram's lines to a session, dropping what it cannot take.
fn deliver(queue: &mpsc::Sender<Input>, peer: SocketAddr, inputs: impl IntoIterator<Item = Input>) {
    for input in inputs {
        if queue.try_send(input).is_err() {
            debug!(%peer, "udp chat session busy; datagram dropped");
        }
    }
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
