//! One stream's deletion bookkeeping during a sync: the keys its reads saw, what a complete
//! read covered (the whole list, a window of days, a parent's rows), and whether something
//! left it unsettled. The planner gives each stream that detects deletions one
//! ([`super::plan::Run::presence`]); the readers note into it; [`super::deletions::resolve`]
//! decides from it once the sync has read everything.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::known::{Attrs, Key, Known, Seen, SeenMark};

/// What a complete read of a stream covered this sync.
#[derive(Debug, Default)]
pub(super) struct Cover {
    /// The whole list, with no filter.
    pub(super) all: bool,
    /// Records dated on or after this day (days since 1970-01-01).
    pub(super) from_day: Option<i32>,
    /// The parents (owners) whose rows were all read, and the order they came in (so that
    /// a read dropped as changed drops them too).
    pub(super) owners: HashSet<i64>,
    pub(super) owner_log: Vec<i64>,
}

/// A place in the keys and owners noted ([`Presence::noted`]).
#[derive(Debug, Clone, Copy)]
pub struct NotedMark {
    pub(super) seen: SeenMark,
    pub(super) owners: usize,
}

/// One stream's deletion bookkeeping during a sync.
pub struct Presence {
    /// What the STATE says the warehouse has.
    pub(super) old: Mutex<Option<Known>>,
    /// The keys read this sync, with their owner and day.
    pub(super) seen: Mutex<Seen>,
    pub(super) cover: Mutex<Cover>,
    /// A list changed while it was read and could not be read consistently: no decision.
    pub(super) unsettled: AtomicBool,
}

impl Presence {
    pub fn new(old: Option<Known>) -> Presence {
        Presence {
            old: Mutex::new(old),
            seen: Mutex::new(Seen::default()),
            cover: Mutex::new(Cover::default()),
            unsettled: AtomicBool::new(false),
        }
    }

    /// How many keys the STATE remembers.
    pub fn remembered(&self) -> Option<usize> {
        self.old.lock().unwrap().as_ref().map(|k| k.count)
    }

    /// When the stream was last read in full.
    pub fn swept_at(&self) -> Option<DateTime<Utc>> {
        self.old.lock().unwrap().as_ref().and_then(|k| k.swept_at)
    }

    pub fn saw(&self, key: Key, attrs: Attrs) {
        self.seen.lock().unwrap().push(key, attrs);
    }

    /// Where the keys noted so far end: [`Presence::forget_since`] drops those noted after.
    pub fn noted(&self) -> NotedMark {
        NotedMark {
            seen: self.seen.lock().unwrap().mark(),
            owners: self.cover.lock().unwrap().owner_log.len(),
        }
    }

    /// Drops the keys and the owners noted since `mark` (a read that changed under us is read
    /// again).
    pub fn forget_since(&self, mark: NotedMark) {
        self.seen.lock().unwrap().truncate(mark.seen);
        let mut c = self.cover.lock().unwrap();
        let dropped: Vec<i64> = c.owner_log.drain(mark.owners..).collect();
        for o in dropped {
            c.owners.remove(&o);
        }
    }

    pub fn covered_all(&self) {
        self.cover.lock().unwrap().all = true;
    }

    pub fn covered_from(&self, day: i32) {
        let mut c = self.cover.lock().unwrap();
        c.from_day = Some(c.from_day.map_or(day, |d| d.min(day)));
    }

    pub fn covered_owner(&self, owner: i64) {
        let mut c = self.cover.lock().unwrap();
        if c.owners.insert(owner) {
            c.owner_log.push(owner);
        }
    }

    pub fn unsettled(&self) {
        self.unsettled.store(true, Ordering::Relaxed);
    }
}
