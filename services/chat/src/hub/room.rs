//! One room of the hub, under its lock: its members, its latest sequence
//! number, the ring of recent lines, and the live feed every member reads.
//! Each change enters the feed while the room is locked, so every member
//! reads one order.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::SystemTime,
};

use tokio::{sync::broadcast, time::Instant};

use super::Membership;
use crate::{
    error::ChatError,
    event::{
        ChatLine, Encoding, HistoryPage, JoinSnapshot, LeaveReason, Presence, RoomEvent,
        RoomSummary,
    },
    names::{Nick, RoomName},
};

/// Where a member's stream is: on this server, or on another replica (known
/// through the backplane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Connected to this server.
    Local,
    /// Connected to another replica.
    Remote,
}

/// A room as the hub holds it: its state behind its own lock.
pub(super) type Room = Mutex<RoomState>;

/// Locks a mutex; a panic while holding one of ours leaves consistent data
/// (every update is a single push or insert), so poisoning is ignored.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
pub(super) struct RoomState {
    members: BTreeMap<Nick, Origin>,
    /// The most recent lines, oldest first, at most `retain`.
    history: VecDeque<Arc<ChatLine>>,
    last_seq: u64,
    /// Every event of the room, to every member; a ring of `member_queue`.
    feed: broadcast::Sender<RoomEvent>,
    /// Set when the room was dropped from the hub; a caller that raced with
    /// that looks the room up again.
    pub(super) removed: bool,
    /// When a member last joined, said something or left: what eviction
    /// goes by.
    pub(super) last_active: Option<Instant>,
    /// While the members from other replicas are being read from elsewhere
    /// (the nick claims), the nicks a presence note changed meanwhile: the
    /// note is newer than what the read may return for them.
    noted_while_syncing: Option<BTreeSet<Nick>>,
}

impl RoomState {
    /// An empty room whose feed holds `member_queue` events.
    pub(super) fn new(member_queue: usize) -> Self {
        let (feed, _) = broadcast::channel(member_queue.max(1));
        Self {
            members: BTreeMap::new(),
            history: VecDeque::new(),
            last_seq: 0,
            feed,
            removed: false,
            last_active: None,
            noted_while_syncing: None,
        }
    }

    /// Adds a local member: refused if the nick is in use by a member of this
    /// server (a remote holder is replaced: the backplane already checked).
    /// Others are told; the joiner gets the snapshot and the feed after it.
    pub(super) fn join(
        &mut self,
        room: &RoomName,
        nick: &Nick,
        since: Option<u64>,
        history: usize,
    ) -> Result<Membership, ChatError> {
        if self.members.get(nick) == Some(&Origin::Local) {
            return Err(ChatError::NickTaken {
                room: room.to_string(),
                nick: nick.to_string(),
            });
        }
        self.members.insert(nick.clone(), Origin::Local);
        // Announced before subscribing: the joiner learns of itself from Joined.
        self.announce(room, nick, None);
        Ok(Membership {
            snapshot: self.snapshot(since, history),
            feed: self.feed.subscribe(),
        })
    }

    /// Removes a local member and tells the others why; returns whether the
    /// room is now idle (no members, no lines). Removing one that is not
    /// there does nothing.
    pub(super) fn leave(&mut self, room: &RoomName, nick: &Nick, reason: LeaveReason) -> bool {
        if !self.is_local_member(nick) {
            return false;
        }
        self.members.remove(nick);
        self.last_active = Some(Instant::now());
        self.announce(room, nick, Some(reason));
        self.is_idle()
    }

    /// Says a line with the room's next sequence number (this server
    /// sequences: the local backplane).
    pub(super) fn say(
        &mut self,
        room: &RoomName,
        nick: &Nick,
        text: String,
        retain: usize,
    ) -> Arc<ChatLine> {
        let line = Arc::new(ChatLine {
            id: nuid::next().to_string(),
            seq: self.last_seq + 1,
            room: room.clone(),
            nick: nick.clone(),
            text,
            time: SystemTime::now(),
            encoding: Encoding::default(),
        });
        self.push_line(line.clone(), retain);
        line
    }

    /// Takes in a line sequenced elsewhere; a line at or below the last
    /// sequence number is a duplicate. Returns whether it was new.
    pub(super) fn apply_line(&mut self, line: ChatLine, retain: usize) -> bool {
        if line.seq <= self.last_seq {
            return false;
        }
        self.push_line(Arc::new(line), retain);
        true
    }

    /// Takes in a member of another replica joining or leaving, and tells the
    /// local members. Local members are never changed from outside.
    pub(super) fn apply_remote_presence(&mut self, presence: Presence) {
        if let Some(noted) = &mut self.noted_while_syncing {
            noted.insert(presence.nick.clone());
        }
        let current = self.members.get(&presence.nick).copied();
        let changed = match (presence.left, current) {
            // Local members are only changed by their own sessions; a leave
            // of someone not here changes nothing.
            (_, Some(Origin::Local)) | (Some(_), None) => false,
            (None, _) => self
                .members
                .insert(presence.nick.clone(), Origin::Remote)
                .is_none(),
            (Some(_), Some(Origin::Remote)) => {
                self.members.remove(&presence.nick);
                true
            }
        };
        if changed {
            let _ = self.feed.send(RoomEvent::Presence(Arc::new(presence)));
        }
    }

