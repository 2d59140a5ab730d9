//! [`AnyBackplane`]: the backplane the flags chose, one type either way, so
//! the service is built from its options the same way whichever it runs.

use std::sync::Arc;

use crate::{
    backplane::{Backplane, LocalBackplane, NatsBackplane, NatsOptions},
    config::ChatOptions,
    error::ChatError,
    event::{HistoryPage, LeaveReason, RoomSummary},
    hub::{HubLimits, Membership, RoomHub},
    names::{Nick, RoomName},
};

/// In-process rooms, or rooms shared over NATS.
#[derive(Debug)]
pub enum AnyBackplane {
    /// No `--nats-url`: rooms live in this process.
    Local(LocalBackplane),
    /// `--nats-url`: replicas share rooms through NATS.
    Nats(Box<NatsBackplane>),
}

impl AnyBackplane {
    /// The backplane `options` ask for: connects to NATS (and prepares its
    /// buckets) first when a URL is given.
    pub async fn open(options: &ChatOptions) -> Result<Self, ChatError> {
        let config = &options.config;
        let Some(url) = &options.backplane.nats_url else {
            let hub = Arc::new(RoomHub::new(config.hub_limits()));
            return Ok(Self::Local(LocalBackplane::new(hub)));
        };
        // The hub mirrors the rooms' streams, so it never evicts a room itself.
        let hub = Arc::new(RoomHub::new(HubLimits {
            evict_idle_rooms: false,
            ..config.hub_limits()
        }));
        let nats = NatsOptions {
            url: url.clone(),
            prefix: options.backplane.nats_prefix.clone(),
            retain: config.retained(),
            max_text_bytes: config.max_text_bytes,
        };
        Ok(Self::Nats(Box::new(
            NatsBackplane::connect(nats, hub).await?,
        )))
    }
}

impl Backplane for AnyBackplane {
    async fn join(
        &self,
        room: &RoomName,
        nick: &Nick,
        since: Option<u64>,
    ) -> Result<Membership, ChatError> {
        match self {
            Self::Local(local) => local.join(room, nick, since).await,
            Self::Nats(nats) => nats.join(room, nick, since).await,
        }
    }

    async fn say(&self, room: &RoomName, nick: &Nick, text: String) -> Result<(), ChatError> {
        match self {
            Self::Local(local) => local.say(room, nick, text).await,
            Self::Nats(nats) => nats.say(room, nick, text).await,
        }
    }

    async fn leave(&self, room: &RoomName, nick: &Nick, reason: LeaveReason) {
        match self {
            Self::Local(local) => local.leave(room, nick, reason).await,
            Self::Nats(nats) => nats.leave(room, nick, reason).await,
        }
    }

    async fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        match self {
            Self::Local(local) => local.rooms().await,
            Self::Nats(nats) => nats.rooms().await,
        }
    }

    async fn history(
        &self,
        room: &RoomName,
        since: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        match self {
            Self::Local(local) => local.history(room, since, limit).await,
            Self::Nats(nats) => nats.history(room, since, limit).await,
        }
    }

    fn hub(&self) -> &Arc<RoomHub> {
        match self {
            Self::Local(local) => local.hub(),
            Self::Nats(nats) => nats.hub(),
        }
    }
}
