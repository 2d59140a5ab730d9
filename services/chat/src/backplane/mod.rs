//! Backplanes: who sequences a room's lines and carries them to its members.
//!
//! - [`any`]: [`AnyBackplane`], whichever of the two the flags chose.
//! - [`local`]: this process alone ([`LocalBackplane`]); the [`RoomHub`]
//!   sequences lines and fans them out. The default.
//! - [`nats`]: several replicas through NATS ([`NatsBackplane`]); JetStream
//!   sequences and keeps history, a KV bucket holds nick claims, and each
//!   replica's hub fans lines out to its own members.
//!

pub mod any;
pub mod local;
pub mod nats;

use std::{future::Future, sync::Arc};

pub use any::AnyBackplane;
pub use local::LocalBackplane;
pub use nats::{NatsBackplane, NatsOptions};

use crate::{
    error::ChatError,
    event::{HistoryPage, LeaveReason, RoomSummary},
    hub::{Membership, RoomHub},
    names::{Nick, RoomName},
};

/// What the gRPC layer needs from rooms, wherever they live.
pub trait Backplane: Send + Sync + 'static {
    /// Enters `room` as `nick` (unique in the room across every replica), with
    /// the snapshot and live feed of [`Membership`].
    fn join(
        &self,
        room: &RoomName,
        nick: &Nick,
        since: Option<u64>,
    ) -> impl Future<Output = Result<Membership, ChatError>> + Send;

    /// Says a line; it reaches every member (the sayer too) through their feeds.
    fn say(
        &self,
        room: &RoomName,
        nick: &Nick,
        text: String,
    ) -> impl Future<Output = Result<(), ChatError>> + Send;

    /// Leaves `room`, freeing the nick and telling the others why.
    fn leave(
        &self,
        room: &RoomName,
        nick: &Nick,
        reason: LeaveReason,
    ) -> impl Future<Output = ()> + Send;

    /// Rooms with members or history, ordered by name.
    fn rooms(&self) -> impl Future<Output = Result<Vec<RoomSummary>, ChatError>> + Send;

    /// Up to `limit` retained lines of `room` after `since` (or the latest).
    fn history(
        &self,
        room: &RoomName,
        since: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<HistoryPage, ChatError>> + Send;

    /// The hub of this server's members, which the service's metrics count.
    fn hub(&self) -> &Arc<RoomHub>;
}
