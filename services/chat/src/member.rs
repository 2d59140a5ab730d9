//! One member's Chat stream, in domain terms: the Join that opens it, then the
//! member's requests and the room's feed turned into what it is shown
//! ([`Outbound`]), until it leaves, its client goes away, or the server
//! drains. No gRPC types: `grpc.rs` decodes each request into a [`Request`]
//! and encodes each [`Outbound`]; the rules of each step (line size and rate,
//! gaps) are [`crate::session`]'s.
//!
//! The drain is watched in one place, `unless_draining`: before the Join it
//! refuses the stream; after it the member is told GoingAway, and the stream
//! ends UNAVAILABLE saying where to resume.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt as _, stream};
use quartet_runtime::DrainSignal;
use tokio::{
    sync::broadcast::{self, error::RecvError},
    task::JoinHandle,
    time::{Instant, timeout},
};
use tracing::{debug, info};

use crate::{
    backplane::Backplane,
    config::ChatConfig,
    error::ChatError,
    event::{LeaveReason, RoomEvent},
    names::{Nick, RoomName},
    session::{Cursor, LinePolicy, Notice, Outbound},
};

/// Longest a new Chat stream may take to send its Join; an idle stream must
/// not hold a slot forever.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a member's stream waits for its leave before it ends. A leave
/// takes milliseconds, and then the nick is free by the time the stream ends;
/// while the backplane is away (NATS restarting) the leave finishes in the
/// background once it is back, and the member is not held for that.
pub const LEAVE_WAIT: Duration = Duration::from_secs(2);

/// What a member's client asks for, decoded from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Enter a room: the first request of a stream, and only the first.
    Join(JoinRequest),
    /// Say a line to the room.
    Say(String),
    /// Leave the room (`bye`); the stream ends OK.
    Leave,
    /// A request with nothing set; answered with a Notice.
    Empty,
}

/// A Join as the client sent it; its names are checked when it is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The room to enter.
    pub room: String,
    /// The nick to use there.
    pub nick: String,
    /// Replay the lines after this sequence number instead of recent history.
    pub since_seq: Option<u64>,
}

/// Waits for the stream's Join, enters the room, and gives what the member is
/// shown: Joined, a Gap and history, then the room live, until the stream
/// ends. Anything wrong before the join (no Join in time, a bad name, a taken
/// nick, the drain) refuses the stream instead. Errors of the client's own
/// stream (`E`) end the member's stream as they are.
pub async fn join<B, R, E>(
    backplane: Arc<B>,
    config: &ChatConfig,
    drain: DrainSignal,
    mut requests: R,
) -> Result<impl Stream<Item = Result<Outbound, E>> + Send + use<B, R, E>, E>
where
    B: Backplane,
    R: Stream<Item = Result<Request, E>> + Send + Unpin + 'static,
    E: From<ChatError> + Send + 'static,
{
    let join = unless_draining(&drain, first_join(&mut requests))
        .await
        .ok_or(ChatError::ShuttingDown { since_seq: None })??;
    let room = RoomName::parse(&join.room)?;
    let nick = Nick::parse(&join.nick)?;
    let membership = backplane.join(&room, &nick, join.since_seq).await?;
    let snapshot = membership.snapshot;
    debug!(room = %room, nick = %nick, last_seq = snapshot.last_seq, "member joined");

    let mut pending = VecDeque::with_capacity(snapshot.replay.len() + 2);
    pending.push_back(Ok(Outbound::Joined {
        room: room.clone(),
        nick: nick.clone(),
        members: snapshot.members,
        last_seq: snapshot.last_seq,
    }));
    if let Some((from, to)) = snapshot.gap {
        pending.push_back(Ok(Outbound::Gap { from, to }));
    }
    pending.extend(
        snapshot
            .replay
            .into_iter()
            .map(|line| Ok(Outbound::Line(line))),
    );
    let member = Member {
        drain,
        in_room: InRoom {
            requests,
            feed: membership.feed,
            cursor: Cursor::new(snapshot.last_seq),
            policy: LinePolicy::new(config, Instant::now()),
            seat: Seat {
                backplane,
                room,
                nick,
                present: true,
            },
            pending,
            ended: false,
        },
    };
    Ok(stream::unfold(member, Member::next))
}

/// The stream's first request, which must be a Join, within [`JOIN_TIMEOUT`].
async fn first_join<R, E>(requests: &mut R) -> Result<JoinRequest, E>
where
    R: Stream<Item = Result<Request, E>> + Unpin,
    E: From<ChatError>,
{
    let first = timeout(JOIN_TIMEOUT, requests.next())
        .await
        .map_err(|_| ChatError::JoinTimedOut(JOIN_TIMEOUT))?;
    match first.transpose()? {
        Some(Request::Join(join)) => Ok(join),
        _ => Err(ChatError::NotJoined.into()),
    }
}

