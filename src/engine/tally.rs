//! What changes while a stream is read: its counts, its watermark (what its bookmark may move
//! to), whether it stopped, and the few records the engine keeps.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::client::Counters;

/// Whether a stream is still being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Running = 0,
    /// Not readable with this token or account (403, a feature turned off).
    Skipped = 1,
    /// Failed for good: nothing more of it is read and its bookmark does not move.
    Failed = 2,
}

/// The newest `updated_at` that counts toward a bookmark, and the earliest `Date` of the
/// responses it came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermark {
    pub newest: Option<DateTime<Utc>>,
    pub served: Option<DateTime<Utc>>,
    /// The tap's own clock when the first response was read.
    pub read_at: Option<DateTime<Utc>>,
}

/// How far Harvest's clock may run ahead of this machine's before a bookmark or `start_date`
/// is warned about as being in the future.
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

impl Watermark {
    pub fn saw(&mut self, updated_at: Option<DateTime<Utc>>) {
        if let Some(u) = updated_at {
            if self.newest.is_none_or(|cur| cur < u) {
                self.newest = Some(u);
            }
        }
    }

    pub fn served(&mut self, at: Option<DateTime<Utc>>) {
        if self.read_at.is_none() {
            self.read_at = Some(Utc::now());
        }
        if let Some(at) = at {
            if self.served.is_none_or(|cur| at < cur) {
                self.served = Some(at);
            }
        }
    }

    /// The bookmark to write after a complete read, if it moves: the newest `updated_at`,
    /// never past the moment the first response was served (a record changed while the sync
    /// ran is caught by the next one), nor past the tap's own clock then (a record dated in
    /// 2099 does not stop every later sync; a clock behind Harvest's only re-reads a little),
    /// never behind `since`.
    ///
    /// When the newest `updated_at`'s second had ended before the first response was served
    /// (Harvest's `Date`, whole seconds), every record of that second was read and sent: the
    /// bookmark is the next second, so that the next sync does not read (and send, and read
    /// the children of) them again. A second that had not ended is read again, as any.
    pub fn next_bookmark(&self, since: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let newest = self.newest?;
        let clock = self.read_at.unwrap_or_else(Utc::now);
        let capped = match self.served {
            Some(served) if newest < served => (newest + chrono::TimeDelta::seconds(1)).min(served),
            Some(served) => served,
            None => newest,
        }
        .min(clock);
        Some(since.map_or(capped, |s| capped.max(s)))
    }

    /// The bookmark of a stream read on signs: the moment its signs were read up to (the
    /// earliest `Date` of the responses of its parent and of the lists its signs came from),
    /// never past the tap's own clock then, never behind `since`. Every change before it
    /// was a sign this sync, or its parent was read.
    pub fn read_start(&self, since: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let at = self.served?.min(self.read_at.unwrap_or_else(Utc::now));
        Some(since.map_or(at, |s| at.max(s)))
    }
}

pub struct Tally {
    pub records: AtomicU64,
    /// Records already counted in a `record_count` metric.
    pub reported: AtomicU64,
    /// When the sync planned the stream: its `sync_duration` runs from here.
    pub created: std::time::Instant,
    /// Read to its end (or stopped): nothing more is left of it, whatever was planned.
    done: std::sync::atomic::AtomicBool,
    /// Requests made for this stream (none for derived streams).
    pub counters: Arc<Counters>,
    watermark: Mutex<Watermark>,
    status: AtomicU8,
    /// The raw record of the stream that carries the feature flags.
    kept: OnceLock<Map<String, Value>>,
    /// The keys emitted this sync, for a stream that sends each key once: 128-bit digests (16
    /// bytes a key, where the key as a string takes 60 or more).
    sent: Option<Mutex<HashSet<u128>>>,
    /// The list kept changing while it was read: the bookmark stays where it was, so the next
    /// sync reads what may have been skipped.
    held: std::sync::atomic::AtomicBool,
    /// A record read could not be sent (it cannot match the schema).
    incomplete: std::sync::atomic::AtomicBool,
    /// Turns true once the stream was read to its end or stopped: what waits for it
    /// ([`Tally::ended`]) goes on.
    ended: tokio::sync::watch::Sender<bool>,
}

impl Tally {
    pub fn new(distinct: bool) -> Tally {
        Tally {
            reported: AtomicU64::new(0),
            done: std::sync::atomic::AtomicBool::new(false),
            created: std::time::Instant::now(),
            records: AtomicU64::new(0),
            counters: Arc::new(Counters::default()),
            watermark: Mutex::new(Watermark::default()),
            status: AtomicU8::new(Status::Running as u8),
            kept: OnceLock::new(),
            sent: distinct.then(|| Mutex::new(HashSet::new())),
            held: std::sync::atomic::AtomicBool::new(false),
            incomplete: std::sync::atomic::AtomicBool::new(false),
            ended: tokio::sync::watch::Sender::new(false),
        }
    }

