//! The engine: plans which endpoints to read for the selected streams ([`plan`]), reads them
//! concurrently under the shared rate budget through one reading path ([`read`]), and moves
//! bookmarks only when a stream has finished.
//!
//! Bookmarks. Harvest lists are newest-first, so a bookmark can only move once a stream is
//! read to the end. It moves to the newest `updated_at` emitted, but never past the moment the
//! stream's first response was served (its `Date` header): a record changed while the sync
//! runs is caught by the next one; when the newest record's second had ended by then, the
//! bookmark is the next second. Requests use `updated_since` = bookmark (inclusive), so the
//! delivery is at least once. The per-user streams read on signs ([`signs`]) move to the
//! moment their signs were read up to.
//!
//! Failures. A stream that fails for good (a status that is not retried, retries exhausted, an
//! unreadable body) stops itself and the streams below it; every other stream finishes and
//! its bookmark moves. The sync then reports each failed stream and ends in failure, so that a
//! scheduler sees it. Only a closed stdout or rejected credentials stop everything at once.

pub mod config;
pub mod deletions;
pub mod known;
pub mod plan;
pub mod presence;
pub mod progress;
pub mod read;
pub mod signs;
pub mod tally;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::catalog::Selection;
use crate::client::config::ClientConfig;
use crate::client::{Account, Client};
use crate::output::Emitter;
use crate::state::State;
use crate::streams::{self, Source};
use config::SyncConfig;
use plan::{Node, Plan, Root, RootRead};
use tally::Status;

/// Harvest's largest page.
pub const PER_PAGE: u32 = 2000;

/// A stream that was not synced because this token or account may not read it.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub stream: &'static str,
    pub reason: String,
}

/// A stream that failed for good, and the selected streams that were not synced with it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub stream: &'static str,
    pub reason: String,
    pub not_synced: Vec<&'static str>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream {} failed: {}", self.stream, self.reason)?;
        match self.not_synced.as_slice() {
            [only] if *only == self.stream => Ok(()),
            names => write!(f, " (not synced: {})", names.join(", ")),
        }
    }
}

/// How a sync ended, when it could run to its end.
#[derive(Debug, Default)]
pub struct Outcome {
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failure>,
}

