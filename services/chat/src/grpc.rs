//! The gRPC adapter: proto events in, domain calls, proto events out. The
//! session loop here only interleaves the member's two directions with the
//! server's drain; rules live in [`crate::session`] and the backplane.

use std::{collections::VecDeque, pin::Pin, sync::Arc, time::Duration};

use futures_util::{Stream, stream};
use prost_types::Timestamp;
use quartet_proto::chat::v1::{
    self as pb, ClientEvent, GetHistoryRequest, GetHistoryResponse, ListRoomsRequest,
    ListRoomsResponse, ServerEvent, chat_service_server::ChatService, client_event, server_event,
};
use quartet_runtime::DrainSignal;
use tokio::{
    sync::broadcast::{self, error::RecvError},
    time::{Instant, timeout},
};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::{
    backplane::Backplane,
    config::ChatConfig,
    error::ChatError,
    event::{ChatLine, LeaveReason, Presence, RoomEvent, RoomSummary},
    names::{Nick, RoomName},
    session::{Cursor, LinePolicy, Notice, Outbound},
};

/// Longest a new Chat stream may take to send its Join; an idle stream must
/// not hold a slot forever.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// GetHistory's page size when the request says 0 (the contract).
const DEFAULT_HISTORY_LIMIT: u32 = 50;
/// GetHistory's largest page (the contract); larger requests get this many.
const MAX_HISTORY_LIMIT: u32 = 1000;

/// Implements `quartet.chat.v1.ChatService` over a [`Backplane`].
#[derive(Debug)]
pub struct ChatHandler<B> {
    backplane: Arc<B>,
    config: Arc<ChatConfig>,
    drain: DrainSignal,
}

impl<B> Clone for ChatHandler<B> {
    fn clone(&self) -> Self {
        Self {
            backplane: self.backplane.clone(),
            config: self.config.clone(),
            drain: self.drain.clone(),
        }
    }
}

impl<B: Backplane> ChatHandler<B> {
    /// A handler whose sessions follow `config` and end when `drain` fires.
    pub fn new(backplane: Arc<B>, config: ChatConfig, drain: DrainSignal) -> Self {
        Self {
            backplane,
            config: Arc::new(config),
            drain,
        }
    }

    /// Waits for the stream's first event, which must be a Join.
    async fn first_join(&self, inbound: &mut Streaming<ClientEvent>) -> Result<pb::Join, Status> {
        let first = tokio::select! {
            () = self.drain.draining() => {
                return Err(Status::unavailable("server is shutting down"));
            }
            first = timeout(JOIN_TIMEOUT, inbound.message()) => first.map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no Join within {}s of opening the stream",
                    JOIN_TIMEOUT.as_secs()
                ))
            })??,
        };
        match first {
            Some(ClientEvent {
                event: Some(client_event::Event::Join(join)),
            }) => Ok(join),
            _ => Err(ChatError::NotJoined.into()),
        }
    }
}

/// Leaves the room exactly once: explicitly with a reason, or as DISCONNECTED
/// when the stream is dropped (the client went away).
struct MemberGuard<B: Backplane> {
    backplane: Arc<B>,
    room: RoomName,
    nick: Nick,
    present: bool,
}

impl<B: Backplane> MemberGuard<B> {
    async fn leave(&mut self, reason: LeaveReason) {
        if std::mem::take(&mut self.present) {
            debug!(room = %self.room, nick = %self.nick, ?reason, "member left");
            self.backplane.leave(&self.room, &self.nick, reason).await;
        }
    }
}

impl<B: Backplane> Drop for MemberGuard<B> {
    fn drop(&mut self) {
        if !std::mem::take(&mut self.present) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let backplane = self.backplane.clone();
        let room = self.room.clone();
        let nick = self.nick.clone();
        debug!(room = %room, nick = %nick, "member disconnected");
        runtime.spawn(async move {
            backplane
                .leave(&room, &nick, LeaveReason::Disconnected)
                .await;
        });
    }
}

/// One member's Chat stream after its Join.
struct Session<B: Backplane> {
    inbound: Streaming<ClientEvent>,
    feed: broadcast::Receiver<RoomEvent>,
    cursor: Cursor,
    policy: LinePolicy,
    member: MemberGuard<B>,
    drain: DrainSignal,
    /// Events decided but not yet sent, in order (the join's history, a Gap
    /// before its line, the final status after GoingAway). History stays as
    /// the hub's shared lines until sent, so a crowd rejoining at once costs
    /// a pointer per line each, not a copy.
    pending: VecDeque<Pending>,
    ended: bool,
}

type ServerEvents = Pin<Box<dyn Stream<Item = Result<ServerEvent, Status>> + Send>>;