    pub fn saw(&self, updated_at: Option<DateTime<Utc>>) {
        self.watermark.lock().unwrap().saw(updated_at);
    }

    pub fn served(&self, at: Option<DateTime<Utc>>) {
        self.watermark.lock().unwrap().served(at);
    }

    pub fn watermark(&self) -> Watermark {
        *self.watermark.lock().unwrap()
    }

    pub fn status(&self) -> Status {
        match self.status.load(Ordering::Relaxed) {
            0 => Status::Running,
            1 => Status::Skipped,
            _ => Status::Failed,
        }
    }

    pub fn running(&self) -> bool {
        self.status() == Status::Running
    }

    /// Stops the stream; `false` if it had stopped already (the first reason stands).
    pub fn stop(&self, why: Status) -> bool {
        let first = self
            .status
            .compare_exchange(
                Status::Running as u8,
                why as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        self.ended.send_replace(true);
        first
    }

    /// Marks the stream read to its end, for the progress lines.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        self.ended.send_replace(true);
    }

    /// Waits until the stream was read to its end or stopped.
    pub async fn ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|ended| *ended).await;
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// Keeps the bookmark where it was this sync.
    pub fn hold_bookmark(&self) {
        self.held.store(true, Ordering::Relaxed);
    }

    pub fn not_all_sent(&self) {
        self.incomplete.store(true, Ordering::Relaxed);
    }

    /// Whether every record read was sent.
    pub fn all_sent(&self) -> bool {
        !self.incomplete.load(Ordering::Relaxed)
    }

    pub fn bookmark_held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    pub fn keep(&self, record: &Map<String, Value>) {
        let _ = self.kept.set(record.clone());
    }

    pub fn kept(&self) -> Option<&Map<String, Value>> {
        self.kept.get()
    }

    /// Whether the stream sends each key once per sync.
    pub fn sends_each_key_once(&self) -> bool {
        self.sent.is_some()
    }

    /// Whether a row with this key is sent: always, unless the stream sends each key once and
    /// this one was sent already.
    pub fn first_time(&self, key: impl FnOnce() -> String) -> bool {
        match &self.sent {
            None => true,
            Some(sent) => sent.lock().unwrap().insert(digest(&key())),
        }
    }
}

/// Two SipHash digests of `key` under different prefixes: a 128-bit digest, which two keys of
/// one sync share with a chance far below any other failure's.
fn digest(key: &str) -> u128 {
    let half = |prefix: u8| {
        let mut h = DefaultHasher::new();
        prefix.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<DateTime<Utc>> {
        crate::util::parse_datetime(s)
    }

    #[test]
    fn the_bookmark_is_the_newest_capped_by_the_first_response_and_never_goes_back() {
        let mut w = Watermark::default();
        assert_eq!(
            w.next_bookmark(at("2024-01-01")),
            None,
            "nothing seen: it stays"
        );
        w.saw(at("2024-03-01"));
        w.saw(at("2024-02-01"));
        w.saw(None);
        assert_eq!(
            w.next_bookmark(None),
            at("2024-03-01"),
            "no Date: the newest, read again"
        );
        w.served(at("2024-02-15"));
        w.served(at("2024-02-20"));
        assert_eq!(
            w.next_bookmark(None),
            at("2024-02-15"),
            "capped by the earliest Date"
        );
        assert_eq!(
            w.next_bookmark(at("2024-02-18")),
            at("2024-02-18"),
            "never behind since"
        );
    }

    #[test]
    fn an_ended_second_is_not_read_again_a_running_one_is() {
        let mut w = Watermark::default();
        w.saw(at("2024-03-01T10:00:00Z"));
        w.served(at("2024-03-01T10:00:01Z"));
        assert_eq!(
            w.next_bookmark(None),
            at("2024-03-01T10:00:01Z"),
            "the newest second had ended before the first response: the next second"
        );
        let mut w = Watermark::default();
        w.saw(at("2024-03-01T10:00:00Z"));
        w.served(at("2024-03-01T10:00:00Z"));
        assert_eq!(
            w.next_bookmark(None),
            at("2024-03-01T10:00:00Z"),
            "the newest second was still running: read again"
        );
        let mut w = Watermark::default();
        w.served(at("2024-03-01T10:00:05Z"));
        assert_eq!(
            w.read_start(at("2024-03-01T09:00:00Z")),
            at("2024-03-01T10:00:05Z"),
            "read on signs: the moment the signs were read up to"
        );
    }

    #[test]
    fn a_stream_stops_once_and_keys_are_sent_once_when_asked() {
        let t = Tally::new(true);
        assert!(t.running());
        assert!(t.stop(Status::Failed));
        assert!(!t.stop(Status::Skipped));
        assert_eq!(t.status(), Status::Failed);
        assert!(t.first_time(|| "a".into()));
        assert!(!t.first_time(|| "a".into()));
        let every = Tally::new(false);
        assert!(every.first_time(|| "a".into()) && every.first_time(|| "a".into()));
    }
}
