//! A disk under redb that knows what was synced, and can lose power.
//!
//! Reads see every write, as they would through the OS page cache. A write or a
//! resize is durable only once a later `sync_data` returns. When the disk is
//! armed, it counts its writes, resizes and syncs; the one after the chosen
//! count loses power: it fails, as does everything after it, and what survives
//! is the durable image plus what the [`CrashModel`] keeps of the writes since
//! the last sync (including the one that was in progress).

use std::{
    fmt, io,
    sync::{Arc, Mutex, PoisonError},
};

use proptest::prelude::*;

/// Bytes a disk writes atomically: a torn write keeps or loses whole sectors.
pub(crate) const SECTOR: usize = 4096;

/// A position in a list whose length is known only when the power goes:
/// thousandths of the length, rounded down.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permille(pub(crate) u16);

impl Permille {
    /// The position in a list of `len` (below `len` unless it is 0).
    fn of(self, len: usize) -> usize {
        len * usize::from(self.0.min(999)) / 1000
    }
}

/// What survives of one write that was in progress when the power went.
#[derive(Debug, Clone)]
pub(crate) enum Tear {
    /// Its first bytes (fewer than all of them).
    Prefix(Permille),
    /// Some of its sectors: sector `i` (counted from offset 0 of the disk)
    /// survives when bit `i % 64` is set.
    Sectors(u64),
}

/// What survives of one unsynced write or resize.
#[derive(Debug, Clone)]
pub(crate) enum Fate {
    /// Nothing.
    Lost,
    /// All of it.
    Kept,
    /// Part of it; a resize cannot tear, so a torn one is lost.
    Torn(Tear),
}

/// What a power loss keeps of the writes and resizes since the last sync.
#[derive(Debug, Clone)]
pub(crate) enum CrashModel {
    /// None of them.
    DropUnsynced,
    /// All of them: everything issued reached the platter, and only the
    /// sync's answer was lost (the write in flight made it).
    KeepUnsynced,
    /// The first few, in the order they were issued, then one torn; the rest
    /// are lost (`kept` picks how many).
    TornTail {
        /// How many survive whole.
        kept: Permille,
        /// What survives of the next one.
        tear: Tear,
    },
    /// Any of them, in any combination (a disk cache reorders writes between
    /// flushes): the fate of the `i`-th is `fates[i]`, and lost past the end.
    Reordered(Vec<Fate>),
}

/// Whether the disk keeps its promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syncs {
    /// A sync makes every earlier write durable.
    Honest,
    /// A sync returns at once and makes nothing durable: the disk that lies
    /// about fsync, which the check must catch.
    Lying,
}

/// A write or a resize, as the disk applies it.
#[derive(Debug, Clone)]
enum Change {
    Write { offset: usize, data: Vec<u8> },
    Resize(usize),
}

/// What redb asks the disk to do that a power loss can interrupt.
enum Operation {
    Change(Change),
    Sync,
}

struct State {
    /// Every write so far: what reads see.
    live: Vec<u8>,
    /// What was synced: what survives a power loss for certain.
    durable: Vec<u8>,
    /// Writes and resizes since the last (honest) sync, in issue order.
    unsynced: Vec<Change>,
    syncs: Syncs,
    /// When armed: how many more operations succeed, and what then survives.
    armed: Option<(u64, CrashModel)>,
    /// Operations since the disk was armed.
    operations: u64,
    /// The image after the power loss; `Some` once the power is gone.
    survived: Option<Vec<u8>>,
}

/// A handle on the disk: redb owns one, the test keeps another.
#[derive(Clone)]
pub(crate) struct SimulatedDisk(Arc<Mutex<State>>);

impl fmt::Debug for SimulatedDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("SimulatedDisk")
            .field("len", &state.live.len())
            .field("unsynced", &state.unsynced.len())
            .field("operations", &state.operations)
            .field("powered", &state.survived.is_none())
            .finish_non_exhaustive()
    }
}

impl SimulatedDisk {
    /// An empty disk.
    pub(crate) fn new(syncs: Syncs) -> Self {
        Self::with_image(Vec::new(), syncs)
    }

    /// An honest disk holding `image`, all of it durable: a disk after a restart.
    pub(crate) fn from_image(image: Vec<u8>) -> Self {
        Self::with_image(image, Syncs::Honest)
    }

