//! What a person follows while a sync runs: a plan line at the start, a progress line every
//! `progress_interval_seconds` (records per active stream and, where Harvest told the total,
//! the share done; requests made and known to be left; time waited on Harvest's budget; an
//! ETA from the requests left and the budget), and the Singer SDK's metrics: `record_count`
//! counters (each the records since the stream's last one, so that they add up) during and at
//! the end of each stream, and a `sync_duration` timer per stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::plan::Node;
use super::tally::Status;
use super::Ctx;
use crate::streams::Source;

/// Every node of the trees, each once.
fn nodes(roots: &[Arc<Node>]) -> Vec<&Arc<Node>> {
    let mut all = Vec::new();
    for r in roots {
        r.walk(&mut all);
    }
    all
}

fn is_report(n: &Node) -> bool {
    match n.def.source {
        Source::Report { .. } => true,
        Source::Single { .. }
        | Source::List { .. }
        | Source::Child { .. }
        | Source::Derived { .. } => false,
    }
}

/// Responses a node is known to need and has not had yet. A child list not started yet is
/// estimated at one request per record of its parent's list, once that list's first page told
/// its total (`parent_total`).
fn left(n: &Node, parent_total: u64) -> u64 {
    if n.run.tally.status() != Status::Running || n.run.tally.is_done() {
        return 0;
    }
    let c = &n.run.tally.counters;
    let planned = c.planned.load(Ordering::Relaxed);
    let planned = match n.def.source {
        Source::Child { .. } if planned == 0 => parent_total,
        Source::Single { .. }
        | Source::List { .. }
        | Source::Child { .. }
        | Source::Report { .. }
        | Source::Derived { .. } => planned,
    };
    planned.saturating_sub(c.pages.load(Ordering::Relaxed))
}

/// (general, reports) responses left in the tree under `n`.
fn left_in_tree(n: &Node, parent_total: u64) -> (u64, u64) {
    let own = left(n, parent_total);
    let mut sum = if is_report(n) { (0, own) } else { (own, 0) };
    let total = n.run.tally.counters.total_entries.load(Ordering::Relaxed);
    for c in &n.children {
        let (g, r) = left_in_tree(&c.node, total);
        sum.0 = sum.0.saturating_add(g);
        sum.1 = sum.1.saturating_add(r);
    }
    sum
}

/// Seconds as a config states them: `15`, `0.5`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.0}")
    } else {
        let t = format!("{s:.2}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        if t.is_empty() {
            "0".into()
        } else {
            t.to_string()
        }
    }
}

/// `d` as a person reads it: `45 s`, `3 min 20 s`, `1 h 05 min`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s > 100 * 86_400 {
        return "more than 100 days".into();
    }
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// The time `requests` take at `per` requests per `window`.
fn at_budget(requests: u64, per: u32, window: Duration) -> Duration {
    Duration::try_from_secs_f64(window.as_secs_f64() * requests as f64 / f64::from(per.max(1)))
        .unwrap_or(Duration::MAX)
}

/// The line that opens a sync: the streams, and the requests known to be needed before any
/// page says more, with the time they take at the configured budget.
pub fn plan_line(ctx: &Ctx, roots: &[Arc<Node>]) {
    let all = nodes(roots);
    let selected = all.iter().filter(|n| n.selected).count();
    let (mut general, mut reports) = (0u64, 0u64);
    for n in &all {
        let p = n.run.tally.counters.planned.load(Ordering::Relaxed);
        if is_report(n) {
            // A report's windows are planned: one first page each.
            reports += p;
        } else {
            general += p;
        }
    }
    let b = ctx.config.budget;
    let rb = ctx.config.reports_budget;
    let eta =
        at_budget(general, b.requests, b.window).max(at_budget(reports, rb.requests, rb.window));
    crate::log::info(&format!(
        "{}plan: {selected} streams; at least {} requests before the first pages tell how many more ({general} general, {reports} reports): about {} at {} requests per {} s{}",
        ctx.label(),
        general + reports,
        human(eta),
        b.requests,
        secs(b.window),
        if reports > 0 {
            format!(" (reports {} per {} s)", rb.requests, secs(rb.window))
        } else {
            String::new()
        }
    ));
}

