//! [`RoomHub`]: the rooms of one server, in memory. Each room (`room.rs`)
//! keeps its members, its latest sequence number, a ring of recent lines, and
//! a live feed every member reads; the hub finds, creates and forgets rooms.
//!
//! Order: a line gets its sequence number and enters the feed under the room's
//! lock, so every member reads lines in one order. A join takes its snapshot
//! (members, history) and subscribes to the feed under the same lock, so a
//! joiner misses nothing and sees nothing twice between history and live.
//!
//! Slow members: the feed is a bounded ring (`member_queue` events). Sending
//! never waits for a reader; a member that falls more than the ring behind
//! loses the oldest events and is told with a Gap (see [`crate::session`]). So a
//! slow member never slows the room, and memory per room is fixed.

mod room;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use tokio::{sync::broadcast, time::Instant};
use tracing::debug;

pub use room::Origin;
use room::{Room, RoomState, lock};

use crate::{
    error::ChatError,
    event::{ChatLine, HistoryPage, JoinSnapshot, LeaveReason, Presence, RoomEvent, RoomSummary},
    names::{Nick, RoomName},
};

/// The sizes a hub works with.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Lines a joiner gets without `since_seq`.
    pub history: usize,
    /// Lines retained per room.
    pub retain: usize,
    /// Events a member may fall behind (the feed's ring size).
    pub member_queue: usize,
    /// Rooms held at once.
    pub max_rooms: usize,
    /// At the room limit, forget the longest-idle room without members (and
    /// its history) to make room for a new one. Off when history lives
    /// elsewhere and the hub is only a mirror (the NATS backplane).
    pub evict_idle_rooms: bool,
}

/// A member's place in a room: what it was given on joining and its live feed.
#[derive(Debug)]
pub struct Membership {
    /// Members, last sequence number, gap and history at the moment of joining.
    pub snapshot: JoinSnapshot,
    /// Every event after the snapshot, in room order.
    pub feed: broadcast::Receiver<RoomEvent>,
}

/// The rooms of this server.
#[derive(Debug)]
pub struct RoomHub {
    limits: HubLimits,
    rooms: Mutex<HashMap<RoomName, Arc<Room>>>,
}

impl RoomHub {
    /// An empty hub.
    pub fn new(limits: HubLimits) -> Self {
        Self {
            limits,
            rooms: Mutex::default(),
        }
    }

    /// The sizes this hub was built with.
    pub fn limits(&self) -> HubLimits {
        self.limits
    }

    fn existing(&self, name: &RoomName) -> Option<Arc<Room>> {
        lock(&self.rooms).get(name).cloned()
    }

    /// Every room held, with its name, without holding the map's lock after.
    fn all(&self) -> Vec<(RoomName, Arc<Room>)> {
        lock(&self.rooms)
            .iter()
            .map(|(name, room)| (name.clone(), room.clone()))
            .collect()
    }

    fn open(&self, name: &RoomName) -> Result<Arc<Room>, ChatError> {
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(name) {
            return Ok(room.clone());
        }
        if rooms.len() >= self.limits.max_rooms
            && !(self.limits.evict_idle_rooms && Self::evict_idlest(&mut rooms))
        {
            return Err(ChatError::TooManyRooms(self.limits.max_rooms));
        }
        let room = Arc::new(Mutex::new(RoomState::new(self.limits.member_queue)));
        rooms.insert(name.clone(), room.clone());
        Ok(room)
    }

    /// Forgets the room without members that was idle longest; false when
    /// every room has members. Called with the rooms map locked.
    fn evict_idlest(rooms: &mut HashMap<RoomName, Arc<Room>>) -> bool {
        let mut idlest: Option<(RoomName, Option<Instant>)> = None;
        for (name, room) in rooms.iter() {
            let state = lock(room);
            if state.has_members() {
                continue;
            }
            if idlest
                .as_ref()
                .is_none_or(|(_, active)| state.last_active < *active)
            {
                idlest = Some((name.clone(), state.last_active));
            }
        }
        let Some((name, _)) = idlest else {
            return false;
        };
        if let Some(room) = rooms.remove(&name) {
            lock(&room).removed = true;
            debug!(room = %name, "forgot an idle room to make room for a new one");
        }
        true
    }

