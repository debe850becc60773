//! The first layer of the request path: admission. Before a request is sent it waits for what
//! it needs: a slot of its rate budget, an in-flight permit and, for a report page, a permit of
//! the page pool. The big-body permits, taken while a Small lane's body is read, live here too.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use super::budget::{self, Budget};
use super::{Counters, Lane, BIG_BODIES_HELD, PAGES_HELD};

/// The rate budgets and the permits that bound what is in flight and in memory.
pub struct Admission {
    general: Budget,
    /// `/reports/*` has its own budget: 100 per 15 minutes.
    reports: Budget,
    in_flight: Semaphore,
    /// The page pool: see [`super::Client::pages`].
    pages: Arc<Semaphore>,
    /// Permits for big responses on the Small lane: see [`super::BIG_BODY`].
    big_bodies: Arc<Semaphore>,
}

/// What an admitted request holds until its try is over (the response judged and, when it is
/// retried, its wait waited out): its in-flight permit, a report page's page-pool permit, and
/// the big-body permit of a refused body. Its budget slot is apart: see [`Admission::admit`].
pub struct Ticket<'a> {
    _in_flight: SemaphorePermit<'a>,
    page: Option<OwnedSemaphorePermit>,
    big: Option<OwnedSemaphorePermit>,
}

impl Ticket<'_> {
    /// Keeps a body's big-body permit until the try is over.
    pub fn keep(&mut self, big: Option<OwnedSemaphorePermit>) {
        self.big = big;
    }

    /// The permit the page is held under, once the try succeeded: the report page's, else the
    /// big body's (see [`Lane`]).
    pub fn into_held(self, big: Option<OwnedSemaphorePermit>) -> Option<OwnedSemaphorePermit> {
        self.page.or(big)
    }
}

impl Admission {
    /// `width` (`max_concurrency`) requests in flight at most, and a page pool of at most
    /// [`PAGES_HELD`] pages.
    pub fn new(general: Budget, reports: Budget, width: usize) -> Admission {
        Admission {
            general,
            reports,
            in_flight: Semaphore::new(width),
            pages: Arc::new(Semaphore::new(width.min(PAGES_HELD))),
            big_bodies: Arc::new(Semaphore::new(BIG_BODIES_HELD)),
        }
    }

    pub fn pages(&self) -> &Arc<Semaphore> {
        &self.pages
    }

    /// The budget a lane draws on.
    pub fn budget(&self, lane: Lane) -> &Budget {
        if lane == Lane::Report {
            &self.reports
        } else {
            &self.general
        }
    }

    /// The permits a big body on this lane waits for while it is read (none for the pages,
    /// whose pool bounds them).
    pub fn big_body_gate(&self, lane: Lane) -> Option<&Arc<Semaphore>> {
        (lane == Lane::Small).then_some(&self.big_bodies)
    }

    /// Wall time during which some request waited on a budget.
    pub fn waited(&self) -> std::time::Duration {
        self.general.waited() + self.reports.waited()
    }

    /// Waits for what a request needs before it is sent: its rate-budget slot (given back
    /// one window after the response is read: the send layer drops it), an in-flight permit
    /// and, for a report page, a page-pool permit. A report takes its budget slot first, then
    /// its page permit: see `Lane::Report`. No wait here is for something a holder of a later
    /// one waits for, so the three kinds of permit cannot deadlock.
    pub async fn admit(&self, lane: Lane, counters: &Counters) -> (budget::Slot, Ticket<'_>) {
        let budget = self.budget(lane);
        let (slot, page, in_flight) = if lane == Lane::Report {
            let slot = budget.acquire(&counters.waited).await;
            let permit = self.pages.clone().acquire_owned().await;
            let in_flight = self.in_flight.acquire().await.expect("never closed");
            (slot, Some(permit.expect("never closed")), in_flight)
        } else {
            let in_flight = self.in_flight.acquire().await.expect("never closed");
            (budget.acquire(&counters.waited).await, None, in_flight)
        };
        let ticket = Ticket {
            _in_flight: in_flight,
            page,
            big: None,
        };
        (slot, ticket)
    }
}