/// Runs `work` unless the server starts draining first (then `None`): the one
/// place a member's stream watches the drain.
///
/// The drain is read as a flag first, and its future polled only after the
/// work: polling it registers a waiter in a list every member of the server
/// shares, behind one lock, and a room's members come here once per event.
/// This way only a member with nothing to do waits on the list.
async fn unless_draining<T>(drain: &DrainSignal, work: impl Future<Output = T>) -> Option<T> {
    if drain.is_draining() {
        return None;
    }
    tokio::select! {
        biased;
        output = work => Some(output),
        () = drain.draining() => None,
    }
}

/// A member's stream after its Join: the member in its room, and the drain
/// that ends it early.
struct Member<B: Backplane, R, E> {
    drain: DrainSignal,
    in_room: InRoom<B, R, E>,
}

impl<B, R, E> Member<B, R, E>
where
    B: Backplane,
    R: Stream<Item = Result<Request, E>> + Unpin,
    E: From<ChatError>,
{
    /// The next thing to send: what is already decided, else what the
    /// member's next input decides, or GoingAway if the server drains first.
    /// Only the wait races the drain: an input, once taken, is handled whole.
    async fn next(mut self) -> Option<(Result<Outbound, E>, Self)> {
        loop {
            if let Some(item) = self.in_room.pending.pop_front() {
                return Some((item, self));
            }
            if self.in_room.ended {
                return None;
            }
            match unless_draining(&self.drain, self.in_room.input()).await {
                Some(Input::Room(event)) => self.in_room.on_room_event(event),
                Some(Input::Request(request)) => self.in_room.on_request(request).await,
                None => self.in_room.going_away().await,
            }
        }
    }
}

/// What a member waits for: the room's next event, or its client's next
/// request (`None` once the client closed its side).
enum Input<E> {
    Room(Result<RoomEvent, RecvError>),
    Request(Option<Result<Request, E>>),
}

/// A member in its room: its requests, the room's feed, the rules its lines
/// follow, and what is decided for it but not yet sent.
struct InRoom<B: Backplane, R, E> {
    requests: R,
    feed: broadcast::Receiver<RoomEvent>,
    cursor: Cursor,
    policy: LinePolicy,
    seat: Seat<B>,
    /// Events decided but not yet sent, in order (the join's history, a Gap
    /// before its line, the final status after GoingAway). History stays as
    /// the hub's shared lines until sent, so a crowd rejoining at once costs
    /// a pointer per line each, not a copy.
    pending: VecDeque<Result<Outbound, E>>,
    /// Set once the member is out of the room: the stream ends after
    /// `pending`.
    ended: bool,
}

impl<B, R, E> InRoom<B, R, E>
where
    B: Backplane,
    R: Stream<Item = Result<Request, E>> + Unpin,
    E: From<ChatError>,
{
    /// Waits for the room's next event or the client's next request; both
    /// waits can be dropped without losing either.
    async fn input(&mut self) -> Input<E> {
        tokio::select! {
            event = self.feed.recv() => Input::Room(event),
            request = self.requests.next() => Input::Request(request),
        }
    }

    /// Queues what the member is shown of one event of the room.
    fn on_room_event(&mut self, event: Result<RoomEvent, RecvError>) {
        match event {
            Ok(event) => self
                .pending
                .extend(self.cursor.admit(event).into_iter().map(Ok)),
            Err(RecvError::Lagged(skipped)) => {
                if !self.cursor.is_lagging() {
                    let seat = &self.seat;
                    info!(room = %seat.room, nick = %seat.nick, skipped, "slow member skipped ahead");
                }
                self.cursor.fell_behind();
            }
            Err(RecvError::Closed) => {
                self.ended = true;
                self.pending.push_back(Err(ChatError::RoomClosed.into()));
            }
        }
    }

    /// Handles one request of the client; `None` is the client closing its
    /// side.
    async fn on_request(&mut self, request: Option<Result<Request, E>>) {
        let request = match request {
            Some(Ok(request)) => request,
            None => return self.leave(LeaveReason::Disconnected).await,
            Some(Err(error)) => return self.fail(error).await,
        };
        match request {
            Request::Say(text) => self.say(text).await,
            Request::Leave => self.leave(LeaveReason::Bye).await,
            Request::Join(_) => {
                let error = ChatError::AlreadyJoined {
                    room: self.seat.room.to_string(),
                    nick: self.seat.nick.to_string(),
                };
                self.fail(error.into()).await;
            }
            Request::Empty => self
                .pending
                .push_back(Ok(Outbound::Notice(Notice::InvalidMessage(
                    "a client event with no event set; nothing was done".to_owned(),
                )))),
        }
    }

    /// Says `text` if the rules allow, or queues the Notice that says why not.
    async fn say(&mut self, text: String) {
        if let Err(notice) = self.policy.check(&text, Instant::now()) {
            self.pending.push_back(Ok(Outbound::Notice(notice)));
            return;
        }
        if let Err(error) = self.seat.say(text).await {
            self.fail(error.into()).await;
        }
    }

    /// Says goodbye on drain: GoingAway now, UNAVAILABLE right after.
    async fn going_away(&mut self) {
        self.leave(LeaveReason::ServerShutdown).await;
        self.pending.push_back(Ok(Outbound::GoingAway));
        let since_seq = Some(self.cursor.shown());
        self.pending
            .push_back(Err(ChatError::ShuttingDown { since_seq }.into()));
    }

    /// Leaves the room as DISCONNECTED and ends the stream with `error`.
    async fn fail(&mut self, error: E) {
        self.leave(LeaveReason::Disconnected).await;
        self.pending.push_back(Err(error));
    }

    /// Leaves the room; the stream ends once what is queued is sent.
    async fn leave(&mut self, reason: LeaveReason) {
        self.seat.leave(reason).await;
        self.ended = true;
    }
}