    /// Runs `f` on the room's state under its lock, creating the room if needed
    /// and retrying if it was removed meanwhile.
    fn with_room<T>(
        &self,
        name: &RoomName,
        mut f: impl FnMut(&mut RoomState) -> T,
    ) -> Result<T, ChatError> {
        loop {
            let room = self.open(name)?;
            let mut state = lock(&room);
            if state.removed {
                continue;
            }
            state.last_active = Some(Instant::now());
            return Ok(f(&mut state));
        }
    }

    /// Adds a local member: refused if the nick is in use by a member of this
    /// server (a remote holder is replaced: the backplane already checked).
    /// Others are told; the joiner gets the snapshot and the feed after it.
    pub fn join(
        &self,
        room: &RoomName,
        nick: &Nick,
        since: Option<u64>,
    ) -> Result<Membership, ChatError> {
        let history = self.limits.history;
        self.with_room(room, |state| state.join(room, nick, since, history))?
    }

    /// Removes a local member and tells the others why. Removing one that is
    /// not there does nothing.
    pub fn leave(&self, room: &RoomName, nick: &Nick, reason: LeaveReason) {
        let Some(handle) = self.existing(room) else {
            return;
        };
        let now_idle = lock(&handle).leave(room, nick, reason);
        if now_idle {
            self.remove_if_idle(room);
        }
    }

    /// Drops a room that has neither members nor history, to free its slot.
    fn remove_if_idle(&self, room: &RoomName) {
        let mut rooms = lock(&self.rooms);
        let Some(handle) = rooms.get(room).cloned() else {
            return;
        };
        let mut state = lock(&handle);
        if state.is_idle() {
            state.removed = true;
            rooms.remove(room);
        }
    }

    /// Says a line with the next sequence number of the room (this server
    /// sequences: the local backplane).
    pub fn say(
        &self,
        room: &RoomName,
        nick: &Nick,
        text: String,
    ) -> Result<Arc<ChatLine>, ChatError> {
        let retain = self.limits.retain;
        let mut text = Some(text);
        self.with_room(room, |state| {
            state.say(room, nick, text.take().unwrap_or_default(), retain)
        })
    }

    /// Takes in a line sequenced elsewhere (the NATS backplane), in order. A
    /// line at or below the room's last sequence number is a duplicate and is
    /// ignored; returns whether it was new.
    pub fn apply_line(&self, line: ChatLine) -> Result<bool, ChatError> {
        let retain = self.limits.retain;
        let room = line.room.clone();
        let mut line = Some(line);
        self.with_room(&room, |state| {
            line.take()
                .is_some_and(|line| state.apply_line(line, retain))
        })
    }

    /// Takes in a member of another replica joining or leaving, and tells the
    /// local members. Local members are never changed from outside.
    pub fn apply_remote_presence(&self, presence: Presence) -> Result<(), ChatError> {
        let room = presence.room.clone();
        let mut presence = Some(presence);
        self.with_room(&room, |state| {
            if let Some(presence) = presence.take() {
                state.apply_remote_presence(presence);
            }
        })
    }

    /// Starts a reconciliation of the room's members from other replicas
    /// (the NATS backplane reads the nick claims after reconnecting, when
    /// presence notes may have been missed): from now on the room notes
    /// which nicks a presence note changes. Finish with
    /// [`Self::sync_remote_members`].
    pub fn begin_remote_sync(&self, room: &RoomName) -> Result<(), ChatError> {
        self.with_room(room, RoomState::begin_remote_sync)
    }

    /// Makes the room's members from other replicas those in `remote` (read
    /// after [`Self::begin_remote_sync`]), and tells the local members of
    /// each change. A nick a note changed since the read began keeps what
    /// the note said, which is newer; local members are never changed from
    /// outside. `None` (the read failed) changes nothing.
    pub fn sync_remote_members(
        &self,
        room: &RoomName,
        remote: Option<&BTreeSet<Nick>>,
    ) -> Result<(), ChatError> {
        self.with_room(room, |state| state.sync_remote_members(room, remote))
    }