    fn with_image(image: Vec<u8>, syncs: Syncs) -> Self {
        Self(Arc::new(Mutex::new(State {
            live: image.clone(),
            durable: image,
            unsynced: Vec::new(),
            syncs,
            armed: None,
            operations: 0,
            survived: None,
        })))
    }

    /// Loses power at the operation (write, resize or sync) after the next
    /// `operations`, with `model` deciding what survives.
    pub(crate) fn arm(&self, operations: u64, model: CrashModel) {
        let mut state = self.state();
        state.armed = Some((operations, model));
        state.operations = 0;
    }

    /// Loses power now, unless it is already gone, and returns what survived.
    pub(crate) fn pull_plug(&self) -> Vec<u8> {
        let mut state = self.state();
        state.lose_power();
        state.survived.clone().unwrap_or_default()
    }

    /// Operations counted since the disk was armed.
    pub(crate) fn operations(&self) -> u64 {
        self.state().operations
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere under the lock leaves consistent bytes: every
        // change to the state is one assignment or one copy.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn operate(&self, operation: Operation) -> io::Result<()> {
        self.state().operate(operation)
    }
}

impl State {
    fn operate(&mut self, operation: Operation) -> io::Result<()> {
        if self.survived.is_some() {
            return Err(power_lost());
        }
        if let Some((after, _)) = &self.armed {
            if self.operations == *after {
                // The operation in progress: a write may land, whole or torn.
                if let Operation::Change(change) = operation {
                    self.unsynced.push(change);
                }
                self.lose_power();
                return Err(power_lost());
            }
            self.operations += 1;
        }
        match operation {
            Operation::Change(change) => {
                apply(&mut self.live, &change, &Fate::Kept);
                self.unsynced.push(change);
            }
            Operation::Sync if self.syncs == Syncs::Honest => {
                for change in self.unsynced.drain(..) {
                    apply(&mut self.durable, &change, &Fate::Kept);
                }
            }
            Operation::Sync => {}
        }
        Ok(())
    }

    /// Fixes what survives, once.
    fn lose_power(&mut self) {
        if self.survived.is_some() {
            return;
        }
        let model = self
            .armed
            .take()
            .map_or(CrashModel::DropUnsynced, |(_, model)| model);
        let mut image = std::mem::take(&mut self.durable);
        let unsynced = std::mem::take(&mut self.unsynced);
        for (position, change) in unsynced.iter().enumerate() {
            apply(&mut image, change, &fate(&model, position, unsynced.len()));
        }
        self.survived = Some(image);
    }
}

/// The fate `model` gives to the `position`-th of `count` unsynced changes.
fn fate(model: &CrashModel, position: usize, count: usize) -> Fate {
    match model {
        CrashModel::DropUnsynced => Fate::Lost,
        CrashModel::KeepUnsynced => Fate::Kept,
        CrashModel::TornTail { kept, tear } => {
            let kept = kept.of(count + 1);
            match position.cmp(&kept) {
                std::cmp::Ordering::Less => Fate::Kept,
                std::cmp::Ordering::Equal => Fate::Torn(tear.clone()),
                std::cmp::Ordering::Greater => Fate::Lost,
            }
        }
        CrashModel::Reordered(fates) => fates.get(position).cloned().unwrap_or(Fate::Lost),
    }
}

/// Applies what survives of `change` to `image`. Writes past the end extend it
/// with zeros, as they extend a file.
fn apply(image: &mut Vec<u8>, change: &Change, fate: &Fate) {
    match (change, fate) {
        (_, Fate::Lost) | (Change::Resize(_), Fate::Torn(_)) => {}
        (Change::Resize(len), Fate::Kept) => image.resize(*len, 0),
        (Change::Write { offset, data }, Fate::Kept) => write_at(image, *offset, data),
        (Change::Write { offset, data }, Fate::Torn(Tear::Prefix(bytes))) => {
            write_at(image, *offset, &data[..bytes.of(data.len())]);
        }
        (Change::Write { offset, data }, Fate::Torn(Tear::Sectors(mask))) => {
            let mut start = *offset;
            let end = offset + data.len();
            while start < end {
                let sector = start / SECTOR;
                let stop = ((sector + 1) * SECTOR).min(end);
                if mask & (1 << (sector % 64)) != 0 {
                    write_at(image, start, &data[start - offset..stop - offset]);
                }
                start = stop;
            }
        }
    }
}

