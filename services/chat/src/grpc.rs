//! The gRPC adapter: proto events in, domain calls, proto events out. A
//! member's stream is [`crate::member`]'s; this file only converts.
//!
//! A line goes out to every member of its room, so it is encoded once, by the
//! first member's stream to send it, and the bytes are shared
//! ([`ChatLine::encoding`] and [`Outgoing::Encoded`]): encoding it once per
//! member cost more than the fan-out itself (BENCHMARKS.md, "Chat").

use std::{pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt as _};
use prost_types::Timestamp;
use quartet_proto::{
    chat::v1::{
        self as pb, ClientEvent, GetHistoryRequest, GetHistoryResponse, ListRoomsRequest,
        ListRoomsResponse, ServerEvent, client_event, preencoded::chat_service_server::ChatService,
        server_event,
    },
    codec::{self, Outgoing},
};
use quartet_runtime::DrainSignal;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    backplane::Backplane,
    config::ChatConfig,
    event::{ChatLine, HistoryPage, LeaveReason, Presence, RoomSummary},
    member::{self, JoinRequest},
    names::RoomName,
    session::{Notice, Outbound},
};

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
    /// A handler over `backplane` whose sessions follow `config` and never
    /// drain: [`crate::server`] gives it the server's drain signal.
    pub fn new(backplane: Arc<B>, config: ChatConfig) -> Self {
        Self {
            backplane,
            config: Arc::new(config),
            drain: DrainSignal::never(),
        }
    }

    /// The same handler, its sessions ended when `drain` fires: what the
    /// hosting server decides.
    #[must_use]
    pub fn hosted(self, drain: DrainSignal) -> Self {
        Self { drain, ..self }
    }

    /// Its backplane: the server counts its hub's rooms and members, and tests
    /// reach rooms around the service's own checks.
    pub fn backplane(&self) -> &Arc<B> {
        &self.backplane
    }
}

type ServerEvents = Pin<Box<dyn Stream<Item = Result<Outgoing<ServerEvent>, Status>> + Send>>;

impl From<ClientEvent> for member::Request {
    fn from(event: ClientEvent) -> Self {
        match event.event {
            Some(client_event::Event::Join(join)) => Self::Join(JoinRequest {
                room: join.room,
                nick: join.nick,
                since_seq: join.since_seq,
            }),
            Some(client_event::Event::Say(say)) => Self::Say(say.text),
            Some(client_event::Event::Leave(_)) => Self::Leave,
            None => Self::Empty,
        }
    }
}

/// What goes on the wire for `outbound`: a line's shared encoding, or any
/// other event (this member's alone) to be encoded as it is sent.
fn outgoing(outbound: Outbound) -> Outgoing<ServerEvent> {
    match outbound {
        Outbound::Line(line) => Outgoing::Encoded(line.encoding.get_or_init(|| {
            codec::encode(&ServerEvent {
                event: Some(server_event::Event::Message(pb::ChatMessage::from(&*line))),
            })
        })),
        other => Outgoing::Message(ServerEvent::from(other)),
    }
}

impl From<Outbound> for ServerEvent {
    fn from(outbound: Outbound) -> Self {
        let event = match outbound {
            Outbound::Joined {
                room,
                nick,
                members,
                last_seq,
            } => server_event::Event::Joined(pb::Joined {
                room: room.to_string(),
                nick: nick.to_string(),
                members: members.iter().map(ToString::to_string).collect(),
                last_seq,
            }),
            Outbound::Line(line) => server_event::Event::Message(pb::ChatMessage::from(&*line)),
            Outbound::Presence(presence) => presence_event(&presence),
            Outbound::Gap { from, to } => server_event::Event::Gap(pb::Gap {
                from_seq: from,
                to_seq: to,
            }),
            Outbound::Notice(notice) => server_event::Event::Notice(notice.into()),
            Outbound::GoingAway => server_event::Event::GoingAway(pb::GoingAway {
                reason: "server shutting down".to_owned(),
            }),
        };
        ServerEvent { event: Some(event) }
    }
}

impl From<&ChatLine> for pb::ChatMessage {
    fn from(line: &ChatLine) -> Self {
        Self {
            id: line.id.clone(),
            seq: line.seq,
            room: line.room.to_string(),
            nick: line.nick.to_string(),
            text: line.text.clone(),
            time: Some(Timestamp::from(line.time)),
        }
    }
}