impl Outcome {
    /// One line naming each failed stream and why, if any failed.
    pub fn failure_line(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let n = self.failed.len();
        Some(format!(
            "{n} stream{} failed, every other stream was synced: {}",
            if n == 1 { "" } else { "s" },
            self.failed
                .iter()
                .map(Failure::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    }
}

pub struct Ctx {
    client: Arc<Client>,
    config: SyncConfig,
    emitter: Emitter,
    skipped: Mutex<Vec<Skipped>>,
    failed: Mutex<Vec<Failure>>,
}

impl Ctx {
    /// What the sync's lines say first: the account, in a sync of several.
    pub(crate) fn label(&self) -> String {
        self.config
            .account_column
            .map(|a| format!("account {a}: "))
            .unwrap_or_default()
    }

    fn skip(&self, node: &Arc<Node>, reason: &str) {
        let mut all = Vec::new();
        node.walk(&mut all);
        let mut skipped = self.skipped.lock().unwrap();
        for n in all {
            if n.run.tally.stop(Status::Skipped) && n.selected {
                skipped.push(Skipped {
                    stream: n.def.name,
                    reason: reason.to_string(),
                });
            }
        }
    }

    /// Skips, without a request, the streams whose feature the account has turned off.
    fn gate_features(&self, roots: &[Root], company: &serde_json::Map<String, Value>) {
        for root in roots {
            let mut all = Vec::new();
            root.node.walk(&mut all);
            for n in all {
                let Some(feature) = n.def.feature else {
                    continue;
                };
                if company.get(feature.company_flag()) == Some(&Value::Bool(false))
                    && n.run.tally.running()
                {
                    let reason = format!(
                        "the {} is turned off in this Harvest account",
                        feature.company_flag().replace('_', " ")
                    );
                    crate::log::info(&format!("stream {} skipped: {reason}", n.def.name));
                    self.skip(n, &reason);
                }
            }
        }
    }
}

/// Runs a sync. `Err` only when the sync could not run to its end (no connection, stdout
/// closed, credentials rejected); streams that were skipped or failed are in the outcome.
pub async fn run(
    client: &ClientConfig,
    config: SyncConfig,
    selection: Selection,
    state: State,
    emitter: Emitter,
) -> Result<Outcome> {
    let plan = plan(&config, &selection, &state)?;
    run_plan(client, config, plan, emitter).await
}

/// What a sync will read, from the catalog's selection and the state (which it no longer
/// needs after this: the writer may take it).
pub fn plan(config: &SyncConfig, selection: &Selection, state: &State) -> Result<Plan> {
    if config.start_date > chrono::Utc::now() + tally::CLOCK_SKEW {
        crate::log::warn(&format!(
            "start_date {} is in the future: streams without a bookmark read nothing until then",
            config.start_date.to_rfc3339()
        ));
    }
    Plan::new(selection, state, config)
}

/// Runs a sync planned by [`plan`]. See [`run`].
pub async fn run_plan(
    client: &ClientConfig,
    config: SyncConfig,
    plan: Plan,
    emitter: Emitter,
) -> Result<Outcome> {
    if plan.roots.is_empty() {
        return nothing_to_sync(&emitter).await;
    }
    let client = Client::connect(client).await?;
    run_with(client, config, plan, emitter).await
}

/// One account of a sync of several: which, and how its sync ended.
pub struct AccountRun {
    pub account: Account,
    pub outcome: Result<Outcome>,
}

/// Syncs each account with its client, all at once (within the budget they share, unless each
/// has its own): each account's rows say their account (`account_id`), it plans from its
/// part of the state (`states`, in the same order), and its bookmarks and memory go to its
/// partition. One account's failure stops only that account; a closed stdout stops them all.
pub async fn run_accounts(
    clients: Vec<(Client, Account)>,
    states: Vec<State>,
    config: &SyncConfig,
    selection: &Selection,
    emitter: Emitter,
) -> Result<Vec<AccountRun>> {
    let mut jobs = JoinSet::new();
    let mut tasks = std::collections::HashMap::new();
    let mut accounts = Vec::new();
    for (i, ((client, account), state)) in clients.into_iter().zip(states).enumerate() {
        let id: i64 = account
            .id
            .parse()
            .map_err(|_| anyhow!("account id {} is not a number", account.id))?;
        let config = SyncConfig {
            account_column: Some(id),
            ..config.clone()
        };
        let planned = plan(&config, selection, &state);
        let emitter = emitter.in_account(id);
        accounts.push(account);
        let handle = jobs.spawn(async move {
            let outcome = match planned {
                Ok(plan) => run_with(client, config, plan, emitter).await,
                Err(e) => Err(e),
            };
            (i, outcome)
        });
        tasks.insert(handle.id(), i);
    }
    let mut outcomes: Vec<Option<Result<Outcome>>> = accounts.iter().map(|_| None).collect();
    while let Some(done) = jobs.join_next_with_id().await {
        let (i, outcome) = match done {
            Ok((_, done)) => done,
            // A task that panicked is its account's failure only.
            Err(e) => match tasks.get(&e.id()) {
                Some(&i) => (i, Err(anyhow!("the account's task failed: {e}"))),
                None => continue,
            },
        };
        if let Err(e) = &outcome {
            if e.downcast_ref::<crate::output::OutputClosed>().is_some() {
                jobs.abort_all();
                return Err(anyhow::Error::new(crate::output::OutputClosed));
            }
        }
        outcomes[i] = Some(outcome);
    }
    Ok(accounts
        .into_iter()
        .zip(outcomes)
        .map(|(account, outcome)| AccountRun {
            account,
            outcome: outcome.unwrap_or_else(|| Err(anyhow!("not run"))),
        })
        .collect())
}

/// A plan with no stream: a warning, and the state as it was.
async fn nothing_to_sync(emitter: &Emitter) -> Result<Outcome> {
    crate::log::warn("no stream is selected: nothing to sync");
    emitter.state().await?;
    Ok(Outcome::default())
}

/// [`run_plan`] with a client already connected.
async fn run_with(
    client: Client,
    config: SyncConfig,
    plan: Plan,
    emitter: Emitter,
) -> Result<Outcome> {
    if plan.roots.is_empty() {
        return nothing_to_sync(&emitter).await;
    }
    let ctx = Arc::new(Ctx {
        client: Arc::new(client),
        config,
        emitter: emitter.clone(),
        skipped: Mutex::new(Vec::new()),
        failed: Mutex::new(Vec::new()),
    });
    crate::log::set_metrics_level(ctx.config.metrics_level);
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let roots: Vec<Arc<Node>> = plan.roots.iter().map(|r| r.node.clone()).collect();
    progress::plan_line(&ctx, &roots);
    let ticker = (!ctx.config.progress_interval.is_zero()).then(|| {
        tokio::spawn(progress::tick(
            ctx.clone(),
            roots.clone(),
            ctx.config.progress_interval,
            started,
        ))
    });
    let result = read_all(&ctx, plan.roots).await;
    if let Some(t) = ticker {
        t.abort();
    }
    // Whatever happened, the last STATE covers exactly what was emitted.
    let _ = ctx.emitter.state().await;
    result?;
    // Only a sync that ran to its end decides what was deleted.
    deletions::resolve(&ctx, &roots, started_at).await?;
    crate::log::summary(&format!(
        "{}sync finished in {:.1} s: {} requests, {:.1} s waited on the rate limit",
        ctx.label(),
        started.elapsed().as_secs_f64(),
        ctx.client.total_requests.load(Ordering::Relaxed),
        ctx.client.waited().as_secs_f64()
    ));
    let skipped = std::mem::take(&mut *ctx.skipped.lock().unwrap());
    let failed = std::mem::take(&mut *ctx.failed.lock().unwrap());
    Ok(Outcome { skipped, failed })
}

async fn read_all(ctx: &Arc<Ctx>, mut roots: Vec<Root>) -> Result<()> {
    // When the company stream is selected it is read first: its feature flags then tell which
    // gated streams to skip without a request. (Otherwise a feature turned off shows as a 403
    // on the stream's own endpoint: no request is spent on /company just to check.)
    if let Some(pos) = roots
        .iter()
        .position(|r| r.node.def.name == streams::FEATURE_FLAGS)
    {
        let company = roots.remove(pos);
        read::read_root(ctx, &company).await?;
        if let Some(flags) = company.node.run.tally.kept() {
            ctx.gate_features(&roots, flags);
        }
    }
    let roots: Vec<Root> = roots
        .into_iter()
        .filter(|r| r.node.run.tally.running())
        .collect();
    announce_report_budget(&ctx.config, &roots);
    let mut jobs = JoinSet::new();
    for root in roots {
        let ctx = ctx.clone();
        jobs.spawn(async move { read::read_root(&ctx, &root).await });
    }
    let mut fatal: Option<anyhow::Error> = None;
    while let Some(done) = jobs.join_next().await {
        let result = match done {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => Err(anyhow!("a stream task failed: {e}")),
        };
        if let Err(e) = result {
            if fatal.is_none() {
                jobs.abort_all();
                fatal = Some(e);
            }
        }
    }
    fatal.map_or(Ok(()), Err)
}

/// A progress line and a `record_count` metric for each selected stream of a finished tree.
fn progress(ctx: &Ctx, root: &Arc<Node>) {
    let mut all = Vec::new();
    root.walk(&mut all);
    for n in all
        .into_iter()
        .filter(|n| n.selected && n.run.tally.status() != Status::Skipped)
    {
        let records = n.run.tally.records.load(Ordering::Relaxed);
        progress::count_records(n);
        progress::sync_duration(n);
        if n.run.tally.status() == Status::Failed {
            continue;
        }
        let requests = match n.def.source {
            Source::Derived { parent, .. } => format!("made from {parent}, no request of its own"),
            Source::Single { .. }
            | Source::List { .. }
            | Source::Child { .. }
            | Source::Report { .. } => requests_made(&n.run.tally.counters),
        };
        crate::log::info(&format!(
            "{}stream {} finished: {records} records, {requests}",
            ctx.label(),
            n.def.name
        ));
    }
}

/// A stream's requests, for its progress line.
fn requests_made(c: &crate::client::Counters) -> String {
    format!(
        "{} pages, {} requests ({} retried, {} throttled), {:.1} s waited on the rate limit",
        c.pages.load(Ordering::Relaxed),
        c.requests.load(Ordering::Relaxed),
        c.retries.load(Ordering::Relaxed),
        c.throttled.load(Ordering::Relaxed),
        c.waited.total().as_secs_f64(),
    )
}

/// Says up front when the reports need more requests than one reports budget allows.
fn announce_report_budget(config: &SyncConfig, roots: &[Root]) {
    let needed: usize = roots
        .iter()
        .map(|r| match &r.read {
            RootRead::Report(report) => report.windows.len(),
            RootRead::Single { .. } | RootRead::List(_) => 0,
        })
        .sum();
    let budget = config.reports_budget;
    if needed > budget.requests as usize {
        let waits = (needed - 1) / budget.requests as usize;
        crate::log::warn(&format!(
            "the reports need at least {needed} requests but Harvest allows {} per {:.0} s: expect about {:.0} s of waiting on the reports budget",
            budget.requests,
            budget.window.as_secs_f64(),
            waits as f64 * budget.window.as_secs_f64()
        ));
    } else if needed > 0 {
        crate::log::info(&format!(
            "the reports need {needed} requests, within one reports budget ({} per {:.0} s)",
            budget.requests,
            budget.window.as_secs_f64()
        ));
    }
}