/// Emits a `record_count` counter for the records `n` sent since its last one.
pub fn count_records(n: &Node) {
    let records = n.run.tally.records.load(Ordering::Relaxed);
    // fetch_max: the ticker and a stream's end may count at once; each record counts once.
    let before = n.run.tally.reported.fetch_max(records, Ordering::Relaxed);
    if records > before {
        crate::log::metric(
            "counter",
            "record_count",
            json!(records - before),
            json!({"stream": n.def.name}),
        );
    }
}

/// The `sync_duration` timer of a finished stream.
pub fn sync_duration(n: &Node) {
    let status = match n.run.tally.status() {
        Status::Running => "succeeded",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    };
    crate::log::metric(
        "timer",
        "sync_duration",
        json!(n.run.tally.created.elapsed().as_secs_f64()),
        json!({"stream": n.def.name, "status": status}),
    );
}

/// One progress line now.
pub fn line(ctx: &Ctx, roots: &[Arc<Node>], started: Instant) -> String {
    let all = nodes(roots);
    let mut active: Vec<(u64, String)> = Vec::new();
    let (mut general_left, mut reports_left, mut records) = (0u64, 0u64, 0u64);
    for r in roots {
        let (g, rep) = left_in_tree(r, 0);
        general_left = general_left.saturating_add(g);
        reports_left = reports_left.saturating_add(rep);
    }
    for n in &all {
        if !n.selected {
            continue;
        }
        let r = n.run.tally.records.load(Ordering::Relaxed);
        records += r;
        let c = &n.run.tally.counters;
        let reading = c.planned.load(Ordering::Relaxed) > c.pages.load(Ordering::Relaxed)
            || r > n.run.tally.reported.load(Ordering::Relaxed);
        if reading && n.run.tally.status() == Status::Running {
            let total = c.total_entries.load(Ordering::Relaxed);
            let of = if total > 0 && !n.def.is_derived() {
                format!(
                    " of {total} ({:.0}%)",
                    (r as f64 * 100.0 / total as f64).min(100.0)
                )
            } else {
                String::new()
            };
            active.push((r, format!("{} {r}{of}", n.def.name)));
        }
    }
    active.sort_by_key(|a| std::cmp::Reverse(a.0));
    let shown: Vec<String> = active.iter().take(6).map(|(_, s)| s.clone()).collect();
    let more = active.len().saturating_sub(shown.len());
    let made = ctx.client.total_requests.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    let b = ctx.config.budget;
    let rb = ctx.config.reports_budget;
    // The pace: the budget's, or the pace seen so far if that is slower (latency-bound).
    let budget_rate = f64::from(b.requests.max(1)) / b.window.as_secs_f64().max(1e-3);
    let seen_rate = made as f64 / elapsed.as_secs_f64().max(1e-3);
    let rate = if made >= 20 {
        budget_rate.min(seen_rate)
    } else {
        budget_rate
    };
    let eta = Duration::try_from_secs_f64(general_left as f64 / rate.max(1e-3))
        .unwrap_or(Duration::MAX)
        .max(at_budget(reports_left, rb.requests, rb.window));
    format!(
        "progress: {records} records{}{}; {made} requests made, {} known to be left; {:.0} s waited on Harvest's budget; ETA {} ({} so far)",
        if shown.is_empty() { String::new() } else { format!(" ({}", shown.join(", ")) },
        if shown.is_empty() { String::new() } else if more > 0 { format!(", {more} more)") } else { ")".into() },
        general_left + reports_left,
        ctx.client.waited().as_secs_f64(),
        human(eta),
        human(elapsed),
    )
}

/// Logs a progress line and the streams' `record_count` counters every `every`, until dropped.
pub async fn tick(ctx: Arc<Ctx>, roots: Vec<Arc<Node>>, every: Duration, started: Instant) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        interval.tick().await;
        crate::log::info(&format!("{}{}", ctx.label(), line(&ctx, &roots, started)));
        for n in nodes(&roots).into_iter().filter(|n| n.selected) {
            count_records(n);
        }
    }
}