fn presence_event(presence: &Presence) -> server_event::Event {
    let room = presence.room.to_string();
    let nick = presence.nick.to_string();
    let time = Some(Timestamp::from(presence.time));
    match presence.left {
        None => server_event::Event::MemberJoined(pb::MemberJoined { room, nick, time }),
        Some(reason) => server_event::Event::MemberLeft(pb::MemberLeft {
            room,
            nick,
            reason: pb::LeaveReason::from(reason).into(),
            time,
        }),
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

impl From<Notice> for pb::Notice {
    fn from(notice: Notice) -> Self {
        let (kind, message) = match notice {
            Notice::RateLimited(message) => (pb::NoticeKind::RateLimited, message),
            Notice::InvalidMessage(message) => (pb::NoticeKind::InvalidMessage, message),
        };
        Self {
            kind: kind.into(),
            message,
        }
    }
}

impl From<&RoomSummary> for pb::Room {
    fn from(summary: &RoomSummary) -> Self {
        let members: Vec<String> = summary.members.iter().map(ToString::to_string).collect();
        Self {
            name: summary.name.to_string(),
            member_count: u32::try_from(members.len()).unwrap_or(u32::MAX),
            members,
            last_seq: summary.last_seq,
        }
    }
}

impl From<&HistoryPage> for GetHistoryResponse {
    fn from(page: &HistoryPage) -> Self {
        Self {
            messages: page.lines.iter().map(|line| (&**line).into()).collect(),
            last_seq: page.last_seq,
        }
    }
}

/// The page size a GetHistory `limit` asks for: 0 is the default, and no
/// page is larger than the maximum.
fn history_page_size(limit: u32) -> usize {
    let limit = match limit {
        0 => DEFAULT_HISTORY_LIMIT,
        limit => limit.min(MAX_HISTORY_LIMIT),
    };
    limit as usize
}

#[tonic::async_trait]
impl<B: Backplane> ChatService for ChatHandler<B> {
    type ChatStream = ServerEvents;

    async fn chat(
        &self,
        request: Request<Streaming<ClientEvent>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let requests = request
            .into_inner()
            .map(|event| event.map(member::Request::from));
        let events = member::join(
            self.backplane.clone(),
            &self.config,
            self.drain.clone(),
            requests,
        )
        .await?;
        Ok(Response::new(Box::pin(
            events.map(|event| event.map(outgoing)),
        )))
    }

    async fn list_rooms(
        &self,
        _request: Request<ListRoomsRequest>,
    ) -> Result<Response<ListRoomsResponse>, Status> {
        let rooms = self.backplane.rooms().await?;
        Ok(Response::new(ListRoomsResponse {
            rooms: rooms.iter().map(pb::Room::from).collect(),
        }))
    }

    async fn get_history(
        &self,
        request: Request<GetHistoryRequest>,
    ) -> Result<Response<GetHistoryResponse>, Status> {
        let request = request.into_inner();
        let room = RoomName::parse(&request.room)?;
        let limit = history_page_size(request.limit);
        let page = self
            .backplane
            .history(&room, request.since_seq, limit)
            .await?;
        Ok(Response::new(GetHistoryResponse::from(&page)))
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::SystemTime};

    use prost::Message as _;
    use quartet_proto::{chat::v1::ServerEvent, codec::Outgoing};

    use super::outgoing;
    use crate::{
        event::{ChatLine, Encoding},
        names::{Nick, RoomName},
        session::Outbound,
    };

    #[test]
    fn a_line_is_encoded_once_and_decodes_as_its_message() {
        let line = Arc::new(ChatLine {
            id: "id1".into(),
            seq: 7,
            room: RoomName::parse("lobby").unwrap(),
            nick: Nick::parse("ana").unwrap(),
            text: "hello".into(),
            time: SystemTime::UNIX_EPOCH,
            encoding: Encoding::default(),
        });
        let expected = ServerEvent::from(Outbound::Line(line.clone()));
        let (Outgoing::Encoded(first), Outgoing::Encoded(second)) = (
            outgoing(Outbound::Line(line.clone())),
            outgoing(Outbound::Line(line)),
        ) else {
            panic!("a line goes out encoded");
        };
        assert_eq!(first.as_ptr(), second.as_ptr(), "one encoding, shared");
        assert_eq!(ServerEvent::decode(first).unwrap(), expected);
    }
}