/// Something decided for a member and not yet sent.
enum Pending {
    /// Ready to send.
    Ready(Result<ServerEvent, Status>),
    /// A line of history, encoded when it is sent.
    Line(Arc<ChatLine>),
}

impl Pending {
    fn into_item(self) -> Result<ServerEvent, Status> {
        match self {
            Self::Ready(item) => item,
            Self::Line(line) => Ok(event(server_event::Event::Message(message(&line)))),
        }
    }
}

impl<B: Backplane> Session<B> {
    async fn next(mut self) -> Option<(Result<ServerEvent, Status>, Self)> {
        if let Some(item) = self.pending.pop_front() {
            return Some((item.into_item(), self));
        }
        if self.ended {
            return None;
        }
        loop {
            if self.drain.is_draining() {
                return Some((self.going_away().await, self));
            }
            tokio::select! {
                () = self.drain.draining() => {
                    return Some((self.going_away().await, self));
                }
                event = self.feed.recv() => match event {
                    Ok(event) => {
                        let mut shown = self.cursor.admit(event).into_iter().map(|o| Ok(outbound(o)));
                        let Some(first) = shown.next() else { continue };
                        self.pending.extend(shown.map(Pending::Ready));
                        return Some((first, self));
                    }
                    Err(RecvError::Lagged(skipped)) => {
                        if !self.cursor.is_lagging() {
                            info!(room = %self.member.room, nick = %self.member.nick, skipped, "slow member skipped ahead");
                        }
                        self.cursor.fell_behind();
                    }
                    Err(RecvError::Closed) => {
                        self.ended = true;
                        return Some((Err(Status::unavailable("the room was closed")), self));
                    }
                },
                inbound = self.inbound.message() => {
                    if let Some(item) = self.on_client_event(inbound).await {
                        return Some((item, self));
                    }
                    if self.ended {
                        return None;
                    }
                }
            }
        }
    }

    /// Handles one client event: `Some` to send something now, `None` to go on
    /// (or to end cleanly when `ended` is set).
    async fn on_client_event(
        &mut self,
        inbound: Result<Option<ClientEvent>, Status>,
    ) -> Option<Result<ServerEvent, Status>> {
        let event = match inbound {
            Ok(Some(ClientEvent { event })) => event,
            Ok(None) => {
                self.member.leave(LeaveReason::Disconnected).await;
                self.ended = true;
                return None;
            }
            Err(status) => {
                self.member.leave(LeaveReason::Disconnected).await;
                self.ended = true;
                return Some(Err(status));
            }
        };
        match event {
            Some(client_event::Event::Say(say)) => {
                if let Err(notice) = self.policy.check(&say.text, Instant::now()) {
                    return Some(Ok(notice_event(notice)));
                }
                let member = &self.member;
                if let Err(error) = member
                    .backplane
                    .say(&member.room, &member.nick, say.text)
                    .await
                {
                    self.member.leave(LeaveReason::Disconnected).await;
                    self.ended = true;
                    return Some(Err(error.into()));
                }
                None
            }
            Some(client_event::Event::Leave(_)) => {
                self.member.leave(LeaveReason::Bye).await;
                self.ended = true;
                None
            }
            Some(client_event::Event::Join(_)) => {
                let error = ChatError::AlreadyJoined {
                    room: self.member.room.to_string(),
                    nick: self.member.nick.to_string(),
                };
                self.member.leave(LeaveReason::Disconnected).await;
                self.ended = true;
                Some(Err(error.into()))
            }
            None => Some(Ok(notice_event(Notice::InvalidMessage(
                "a client event with no event set; nothing was done".to_owned(),
            )))),
        }
    }

    /// Says goodbye on drain: GoingAway now, UNAVAILABLE right after.
    async fn going_away(&mut self) -> Result<ServerEvent, Status> {
        self.member.leave(LeaveReason::ServerShutdown).await;
        self.ended = true;
        self.pending
            .push_back(Pending::Ready(Err(Status::unavailable(format!(
                "server is shutting down; rejoin with since_seq {} to miss nothing",
                self.cursor.shown()
            )))));
        Ok(event(server_event::Event::GoingAway(pb::GoingAway {
            reason: "server shutting down".to_owned(),
        })))
    }
}

fn event(event: server_event::Event) -> ServerEvent {
    ServerEvent { event: Some(event) }
}

fn message(line: &ChatLine) -> pb::ChatMessage {
    pb::ChatMessage {
        id: line.id.clone(),
        seq: line.seq,
        room: line.room.to_string(),
        nick: line.nick.to_string(),
        text: line.text.clone(),
        time: Some(Timestamp::from(line.time)),
    }
}