    /// Starts noting which remote members presence notes change, for
    /// [`Self::sync_remote_members`].
    pub(super) fn begin_remote_sync(&mut self) {
        self.noted_while_syncing = Some(BTreeSet::new());
    }

    /// Makes the members from other replicas those in `remote`, read after
    /// [`Self::begin_remote_sync`], and tells the local members of each
    /// change (a member no longer there left as DISCONNECTED). A nick that a
    /// note changed since the read began keeps what the note said; local
    /// members are never changed from outside. `None` (the read failed)
    /// only stops the noting.
    pub(super) fn sync_remote_members(&mut self, room: &RoomName, remote: Option<&BTreeSet<Nick>>) {
        let noted = self.noted_while_syncing.take().unwrap_or_default();
        let Some(remote) = remote else {
            return;
        };
        let time = SystemTime::now();
        let gone: Vec<Nick> = self
            .members
            .iter()
            .filter(|(nick, origin)| **origin == Origin::Remote && !remote.contains(*nick))
            .map(|(nick, _)| nick.clone())
            .collect();
        let left = Some(LeaveReason::Disconnected);
        let changes = gone
            .into_iter()
            .map(|nick| (nick, left))
            .chain(remote.iter().map(|nick| (nick.clone(), None)))
            .filter(|(nick, _)| !noted.contains(nick));
        for (nick, left) in changes {
            self.apply_remote_presence(Presence {
                room: room.clone(),
                nick,
                left,
                time,
            });
        }
    }

    /// Whether the room has neither members nor lines: nothing to keep.
    pub(super) fn is_idle(&self) -> bool {
        self.members.is_empty() && self.last_seq == 0
    }

    /// Whether anyone, here or on another replica, is in the room.
    pub(super) fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// The members connected to this server.
    pub(super) fn local_members(&self) -> impl Iterator<Item = &Nick> {
        self.members
            .iter()
            .filter(|(_, origin)| **origin == Origin::Local)
            .map(|(nick, _)| nick)
    }

    /// Whether `nick` is in the room on this server.
    pub(super) fn is_local_member(&self, nick: &Nick) -> bool {
        self.members.get(nick) == Some(&Origin::Local)
    }

    /// The room's latest sequence number (0 before its first line).
    pub(super) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The room as ListRooms shows it.
    pub(super) fn summary(&self, name: &RoomName) -> RoomSummary {
        RoomSummary {
            name: name.clone(),
            members: self.members.keys().cloned().collect(),
            last_seq: self.last_seq,
        }
    }

    /// Up to `limit` retained lines after `since` (or the latest `limit`);
    /// `None` for a room that never had a line.
    pub(super) fn page(&self, since: Option<u64>, limit: usize) -> Option<HistoryPage> {
        if self.last_seq == 0 {
            return None;
        }
        let lines = match since {
            None => self.latest(limit),
            Some(since) => self.after(since, limit),
        };
        Some(HistoryPage {
            lines,
            last_seq: self.last_seq,
        })
    }

    /// Records a line as the latest, keeps at most `retain`, and sends it.
    fn push_line(&mut self, line: Arc<ChatLine>, retain: usize) {
        self.last_seq = line.seq;
        if self.history.len() >= retain {
            self.history.pop_front();
        }
        self.history.push_back(line.clone());
        let _ = self.feed.send(RoomEvent::Line(line));
    }

    /// Tells every member that `nick` joined (`left` is `None`) or left.
    fn announce(&self, room: &RoomName, nick: &Nick, left: Option<LeaveReason>) {
        let _ = self.feed.send(RoomEvent::Presence(Arc::new(Presence {
            room: room.clone(),
            nick: nick.clone(),
            left,
            time: SystemTime::now(),
        })));
    }

    /// What a joiner is given: `history` latest lines, or every retained line
    /// after `since` with a Gap for those no longer retained.
    fn snapshot(&self, since: Option<u64>, history: usize) -> JoinSnapshot {
        let (gap, replay) = match since {
            None => (None, self.latest(history)),
            Some(since) => {
                let first = self.first_retained();
                let gap =
                    (since + 1 < first && since < self.last_seq).then(|| (since + 1, first - 1));
                (gap, self.after(since, usize::MAX))
            }
        };
        JoinSnapshot {
            members: self.members.keys().cloned().collect(),
            last_seq: self.last_seq,
            gap,
            replay,
        }
    }

    /// The first sequence number still retained (`last_seq + 1` when none is).
    fn first_retained(&self) -> u64 {
        self.history
            .front()
            .map_or(self.last_seq + 1, |line| line.seq)
    }

    /// The latest `count` retained lines, in order.
    fn latest(&self, count: usize) -> Vec<Arc<ChatLine>> {
        let skip = self.history.len().saturating_sub(count);
        self.history.iter().skip(skip).cloned().collect()
    }

    /// Up to `limit` retained lines after `since`, in order.
    fn after(&self, since: u64, limit: usize) -> Vec<Arc<ChatLine>> {
        self.history
            .iter()
            .filter(|line| line.seq > since)
            .take(limit)
            .cloned()
            .collect()
    }
}
