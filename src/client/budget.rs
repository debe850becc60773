//! Harvest's rate limit as Harvest enforces it: a sliding window of N requests per T seconds.
//!
//! A request takes a slot before it is sent and gives it back one window after its response
//! has been read. The server saw the request no later than that moment, so any request sent
//! after the slot returns lands more than a window after it: the budget is kept full without
//! ever exceeding it, whatever the latency. A 429 pauses every request until its Retry-After.
//! (A token bucket such as governor's GCRA cannot express this window: with a burst of N it
//! lets 2N through in one window and draws 429s, with a burst of 1 it leaves the budget
//! unused at the start of every sync.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

pub struct Budget {
    name: &'static str,
    capacity: u32,
    slots: Arc<Semaphore>,
    window: Duration,
    paused_until: Mutex<Option<Instant>>,
    waited: WaitClock,
    /// Said once: requests wait on this budget for longer than [`SAY_WAIT_AFTER`].
    said: std::sync::atomic::AtomicBool,
}

/// A wait on the budget longer than this is said, once a run (the progress lines then show
/// the time waited).
const SAY_WAIT_AFTER: Duration = Duration::from_secs(3);

/// Wall time during which at least one request was waiting: concurrent waits count once.
#[derive(Default)]
pub struct WaitClock {
    /// (requests waiting now, since when at least one has been waiting)
    now: Mutex<(u32, Option<Instant>)>,
    total_ms: AtomicU64,
}

impl WaitClock {
    pub fn begin(&self) {
        let mut now = self.now.lock().unwrap();
        if now.0 == 0 {
            now.1 = Some(Instant::now());
        }
        now.0 += 1;
    }

    pub fn end(&self) {
        let mut now = self.now.lock().unwrap();
        now.0 = now.0.saturating_sub(1);
        if now.0 == 0 {
            if let Some(since) = now.1.take() {
                self.total_ms
                    .fetch_add(since.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        }
    }

    pub fn total(&self) -> Duration {
        Duration::from_millis(self.total_ms.load(Ordering::Relaxed))
    }
}

/// A taken slot: returned to the budget one window after it is dropped.
pub struct Slot {
    slots: Arc<Semaphore>,
    window: Duration,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let slots = self.slots.clone();
        let window = self.window;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(window).await;
                    slots.add_permits(1);
                });
            }
            Err(_) => slots.add_permits(1),
        }
    }
}

impl Budget {
    pub fn new(name: &'static str, requests: u32, window: Duration) -> Budget {
        Budget {
            name,
            capacity: requests.max(1),
            slots: Arc::new(Semaphore::new(requests.max(1) as usize)),
            window,
            paused_until: Mutex::new(None),
            waited: WaitClock::default(),
            said: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The budget's window: the longest a `Retry-After` is waited out.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Waits for a slot. `waits` also records the wait (a stream's own clock).
    pub async fn acquire(&self, waits: &WaitClock) -> Slot {
        self.waited.begin();
        waits.begin();
        let slot = match tokio::time::timeout(SAY_WAIT_AFTER, self.take()).await {
            Ok(slot) => slot,
            Err(_) => {
                if !self.said.swap(true, Ordering::Relaxed) {
                    crate::log::info(&format!(
                        "requests are waiting on Harvest's {} budget ({} per {:.0} s): the sync goes at its pace from here (the progress lines show the time waited)",
                        self.name,
                        self.capacity,
                        self.window.as_secs_f64()
                    ));
                }
                self.take().await
            }
        };
        waits.end();
        self.waited.end();
        slot
    }

    async fn take(&self) -> Slot {
        loop {
            let pause = *self.paused_until.lock().unwrap();
            if let Some(until) = pause {
                if until > Instant::now() {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
            }
            let permit = self
                .slots
                .acquire()
                .await
                .expect("budget semaphore is never closed");
            permit.forget();
            // A 429 may have arrived while we waited for the slot.
            let pause = *self.paused_until.lock().unwrap();
            if pause.is_some_and(|until| until > Instant::now()) {
                self.slots.add_permits(1);
                continue;
            }
            return Slot {
                slots: self.slots.clone(),
                window: self.window,
            };
        }
    }

    /// Holds every request back for `wait` (a 429's Retry-After).
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut p = self.paused_until.lock().unwrap();
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
        crate::log::warn(&format!(
            "{} rate limit hit (429): pausing requests for {:.1} s",
            self.name,
            wait.as_secs_f64()
        ));
    }

    /// Wall time during which some request waited on this budget.
    pub fn waited(&self) -> Duration {
        self.waited.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_n_in_a_window() {
        let b = Arc::new(Budget::new("test", 3, Duration::from_secs(10)));
        let t0 = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..7 {
            let slot = b.acquire(&WaitClock::default()).await;
            sent.push(t0.elapsed());
            drop(slot);
        }
        // 3 at once, then 3 one window later, then one more.
        assert_eq!(sent[2], Duration::ZERO);
        assert!(sent[3] >= Duration::from_secs(10) && sent[5] < Duration::from_secs(11));
        assert!(sent[6] >= Duration::from_secs(20));
        for i in 3..7 {
            assert!(sent[i] - sent[i - 3] >= Duration::from_secs(10));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everyone() {
        let b = Budget::new("test", 100, Duration::from_secs(1));
        b.pause(Duration::from_secs(5));
        let t0 = Instant::now();
        let _ = b.acquire(&WaitClock::default()).await;
        assert!(t0.elapsed() >= Duration::from_secs(5));
    }
}