/// A member's place in its room: says lines as the member, and leaves exactly
/// once, explicitly with a reason or as DISCONNECTED when the stream is
/// dropped (the client went away).
struct Seat<B: Backplane> {
    backplane: Arc<B>,
    room: RoomName,
    nick: Nick,
    present: bool,
}

impl<B: Backplane> Seat<B> {
    async fn say(&self, text: String) -> Result<(), ChatError> {
        self.backplane.say(&self.room, &self.nick, text).await
    }

    /// Leaves, and waits for the leave at most [`LEAVE_WAIT`] before the
    /// stream goes on to its end.
    async fn leave(&mut self, reason: LeaveReason) {
        let Some(leaving) = self.depart(reason) else {
            return;
        };
        debug!(room = %self.room, nick = %self.nick, ?reason, "member left");
        if timeout(LEAVE_WAIT, leaving).await.is_err() {
            debug!(room = %self.room, nick = %self.nick, "leave goes on in the background");
        }
    }

    /// Starts the backplane's leave, once, on a task of its own: a leave
    /// that has begun finishes (the nick's claim released, the room told)
    /// even if the stream that asked for it is dropped meanwhile, as when a
    /// client cancels mid-leave. `None` if already gone, or with no runtime
    /// left to run it (the process is ending).
    fn depart(&mut self, reason: LeaveReason) -> Option<JoinHandle<()>> {
        if !std::mem::take(&mut self.present) {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let backplane = self.backplane.clone();
        let (room, nick) = (self.room.clone(), self.nick.clone());
        Some(runtime.spawn(async move { backplane.leave(&room, &nick, reason).await }))
    }
}

impl<B: Backplane> Drop for Seat<B> {
    fn drop(&mut self) {
        if self.depart(LeaveReason::Disconnected).is_some() {
            debug!(room = %self.room, nick = %self.nick, "member disconnected");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::StreamExt as _;
    use quartet_runtime::Shutdown;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    use super::{JoinRequest, Request, join};
    use crate::{
        backplane::{Backplane as _, LocalBackplane},
        config::ChatConfig,
        error::ChatError,
        hub::RoomHub,
        names::{Nick, RoomName},
        session::Outbound,
    };

    fn backplane() -> Arc<LocalBackplane> {
        let hub = RoomHub::new(ChatConfig::default().hub_limits());
        Arc::new(LocalBackplane::new(Arc::new(hub)))
    }

    #[tokio::test]
    async fn a_drain_says_going_away_then_ends_with_where_to_resume() {
        let (backplane, shutdown) = (backplane(), Shutdown::new());
        let (sender, requests) = mpsc::channel(8);
        let join_lobby = Request::Join(JoinRequest {
            room: "lobby".into(),
            nick: "ana".into(),
            since_seq: None,
        });
        sender.send(Ok(join_lobby)).await.unwrap();
        let requests = ReceiverStream::new(requests);
        let config = ChatConfig::default();
        let events = join(
            backplane.clone(),
            &config,
            shutdown.drain_signal(),
            requests,
        );
        let mut events = Box::pin(events.await.unwrap());
        assert!(matches!(
            events.next().await,
            Some(Ok(Outbound::Joined { .. }))
        ));
        sender.send(Ok(Request::Say("hi".into()))).await.unwrap();
        assert!(matches!(events.next().await, Some(Ok(Outbound::Line(line))) if line.seq == 1));

        shutdown.start_draining();
        assert!(matches!(events.next().await, Some(Ok(Outbound::GoingAway))));
        assert!(matches!(
            events.next().await,
            Some(Err(ChatError::ShuttingDown { since_seq: Some(1) }))
        ));
        assert!(events.next().await.is_none());
        let (room, nick) = (
            RoomName::parse("lobby").unwrap(),
            Nick::parse("ana").unwrap(),
        );
        assert!(
            !backplane.hub().is_local_member(&room, &nick),
            "left the room"
        );
    }

    #[tokio::test]
    async fn a_drain_before_the_join_refuses_the_stream() {
        let shutdown = Shutdown::new();
        shutdown.start_draining();
        let (_sender, requests) = mpsc::channel::<Result<Request, ChatError>>(8);
        let requests = ReceiverStream::new(requests);
        let config = ChatConfig::default();
        let refused = join(backplane(), &config, shutdown.drain_signal(), requests).await;
        assert_eq!(
            refused.err(),
            Some(ChatError::ShuttingDown { since_seq: None })
        );
    }
}