fn write_at(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

fn power_lost() -> io::Error {
    io::Error::other("simulated power loss")
}

fn position(offset: u64) -> io::Result<usize> {
    usize::try_from(offset).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset"))
}

impl redb::StorageBackend for SimulatedDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.state();
        let start = position(offset)?;
        let bytes = state
            .live
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.operate(Operation::Change(Change::Resize(position(len)?)))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.operate(Operation::Sync)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.operate(Operation::Change(Change::Write {
            offset: position(offset)?,
            data: data.to_vec(),
        }))
    }
}

fn permille() -> impl Strategy<Value = Permille> {
    (0..1000_u16).prop_map(Permille)
}

/// Any tear.
fn tear() -> impl Strategy<Value = Tear> {
    prop_oneof![
        permille().prop_map(Tear::Prefix),
        any::<u64>().prop_map(Tear::Sectors),
    ]
}

/// Any crash model, each as likely.
pub(crate) fn crash_model() -> impl Strategy<Value = CrashModel> {
    let fate = prop_oneof![
        Just(Fate::Lost),
        Just(Fate::Kept),
        tear().prop_map(Fate::Torn),
    ];
    prop_oneof![
        Just(CrashModel::DropUnsynced),
        Just(CrashModel::KeepUnsynced),
        (permille(), tear()).prop_map(|(kept, tear)| CrashModel::TornTail { kept, tear }),
        proptest::collection::vec(fate, 0..48).prop_map(CrashModel::Reordered),
    ]
}

#[cfg(test)]
mod tests {
    use redb::StorageBackend as _;

    use super::*;

    /// A disk with one synced sector of 1s, then an unsynced sector of 2s
    /// and a two-sector unsynced write of 3s over the first.
    fn written(syncs: Syncs) -> SimulatedDisk {
        let disk = SimulatedDisk::new(syncs);
        disk.set_len(2 * SECTOR as u64).unwrap();
        disk.write(0, &[1; SECTOR]).unwrap();
        disk.sync_data().unwrap();
        disk.write(SECTOR as u64, &[2; SECTOR]).unwrap();
        disk.write(0, &[3; 2 * SECTOR]).unwrap();
        disk
    }

    fn read_all(disk: &SimulatedDisk) -> Vec<u8> {
        let mut bytes = vec![0; usize::try_from(disk.len().unwrap()).unwrap()];
        disk.read(0, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn reads_see_unsynced_writes_but_power_loss_keeps_only_synced_ones() {
        let disk = written(Syncs::Honest);
        assert_eq!(read_all(&disk), [3; 2 * SECTOR]);
        let mut expected = vec![1; SECTOR];
        expected.resize(2 * SECTOR, 0);
        assert_eq!(disk.pull_plug(), expected);
        assert!(disk.write(0, &[4]).is_err(), "no writes after power loss");
    }

    #[test]
    fn a_lying_disk_keeps_nothing_it_claimed_to_sync() {
        assert_eq!(written(Syncs::Lying).pull_plug(), Vec::<u8>::new());
    }

    #[test]
    fn the_armed_operation_fails_and_may_land_torn() {
        let disk = written(Syncs::Honest);
        disk.sync_data().unwrap();
        disk.arm(
            1,
            CrashModel::TornTail {
                kept: Permille(500),
                tear: Tear::Sectors(0b10),
            },
        );
        disk.write(0, &[5; SECTOR]).unwrap();
        assert!(disk.write(0, &[6; 2 * SECTOR]).is_err());
        assert_eq!(disk.operations(), 1);
        let survived = disk.pull_plug();
        assert_eq!(survived[..SECTOR], [5; SECTOR], "the write before is kept");
        assert_eq!(
            survived[SECTOR..],
            [6; SECTOR],
            "only sector 1 of the torn one"
        );
    }

    #[test]
    fn a_torn_prefix_keeps_the_first_bytes_only() {
        let disk = written(Syncs::Honest);
        disk.arm(
            0,
            CrashModel::Reordered(vec![Fate::Lost, Fate::Torn(Tear::Prefix(Permille(500)))]),
        );
        let survived = disk.pull_plug();
        assert_eq!(survived[..SECTOR], [3; SECTOR]);
        assert_eq!(survived[SECTOR..], [0; SECTOR]);
    }
}