    /// Every local member of every room (the NATS backplane keeps their
    /// claims alive).
    pub fn local_members(&self) -> Vec<(RoomName, Nick)> {
        let mut members = Vec::new();
        for (name, room) in self.all() {
            let state = lock(&room);
            for nick in state.local_members() {
                members.push((name.clone(), nick.clone()));
            }
        }
        members
    }

    /// Whether `nick` is in `room` on this server.
    pub fn is_local_member(&self, room: &RoomName, nick: &Nick) -> bool {
        self.existing(room)
            .is_some_and(|room| lock(&room).is_local_member(nick))
    }

    /// The room's latest sequence number, if the room is held here.
    pub fn last_seq(&self, room: &RoomName) -> Option<u64> {
        self.existing(room).map(|room| lock(&room).last_seq())
    }

    /// Rooms with members or history, ordered by name.
    pub fn rooms(&self) -> Vec<RoomSummary> {
        let mut summaries: Vec<RoomSummary> = self
            .all()
            .into_iter()
            .map(|(name, room)| lock(&room).summary(&name))
            .filter(|summary| !summary.members.is_empty() || summary.last_seq > 0)
            .collect();
        summaries.sort_by(|a, b| a.name.cmp(&b.name));
        summaries
    }

    /// Up to `limit` retained lines after `since` (or the latest `limit`).
    pub fn history(
        &self,
        room: &RoomName,
        since: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        self.existing(room)
            .and_then(|handle| lock(&handle).page(since, limit))
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::{HubLimits, RoomHub};
    use crate::{
        error::ChatError,
        event::{LeaveReason, RoomEvent},
        names::{Nick, RoomName},
    };

    fn hub(retain: usize) -> RoomHub {
        RoomHub::new(HubLimits {
            history: 3,
            retain,
            member_queue: 8,
            max_rooms: 2,
            evict_idle_rooms: false,
        })
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn nick(name: &str) -> Nick {
        Nick::parse(name).unwrap()
    }

    #[test]
    fn lines_get_consecutive_sequence_numbers_and_history_keeps_the_latest() {
        let hub = hub(5);
        let lobby = room("lobby");
        for i in 1..=7 {
            let line = hub.say(&lobby, &nick("ana"), format!("l{i}")).unwrap();
            assert_eq!(line.seq, i);
        }
        let joined = hub.join(&lobby, &nick("bo"), None).unwrap().snapshot;
        assert_eq!(joined.last_seq, 7);
        let seqs: Vec<u64> = joined.replay.iter().map(|line| line.seq).collect();
        assert_eq!(seqs, [5, 6, 7], "the last `history` lines");
        assert_eq!(joined.gap, None);
    }

    #[test]
    fn since_replays_what_was_missed_with_a_gap_for_what_is_gone() {
        let hub = hub(5);
        let lobby = room("lobby");
        for i in 1..=10 {
            hub.say(&lobby, &nick("ana"), format!("l{i}")).unwrap();
        }
        let joined = hub.join(&lobby, &nick("bo"), Some(2)).unwrap().snapshot;
        assert_eq!(joined.gap, Some((3, 5)));
        let seqs: Vec<u64> = joined.replay.iter().map(|line| line.seq).collect();
        assert_eq!(seqs, [6, 7, 8, 9, 10]);

        let caught_up = hub.join(&lobby, &nick("cy"), Some(8)).unwrap().snapshot;
        assert_eq!(caught_up.gap, None);
        assert_eq!(caught_up.replay.len(), 2);
        let ahead = hub.join(&lobby, &nick("di"), Some(99)).unwrap().snapshot;
        assert_eq!((ahead.gap, ahead.replay.len()), (None, 0));
    }

    #[test]
    fn a_nick_is_unique_in_a_room_until_it_leaves() {
        let hub = hub(5);
        let lobby = room("lobby");
        let _ana = hub.join(&lobby, &nick("ana"), None).unwrap();
        assert!(matches!(
            hub.join(&lobby, &nick("ana"), None),
            Err(ChatError::NickTaken { .. })
        ));
        assert!(hub.join(&room("other"), &nick("ana"), None).is_ok());
        hub.leave(&lobby, &nick("ana"), LeaveReason::Bye);
        assert!(hub.join(&lobby, &nick("ana"), None).is_ok());
    }

    #[test]
    fn syncing_remote_members_tells_locals_each_change_but_keeps_newer_news() {
        let hub = hub(5);
        let lobby = room("lobby");
        let mut ana = hub.join(&lobby, &nick("ana"), None).unwrap();
        for remote in ["bo", "cy"] {
            hub.apply_remote_presence(crate::event::Presence {
                room: lobby.clone(),
                nick: nick(remote),
                left: None,
                time: std::time::SystemTime::now(),
            })
            .unwrap();
        }
        // The claims say: cy stayed, di came, bo went, and ed is there; ana
        // is local, so a claims list without her changes nothing about her.
        // ed left while they were read: the claims are older than that.
        hub.begin_remote_sync(&lobby).unwrap();
        hub.apply_remote_presence(crate::event::Presence {
            room: lobby.clone(),
            nick: nick("ed"),
            left: Some(crate::event::LeaveReason::Bye),
            time: std::time::SystemTime::now(),
        })
        .unwrap();
        let remote = [nick("cy"), nick("di"), nick("ed")].into_iter().collect();
        hub.sync_remote_members(&lobby, Some(&remote)).unwrap();
        let mut seen = Vec::new();
        while let Ok(event) = ana.feed.try_recv() {
            if let RoomEvent::Presence(p) = event {
                seen.push(format!("{} {:?}", p.nick, p.left));
            }
        }
        assert_eq!(
            seen,
            ["bo None", "cy None", "bo Some(Disconnected)", "di None"]
        );
        let members = &hub.rooms()[0].members;
        assert_eq!(*members, [nick("ana"), nick("cy"), nick("di")]);
    }

    #[test]
    fn members_see_joins_lines_and_leaves_in_one_order() {
        let hub = hub(5);
        let lobby = room("lobby");
        let mut ana = hub.join(&lobby, &nick("ana"), None).unwrap();
        let bo = hub.join(&lobby, &nick("bo"), None).unwrap();
        assert_eq!(bo.snapshot.members, [nick("ana"), nick("bo")]);
        hub.say(&lobby, &nick("bo"), "hi".into()).unwrap();
        hub.leave(&lobby, &nick("bo"), LeaveReason::Bye);
        let mut seen = Vec::new();
        while let Ok(event) = ana.feed.try_recv() {
            seen.push(match event {
                RoomEvent::Line(line) => format!("line {} {}", line.seq, line.text),
                RoomEvent::Presence(p) => format!("{} {:?}", p.nick, p.left),
            });
        }
        assert_eq!(seen, ["bo None", "line 1 hi", "bo Some(Bye)"]);
    }

    #[test]
    fn rooms_past_the_limit_are_refused_and_idle_rooms_free_their_slot() {
        let hub = hub(5);
        hub.join(&room("a"), &nick("x"), None).unwrap();
        hub.join(&room("b"), &nick("x"), None).unwrap();
        assert_eq!(
            hub.join(&room("c"), &nick("x"), None).unwrap_err(),
            ChatError::TooManyRooms(2)
        );
        hub.leave(&room("a"), &nick("x"), LeaveReason::Bye);
        assert!(hub.join(&room("c"), &nick("x"), None).is_ok());
        let names: Vec<String> = hub.rooms().iter().map(|r| r.name.to_string()).collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[test]
    fn at_the_limit_the_idlest_empty_room_is_forgotten_when_eviction_is_on() {
        let hub = RoomHub::new(HubLimits {
            history: 3,
            retain: 5,
            member_queue: 8,
            max_rooms: 2,
            evict_idle_rooms: true,
        });
        hub.say(&room("old"), &nick("x"), "1".into()).unwrap();
        hub.say(&room("newer"), &nick("x"), "1".into()).unwrap();
        let _member = hub.join(&room("newer"), &nick("y"), None).unwrap();
        // "old" has no members and was idle longest: it goes.
        hub.say(&room("new"), &nick("x"), "1".into()).unwrap();
        let names: Vec<String> = hub.rooms().iter().map(|r| r.name.to_string()).collect();
        assert_eq!(names, ["new", "newer"]);
        // Every room has a member now: nothing can go.
        let _other = hub.join(&room("new"), &nick("z"), None).unwrap();
        assert_eq!(
            hub.say(&room("third"), &nick("x"), "1".into()).unwrap_err(),
            ChatError::TooManyRooms(2)
        );
    }

    #[test]
    fn history_pages_and_unknown_rooms() {
        let hub = hub(5);
        let lobby = room("lobby");
        assert!(matches!(
            hub.history(&lobby, None, 10),
            Err(ChatError::NoSuchRoom(_))
        ));
        for i in 1..=4 {
            hub.say(&lobby, &nick("ana"), format!("l{i}")).unwrap();
        }
        let page = hub.history(&lobby, Some(1), 2).unwrap();
        let seqs: Vec<u64> = page.lines.iter().map(|line| line.seq).collect();
        assert_eq!((seqs, page.last_seq), (vec![2, 3], 4));
        let latest = hub.history(&lobby, None, 2).unwrap();
        let seqs: Vec<u64> = latest.lines.iter().map(|line| line.seq).collect();
        assert_eq!(seqs, [3, 4]);
    }

    proptest::proptest! {
        /// Whatever was said, retained and asked for, a join's gap and replay
        /// cover exactly the lines after `since`, once each, in order; without
        /// `since` the replay is the latest `history` lines.
        #[test]
        fn a_join_snapshot_covers_exactly_what_was_asked(
            said in 0u64..40,
            retain in 1usize..12,
            history in 0usize..12,
            since in proptest::option::of(0u64..45),
        ) {
            let hub = RoomHub::new(HubLimits {
                history,
                retain,
                member_queue: 8,
                max_rooms: 4,
                evict_idle_rooms: false,
            });
            let lobby = room("lobby");
            for i in 0..said {
                hub.say(&lobby, &nick("ana"), format!("l{i}")).unwrap();
            }
            let snapshot = hub.join(&lobby, &nick("bo"), since).unwrap().snapshot;
            proptest::prop_assert_eq!(snapshot.last_seq, said);
            let seqs: Vec<u64> = snapshot.replay.iter().map(|line| line.seq).collect();
            match since {
                None => {
                    let count = history.min(retain).min(usize::try_from(said).unwrap());
                    let expected: Vec<u64> = (said + 1 - count as u64..=said).collect();
                    proptest::prop_assert_eq!(seqs, expected);
                    proptest::prop_assert_eq!(snapshot.gap, None);
                }
                Some(since) => {
                    let mut covered = since;
                    if let Some((from, to)) = snapshot.gap {
                        proptest::prop_assert_eq!(from, since + 1);
                        proptest::prop_assert!(to >= from);
                        covered = to;
                    }
                    for seq in seqs {
                        proptest::prop_assert_eq!(seq, covered + 1);
                        covered = seq;
                    }
                    proptest::prop_assert_eq!(covered, said.max(since));
                }
            }
        }
    }

    #[test]
    fn applied_lines_are_deduplicated_by_sequence() {
        let hub = hub(5);
        let lobby = room("lobby");
        let line = hub.say(&lobby, &nick("ana"), "one".into()).unwrap();
        assert!(!hub.apply_line((*line).clone()).unwrap());
        let mut next = (*line).clone();
        next.seq = 2;
        assert!(hub.apply_line(next).unwrap());
        assert_eq!(hub.last_seq(&lobby), Some(2));
    }
}