fn presence_event(presence: &Presence) -> ServerEvent {
    let room = presence.room.to_string();
    let nick = presence.nick.to_string();
    let time = Some(Timestamp::from(presence.time));
    match presence.left {
        None => event(server_event::Event::MemberJoined(pb::MemberJoined {
            room,
            nick,
            time,
        })),
        Some(reason) => event(server_event::Event::MemberLeft(pb::MemberLeft {
            room,
            nick,
            reason: pb::LeaveReason::from(reason).into(),
            time,
        })),
    }
}

impl From<LeaveReason> for pb::LeaveReason {
    fn from(reason: LeaveReason) -> Self {
        match reason {
            LeaveReason::Bye => Self::Bye,
            LeaveReason::Disconnected => Self::Disconnected,
            LeaveReason::SlowConsumer => Self::SlowConsumer,
            LeaveReason::ServerShutdown => Self::ServerShutdown,
        }
    }
}

fn notice_event(notice: Notice) -> ServerEvent {
    let (kind, message) = match notice {
        Notice::RateLimited(message) => (pb::NoticeKind::RateLimited, message),
        Notice::InvalidMessage(message) => (pb::NoticeKind::InvalidMessage, message),
    };
    event(server_event::Event::Notice(pb::Notice {
        kind: kind.into(),
        message,
    }))
}

fn outbound(outbound: Outbound) -> ServerEvent {
    match outbound {
        Outbound::Line(line) => event(server_event::Event::Message(message(&line))),
        Outbound::Presence(presence) => presence_event(&presence),
        Outbound::Gap { from, to } => event(server_event::Event::Gap(pb::Gap {
            from_seq: from,
            to_seq: to,
        })),
    }
}

fn room(summary: &RoomSummary) -> pb::Room {
    let members: Vec<String> = summary.members.iter().map(ToString::to_string).collect();
    pb::Room {
        name: summary.name.to_string(),
        member_count: u32::try_from(members.len()).unwrap_or(u32::MAX),
        members,
        last_seq: summary.last_seq,
    }
}

#[tonic::async_trait]
impl<B: Backplane> ChatService for ChatHandler<B> {
    type ChatStream = ServerEvents;

    async fn chat(
        &self,
        request: Request<Streaming<ClientEvent>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let mut inbound = request.into_inner();
        let join = self.first_join(&mut inbound).await?;
        let room = RoomName::parse(&join.room)?;
        let nick = Nick::parse(&join.nick)?;
        let membership = self.backplane.join(&room, &nick, join.since_seq).await?;
        let snapshot = membership.snapshot;

        let mut pending = VecDeque::with_capacity(snapshot.replay.len() + 2);
        pending.push_back(Pending::Ready(Ok(event(server_event::Event::Joined(
            pb::Joined {
                room: room.to_string(),
                nick: nick.to_string(),
                members: snapshot.members.iter().map(ToString::to_string).collect(),
                last_seq: snapshot.last_seq,
            },
        )))));
        if let Some((from, to)) = snapshot.gap {
            pending.push_back(Pending::Ready(Ok(outbound(Outbound::Gap { from, to }))));
        }
        pending.extend(snapshot.replay.into_iter().map(Pending::Line));
        debug!(room = %room, nick = %nick, last_seq = snapshot.last_seq, "member joined");
        let session = Session {
            inbound,
            feed: membership.feed,
            cursor: Cursor::new(snapshot.last_seq),
            policy: LinePolicy::new(&self.config, Instant::now()),
            member: MemberGuard {
                backplane: self.backplane.clone(),
                room,
                nick,
                present: true,
            },
            drain: self.drain.clone(),
            pending,
            ended: false,
        };
        Ok(Response::new(Box::pin(stream::unfold(
            session,
            Session::next,
        ))))
    }

    async fn list_rooms(
        &self,
        _request: Request<ListRoomsRequest>,
    ) -> Result<Response<ListRoomsResponse>, Status> {
        let rooms = self.backplane.rooms().await?;
        Ok(Response::new(ListRoomsResponse {
            rooms: rooms.iter().map(room).collect(),
        }))
    }

    async fn get_history(
        &self,
        request: Request<GetHistoryRequest>,
    ) -> Result<Response<GetHistoryResponse>, Status> {
        let request = request.into_inner();
        let room = RoomName::parse(&request.room)?;
        let limit = match request.limit {
            0 => DEFAULT_HISTORY_LIMIT,
            limit => limit.min(MAX_HISTORY_LIMIT),
        };
        let page = self
            .backplane
            .history(&room, request.since_seq, limit as usize)
            .await?;
        Ok(Response::new(GetHistoryResponse {
            messages: page.lines.iter().map(|line| message(line)).collect(),
            last_seq: page.last_seq,
        }))
    }
}
