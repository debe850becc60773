//! The engine: plans which endpoints to read for the selected streams, reads them concurrently
//! under the shared rate budget, shapes and emits records, and moves bookmarks only when a
//! stream has finished.
//!
//! Bookmarks. Harvest lists are newest-first, so a bookmark can only move once a stream is
//! read to the end. It moves to the newest `updated_at` emitted, but never past the moment the
//! stream's first response was served (its `Date` header): a record changed while the sync
//! runs is caught by the next one. Requests use `updated_since` = bookmark (inclusive), so the
//! delivery is at least once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::catalog::{self, Selection};
use crate::client::pager::{Pager, Reading};
use crate::client::{Client, Counters, HttpError};
use crate::config::{parse_datetime, Config};
use crate::output::{Emitter, OutputClosed};
use crate::schema::Conformer;
use crate::state::{format_bookmark, State};
use crate::streams::{self, reports, shape::shape, DerivedClock, FanOut, Source, StreamDef};

/// Harvest's largest page.
pub const PER_PAGE: u32 = 2000;

/// One stream in a read plan: a root endpoint and the children it feeds.
struct Node {
    def: &'static StreamDef,
    /// Emit its records (it may be read only to feed its children).
    selected: bool,
    conformer: Option<Conformer>,
    /// Records older than this are not emitted: max(bookmark, start_date). None: full table.
    since: Option<DateTime<Utc>>,
    children: Vec<Arc<Node>>,
    /// The newest `updated_at` that counts toward the bookmark.
    newest: Mutex<Option<DateTime<Utc>>>,
    /// The earliest `Date` of the responses this stream's records came from.
    served: Mutex<Option<DateTime<Utc>>>,
    records: AtomicU64,
    /// Requests made for this stream (none for derived streams).
    counters: Arc<Counters>,
    skipped: AtomicBool,
}

impl Node {
    fn passes(&self, updated_at: Option<DateTime<Utc>>) -> bool {
        match (self.since, updated_at) {
            (None, _) => true,
            // A record whose updated_at cannot be read is emitted rather than lost.
            (Some(_), None) => true,
            (Some(since), Some(u)) => u >= since,
        }
    }

    fn saw(&self, updated_at: Option<DateTime<Utc>>) {
        if let Some(u) = updated_at {
            let mut n = self.newest.lock().unwrap();
            if n.is_none_or(|cur| cur < u) {
                *n = Some(u);
            }
        }
    }

    fn served_at(&self, at: Option<DateTime<Utc>>) {
        if let Some(at) = at {
            let mut s = self.served.lock().unwrap();
            if s.is_none_or(|cur| at < cur) {
                *s = Some(at);
            }
        }
    }

    /// The bookmark to write after a complete read, if it moves.
    fn next_bookmark(&self) -> Option<DateTime<Utc>> {
        let newest = (*self.newest.lock().unwrap())?;
        let capped = match *self.served.lock().unwrap() {
            Some(served) => newest.min(served),
            None => newest,
        };
        Some(self.since.map_or(capped, |s| capped.max(s)))
    }

    fn walk<'a>(self: &'a Arc<Node>, out: &mut Vec<&'a Arc<Node>>) {
        out.push(self);
        for c in &self.children {
            c.walk(out);
        }
    }
}

/// A reason a stream was not synced.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub stream: &'static str,
    pub reason: String,
}

struct Ctx {
    client: Arc<Client>,
    config: Config,
    emitter: Emitter,
    skipped: Mutex<Vec<Skipped>>,
}

impl Ctx {
    /// Pages of a list, read as `reading` says.
    fn pager(
        &self,
        url: String,
        endpoint: &'static str,
        envelope: &'static str,
        counters: &Arc<Counters>,
        reading: Reading,
    ) -> Pager {
        Pager::new(
            self.client.clone(),
            url,
            endpoint,
            envelope,
            counters.clone(),
            reading,
        )
    }

    fn skip(&self, node: &Arc<Node>, reason: &str) {
        let mut all = Vec::new();
        node.walk(&mut all);
        let mut skipped = self.skipped.lock().unwrap();
        for n in all {
            n.skipped.store(true, Ordering::Relaxed);
            if n.selected {
                skipped.push(Skipped {
                    stream: n.def.name,
                    reason: reason.to_string(),
                });
            }
        }
    }
}

/// Failures that end the sync.
#[derive(Debug)]
enum Fatal {
    Output(OutputClosed),
    Other(anyhow::Error),
}

impl From<OutputClosed> for Fatal {
    fn from(e: OutputClosed) -> Fatal {
        Fatal::Output(e)
    }
}

impl From<anyhow::Error> for Fatal {
    fn from(e: anyhow::Error) -> Fatal {
        Fatal::Other(e)
    }
}

impl From<Fatal> for anyhow::Error {
    fn from(f: Fatal) -> anyhow::Error {
        match f {
            Fatal::Output(o) => anyhow::Error::new(o),
            Fatal::Other(e) => e,
        }
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn updated_at(record: &Map<String, Value>) -> Option<DateTime<Utc>> {
    record
        .get("updated_at")
        .and_then(Value::as_str)
        .and_then(parse_datetime)
}

/// Builds the read plan: one tree per root endpoint, holding the streams that are selected or
/// that a selected descendant needs.
fn plan(selection: &Selection, state: &State, config: &Config) -> Vec<Arc<Node>> {
    let mut needed: BTreeSet<&'static str> = BTreeSet::new();
    for def in streams::STREAMS
        .iter()
        .filter(|d| selection.is_selected(d.name))
    {
        let mut cur = Some(def);
        while let Some(d) = cur {
            needed.insert(d.name);
            cur = d.parent().and_then(streams::find);
        }
    }
    fn build(
        def: &'static StreamDef,
        needed: &BTreeSet<&'static str>,
        selection: &Selection,
        state: &State,
        config: &Config,
    ) -> Arc<Node> {
        let selected = selection.is_selected(def.name);
        let start = match def.source {
            Source::Report { .. } => config.reports_start_date.map_or(config.start_date, |d| {
                d.and_time(chrono::NaiveTime::MIN).and_utc()
            }),
            _ => config.start_date,
        };
        let since = def
            .bookmark_key()
            .map(|key| match state.bookmark(def.name, &key) {
                Some(b) => b.max(start),
                None => start,
            });
        Arc::new(Node {
            def,
            selected,
            conformer: selected.then(|| Conformer::new(def.name, selection.properties(def.name))),
            since,
            children: streams::children_of(def.name)
                .filter(|c| needed.contains(c.name))
                .map(|c| build(c, needed, selection, state, config))
                .collect(),
            newest: Mutex::new(None),
            served: Mutex::new(None),
            records: AtomicU64::new(0),
            counters: Arc::new(Counters::default()),
            skipped: AtomicBool::new(false),
        })
    }
    streams::STREAMS
        .iter()
        .filter(|d| d.parent().is_none() && needed.contains(d.name))
        .map(|d| build(d, &needed, selection, state, config))
        .collect()
}

/// Runs a sync. Returns the streams that were skipped (403, feature off).
pub async fn run(
    config: Config,
    selection: Selection,
    state: State,
    emitter: Emitter,
) -> Result<Vec<Skipped>> {
    let roots = plan(&selection, &state, &config);
    if roots.is_empty() {
        crate::log::warn("no stream is selected: nothing to sync");
        emitter.state().await?;
        return Ok(Vec::new());
    }
    let client = Client::connect(&config).await?;
    let ctx = Arc::new(Ctx {
        client: Arc::new(client),
        config,
        emitter: emitter.clone(),
        skipped: Mutex::new(Vec::new()),
    });
    let started = Instant::now();

    // When the company stream is selected it is read first: its feature flags then tell which
    // gated streams to skip without a request. (Otherwise a feature turned off shows as a 403
    // on the stream's own endpoint: no request is spent on /company just to check.)
    let mut roots = roots;
    if let Some(pos) = roots.iter().position(|r| r.def.name == "company") {
        let company_node = roots.remove(pos);
        let company = read_company(&ctx, &company_node)
            .await
            .map_err(anyhow::Error::from)?;
        for root in &roots {
            let mut all = Vec::new();
            root.walk(&mut all);
            for n in all {
                if let Some(feature) = n.def.feature {
                    if company.get(feature.company_flag()) == Some(&Value::Bool(false))
                        && !n.skipped.load(Ordering::Relaxed)
                    {
                        let reason = format!(
                            "the {} is turned off in this Harvest account",
                            feature.company_flag().replace('_', " ")
                        );
                        crate::log::info(&format!("stream {} skipped: {reason}", n.def.name));
                        ctx.skip(n, &reason);
                    }
                }
            }
        }
    }

    let roots: Vec<Arc<Node>> = roots
        .into_iter()
        .filter(|r| !r.skipped.load(Ordering::Relaxed))
        .collect();
    announce_report_budget(&ctx.config, &roots);
    let mut jobs = JoinSet::new();
    for root in roots {
        let ctx = ctx.clone();
        jobs.spawn(async move { read_root(&ctx, &root).await });
    }
    let mut failure: Option<Fatal> = None;
    while let Some(done) = jobs.join_next().await {
        let result = match done {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => Err(Fatal::Other(anyhow!("a stream task failed: {e}"))),
        };
        if let Err(e) = result {
            if failure.is_none() {
                jobs.abort_all();
                failure = Some(e);
            }
        }
    }
    // Whatever happened, the last STATE covers exactly what was emitted.
    let _ = ctx.emitter.state().await;
    if let Some(f) = failure {
        return Err(f.into());
    }
    let skipped = ctx.skipped.lock().unwrap().clone();
    crate::log::info(&format!(
        "sync finished in {:.1} s: {} requests, {:.1} s waited on the rate limit",
        started.elapsed().as_secs_f64(),
        ctx.client.total_requests.load(Ordering::Relaxed),
        ctx.client.waited().as_secs_f64()
    ));
    Ok(skipped)
}

async fn emit_schemas(ctx: &Ctx, root: &Arc<Node>) -> Result<(), Fatal> {
    let mut all = Vec::new();
    root.walk(&mut all);
    for n in all.into_iter().filter(|n| n.selected) {
        let bookmark_properties: Vec<&str> = catalog::replication_key(n.def).into_iter().collect();
        let mut schema = n.def.schema().clone();
        if let (Some(props), Some(selected)) = (
            schema.get_mut("properties").and_then(Value::as_object_mut),
            n.conformer.as_ref().map(|c| c.columns()),
        ) {
            props.retain(|k, _| selected.contains(k));
        }
        ctx.emitter
            .schema(
                n.def.name,
                schema,
                n.def.key_properties,
                &bookmark_properties,
            )
            .await?;
    }
    Ok(())
}

/// A batch goes to the writer once it holds this many bytes, even in the middle of a page: so
/// a page's RECORD lines are never all held at once (a page of invoices with their line items
/// makes about 5 MB of them).
const BATCH_BYTES: usize = 256 * 1024;

/// RECORD messages on their way to stdout: one hand-over to the writer per 256 KB instead of
/// one per record.
#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
}

impl Batch {
    fn add(&mut self, node: &Node, row: &Map<String, Value>, extracted: &str) {
        let Some(conformer) = &node.conformer else {
            return;
        };
        match conformer.write(row, extracted, &mut self.lines) {
            Ok(()) => {
                node.records.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => crate::log::warn(&format!(
                "{}: record skipped, it cannot match the schema ({why})",
                node.def.name
            )),
        }
    }

    async fn flush(&mut self, ctx: &Ctx) -> Result<(), Fatal> {
        if !self.lines.is_empty() {
            ctx.emitter.lines(std::mem::take(&mut self.lines)).await?;
        }
        Ok(())
    }

    /// Hands the lines on once there are enough of them.
    async fn flush_if_full(&mut self, ctx: &Ctx) -> Result<(), Fatal> {
        if self.lines.len() >= BATCH_BYTES {
            self.flush(ctx).await?;
        }
        Ok(())
    }
}

/// A record of a page that is not JSON after all (the page as a whole was).
fn unreadable(node: &Node, e: serde_json::Error) -> Fatal {
    anyhow!("stream {}: a record could not be read: {e}", node.def.name).into()
}

async fn read_company(ctx: &Ctx, node: &Arc<Node>) -> Result<Map<String, Value>, Fatal> {
    emit_schemas(ctx, node).await?;
    let Source::Single { path } = node.def.source else {
        return Err(anyhow!("company is declared as a single object").into());
    };
    let body = ctx
        .client
        .get(&ctx.client.url(path), path, &node.counters)
        .await
        .map_err(|e| anyhow!("stream {}: {e}", node.def.name))?;
    let Value::Object(company) = body else {
        return Err(anyhow!("GET {path} did not answer a JSON object").into());
    };
    let mut batch = Batch::default();
    batch.add(node, &company, &now_rfc3339());
    batch.flush(ctx).await?;
    ctx.emitter.state().await?;
    progress(node);
    Ok(company)
}

/// A progress line and a `record_count` metric for each selected stream of a finished tree.
fn progress(root: &Arc<Node>) {
    let mut all = Vec::new();
    root.walk(&mut all);
    for n in all
        .into_iter()
        .filter(|n| n.selected && !n.skipped.load(Ordering::Relaxed))
    {
        let records = n.records.load(Ordering::Relaxed);
        crate::log::metric(
            "counter",
            "record_count",
            json!(records),
            json!({"endpoint": n.def.name}),
        );
        let c = &n.counters;
        let requests = match n.def.source {
            Source::Derived { parent, .. } => format!("made from {parent}, no request of its own"),
            _ => format!(
                "{} pages, {} requests ({} retried, {} throttled), {:.1} s waited on the rate limit",
                c.pages.load(Ordering::Relaxed),
                c.requests.load(Ordering::Relaxed),
                c.retries.load(Ordering::Relaxed),
                c.throttled.load(Ordering::Relaxed),
                c.waited.total().as_secs_f64(),
            ),
        };
        crate::log::info(&format!(
            "stream {} finished: {records} records, {requests}",
            n.def.name
        ));
    }
}

/// The `updated_since` a list request can carry: the oldest threshold among the streams it
/// feeds, or none when one of them needs every record.
fn request_since(node: &Node, full_child_scan: bool) -> Option<DateTime<Utc>> {
    let supported = match node.def.source {
        Source::List { updated_since, .. } | Source::Child { updated_since, .. } => updated_since,
        _ => false,
    };
    if !supported {
        return None;
    }
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut take = |s: Option<DateTime<Utc>>| -> bool {
        match s {
            None => false,
            Some(s) => {
                oldest = Some(oldest.map_or(s, |o| o.min(s)));
                true
            }
        }
    };
    if node.selected && !take(node.since) {
        return None;
    }
    for c in &node.children {
        let ok = match c.def.source {
            Source::Derived {
                clock: DerivedClock::Parent,
                ..
            } => take(c.since),
            Source::Derived {
                clock: DerivedClock::Row,
                ..
            } => false,
            Source::Child {
                fan_out: FanOut::AllParents,
                ..
            } => false,
            Source::Child {
                fan_out: FanOut::ChangedParents,
                ..
            } => !full_child_scan && take(c.since),
            _ => false,
        };
        if !ok {
            return None;
        }
    }
    oldest
}

fn list_url(ctx: &Ctx, path: &str, since: Option<DateTime<Utc>>) -> String {
    let mut url = format!("{}?per_page={PER_PAGE}", ctx.client.url(path));
    if let Some(s) = since {
        url.push_str("&updated_since=");
        url.push_str(&s.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    url
}

async fn bookmark(ctx: &Ctx, node: &Node) -> Result<(), Fatal> {
    if !node.selected || node.skipped.load(Ordering::Relaxed) {
        return Ok(());
    }
    if let (Some(key), Some(at)) = (node.def.bookmark_key(), node.next_bookmark()) {
        ctx.emitter
            .bookmark(node.def.name, key, format_bookmark(at))
            .await?;
    }
    Ok(())
}

async fn read_root(ctx: &Arc<Ctx>, root: &Arc<Node>) -> Result<(), Fatal> {
    match root.def.source {
        Source::List { path, envelope, .. } => read_list(ctx, root, path, envelope).await,
        Source::Report {
            path,
            windowed,
            fixed_fee,
        } => read_report(ctx, root, path, windowed, fixed_fee).await,
        _ => Ok(()),
    }
}

/// The report windows a stream will read this run.
fn report_windows(node: &Node) -> Vec<(NaiveDate, NaiveDate)> {
    let start = node
        .since
        .map_or(Utc::now().date_naive(), |s| s.date_naive());
    reports::windows(start, Utc::now().date_naive())
}

/// Says up front when the reports need more requests than one reports budget allows.
fn announce_report_budget(config: &Config, roots: &[Arc<Node>]) {
    let needed: usize = roots
        .iter()
        .map(|r| match r.def.source {
            Source::Report { windowed: true, .. } => report_windows(r).len(),
            Source::Report { .. } => 1,
            _ => 0,
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

/// Reads a report: window by window (oldest first), moving the bookmark to the next window's
/// start after each one, and finally to the start of the last (open) window, which the next
/// run reads again.
async fn read_report(
    ctx: &Arc<Ctx>,
    node: &Arc<Node>,
    path: &'static str,
    windowed: bool,
    fixed_fee: bool,
) -> Result<(), Fatal> {
    emit_schemas(ctx, node).await?;
    let plan: Vec<Option<(NaiveDate, NaiveDate)>> = if windowed {
        report_windows(node).into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    for (i, window) in plan.iter().enumerate() {
        let mut url = format!("{}?per_page={PER_PAGE}", ctx.client.url(path));
        if let Some((from, to)) = window {
            url.push_str(&format!(
                "&from={}&to={}",
                reports::param(*from),
                reports::param(*to)
            ));
        }
        if let (true, Some(f)) = (fixed_fee, ctx.config.include_fixed_fee) {
            url.push_str(&format!("&include_fixed_fee={f}"));
        }
        // One page at a time: the reports' budget is the limit.
        let mut pages = ctx.pager(url, path, "results", &node.counters, Reading::Report);
        let mut batch = Batch::default();
        loop {
            let extracted = now_rfc3339();
            let page = match pages.next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(HttpError::Forbidden(msg)) => {
                    forbidden(ctx, node, &msg);
                    return Ok(());
                }
                Err(e) => return Err(anyhow!("stream {}: {e}", node.def.name).into()),
            };
            for row in page.records() {
                let mut row = row.map_err(|e| unreadable(node, e))?;
                if let Some((from, to)) = window {
                    row.insert("from".into(), json!(from.to_string()));
                    row.insert("to".into(), json!(to.to_string()));
                }
                batch.add(node, &row, &extracted);
                batch.flush_if_full(ctx).await?;
            }
            batch.flush(ctx).await?;
        }
        if let Some((from, _)) = window {
            let resume = plan
                .get(i + 1)
                .copied()
                .flatten()
                .map_or(*from, |(next, _)| next);
            if let Some(key) = node.def.bookmark_key() {
                ctx.emitter
                    .bookmark(node.def.name, key, json!(resume.to_string()))
                    .await?;
            }
        }
        ctx.emitter.state().await?;
    }
    progress(node);
    Ok(())
}

async fn read_list(
    ctx: &Arc<Ctx>,
    root: &Arc<Node>,
    path: &'static str,
    envelope: &'static str,
) -> Result<(), Fatal> {
    emit_schemas(ctx, root).await?;
    let since = request_since(root, ctx.config.full_child_scan);
    let mut pages = ctx.pager(
        list_url(ctx, path, since),
        path,
        envelope,
        &root.counters,
        Reading::Pooled {
            width: ctx.config.max_concurrency,
        },
    );
    // Parent ids each fan-out child needs, and nothing else of the parents.
    let mut fan_out: Vec<(Arc<Node>, Vec<ParentId>)> = root
        .children
        .iter()
        .filter(|c| matches!(c.def.source, Source::Child { .. }))
        .map(|c| (c.clone(), Vec::new()))
        .collect();
    let mut batch = Batch::default();
    loop {
        let extracted = now_rfc3339();
        let page = match pages.next().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(HttpError::Forbidden(msg)) => {
                forbidden(ctx, root, &msg);
                return Ok(());
            }
            Err(e) => return Err(anyhow!("stream {}: {e}", root.def.name).into()),
        };
        for record in page.records() {
            let record = record.map_err(|e| unreadable(root, e))?;
            let upd = updated_at(&record);
            let mut derived_rows = Vec::new();
            for c in &root.children {
                match c.def.source {
                    Source::Derived { rows, .. } if c.passes(upd) => {
                        c.saw(upd);
                        derived_rows.push((c.clone(), rows(&record)));
                    }
                    Source::Child { fan_out: mode, .. } => {
                        let wanted = mode == FanOut::AllParents
                            || ctx.config.full_child_scan
                            || c.passes(upd);
                        if wanted {
                            if mode == FanOut::ChangedParents {
                                c.saw(upd);
                            }
                            if let Some((_, ids)) =
                                fan_out.iter_mut().find(|(n, _)| Arc::ptr_eq(n, c))
                            {
                                ids.extend(ParentId::of(record.get("id")));
                            }
                        }
                    }
                    _ => {}
                }
            }
            if root.selected && root.passes(upd) {
                root.saw(upd);
                batch.add(root, &shape(root.def, record, None), &extracted);
            }
            for (node, rows) in derived_rows {
                for row in rows {
                    batch.add(&node, &row, &extracted);
                }
            }
            batch.flush_if_full(ctx).await?;
        }
        root.served_at(page.served_at);
        for c in &root.children {
            c.served_at(page.served_at);
        }
        batch.flush(ctx).await?;
    }
    bookmark(ctx, root).await?;
    for c in root.children.iter().filter(|c| c.def.is_derived()) {
        bookmark(ctx, c).await?;
    }
    ctx.emitter.state().await?;

    for (child, ids) in fan_out {
        if child.skipped.load(Ordering::Relaxed) {
            continue;
        }
        read_children(ctx, &child, ids).await?;
        bookmark(ctx, &child).await?;
        for d in &child.children {
            bookmark(ctx, d).await?;
        }
        ctx.emitter.state().await?;
    }
    progress(root);
    Ok(())
}

fn forbidden(ctx: &Ctx, node: &Arc<Node>, msg: &str) {
    let mut all = Vec::new();
    node.walk(&mut all);
    let names: Vec<&str> = all
        .iter()
        .filter(|n| n.selected)
        .map(|n| n.def.name)
        .collect();
    crate::log::warn(&format!(
        "stream {} skipped: Harvest answered 403 ({msg}): it needs the {} role, or its feature is turned off in the account. Not synced: {}",
        node.def.name,
        node.def.role,
        names.join(", ")
    ));
    ctx.skip(
        node,
        &format!("403 Forbidden: needs the {} role", node.def.role),
    );
}

/// A parent's id, kept until its children are read: 24 bytes where a JSON value takes 80, so
/// the ids of 200,000 invoices take under 5 MB.
enum ParentId {
    Number(serde_json::Number),
    Text(Box<str>),
}

impl ParentId {
    /// The id of a parent record; none when it has no usable one (its children cannot be
    /// requested).
    fn of(id: Option<&Value>) -> Option<ParentId> {
        match id? {
            Value::Number(n) => Some(ParentId::Number(n.clone())),
            Value::String(s) if !s.is_empty() => Some(ParentId::Text(s.as_str().into())),
            _ => None,
        }
    }

    /// The id as the child rows carry it.
    fn value(&self) -> Value {
        match self {
            ParentId::Number(n) => Value::Number(n.clone()),
            ParentId::Text(s) => Value::String(s.to_string()),
        }
    }
}

impl std::fmt::Display for ParentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParentId::Number(n) => write!(f, "{n}"),
            ParentId::Text(s) => f.write_str(s),
        }
    }
}

/// Reads a child endpoint for each parent id, concurrently.
async fn read_children(
    ctx: &Arc<Ctx>,
    node: &Arc<Node>,
    parent_ids: Vec<ParentId>,
) -> Result<(), Fatal> {
    let Source::Child { path, fan_out, .. } = node.def.source else {
        return Ok(());
    };
    if fan_out == FanOut::AllParents {
        // The children's bookmark is capped by their own first response, not the parents'.
        *node.served.lock().unwrap() = None;
    }
    let since = request_since(node, false);
    let limit = Arc::new(Semaphore::new(ctx.config.max_concurrency));
    let mut tasks = JoinSet::new();
    let mut result = Ok(());
    for id in parent_ids {
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let (task_ctx, task_node) = (ctx.clone(), node.clone());
        tasks.spawn(async move {
            let _permit = permit;
            read_child(&task_ctx, &task_node, path, id, since, fan_out).await
        });
        // Surface failures early instead of queueing more work behind them.
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = flatten(done) {
                result = Err(e);
                break;
            }
        }
        if result.is_err() || node.skipped.load(Ordering::Relaxed) {
            break;
        }
    }
    if result.is_err() || node.skipped.load(Ordering::Relaxed) {
        tasks.abort_all();
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = flatten(done) {
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}

fn flatten(done: Result<Result<(), Fatal>, tokio::task::JoinError>) -> Result<(), Fatal> {
    match done {
        Ok(r) => r,
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(anyhow!("a child request task failed: {e}").into()),
    }
}

/// Reads every page of one parent's child list.
async fn read_child(
    ctx: &Ctx,
    node: &Arc<Node>,
    path: &'static str,
    parent_id: ParentId,
    since: Option<DateTime<Utc>>,
    fan_out: FanOut,
) -> Result<(), Fatal> {
    let Source::Child { envelope, .. } = node.def.source else {
        return Ok(());
    };
    let Some(column) = node.def.parent_id else {
        return Ok(());
    };
    let id_text = parent_id.to_string();
    let parent_id = parent_id.value();
    let url = list_url(ctx, &path.replace("{id}", &id_text), since);
    let mut pages = ctx.pager(url, path, envelope, &node.counters, Reading::OneAtATime);
    let mut batch = Batch::default();
    loop {
        if node.skipped.load(Ordering::Relaxed) {
            return Ok(());
        }
        let extracted = now_rfc3339();
        let page = match pages.next().await {
            Ok(Some(page)) => page,
            Ok(None) => return Ok(()),
            Err(HttpError::Forbidden(msg)) => {
                if !node.skipped.swap(true, Ordering::Relaxed) {
                    forbidden(ctx, node, &msg);
                }
                return Ok(());
            }
            Err(HttpError::NotFound(_)) => {
                crate::log::warn(&format!(
                    "{}: parent {id_text} is gone (404); its children are skipped",
                    node.def.name
                ));
                return Ok(());
            }
            Err(e) => return Err(anyhow!("stream {}: {e}", node.def.name).into()),
        };
        for record in page.records() {
            let mut record = record.map_err(|e| unreadable(node, e))?;
            record.insert(column.to_string(), parent_id.clone());
            let upd = updated_at(&record);
            let mut derived_rows = Vec::new();
            for d in &node.children {
                if let Source::Derived { rows, clock, .. } = d.def.source {
                    match clock {
                        DerivedClock::Parent if d.passes(upd) => {
                            d.saw(upd);
                            derived_rows.push((d.clone(), rows(&record)));
                        }
                        DerivedClock::Row => {
                            let kept: Vec<_> = rows(&record)
                                .into_iter()
                                .filter(|r| {
                                    let u = updated_at(r);
                                    d.passes(u) && {
                                        d.saw(u);
                                        true
                                    }
                                })
                                .collect();
                            derived_rows.push((d.clone(), kept));
                        }
                        _ => {}
                    }
                }
            }
            if node.selected && node.passes(upd) {
                if fan_out == FanOut::AllParents {
                    node.saw(upd);
                }
                batch.add(node, &shape(node.def, record, None), &extracted);
            }
            for (d, rows) in derived_rows {
                for row in rows {
                    batch.add(&d, &row, &extracted);
                }
            }
            batch.flush_if_full(ctx).await?;
        }
        if fan_out == FanOut::AllParents {
            node.served_at(page.served_at);
        }
        for d in &node.children {
            d.served_at(page.served_at);
        }
        batch.flush(ctx).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_ids_are_small_and_keep_their_json_type() {
        assert!(std::mem::size_of::<ParentId>() <= 24);
        let n = ParentId::of(Some(&json!(18446744073709551615u64))).unwrap();
        assert_eq!(n.value(), json!(18446744073709551615u64));
        assert_eq!(n.to_string(), "18446744073709551615");
        let t = ParentId::of(Some(&json!("a-1"))).unwrap();
        assert_eq!(
            (t.value(), t.to_string()),
            (json!("a-1"), "a-1".to_string())
        );
        for bad in [json!(null), json!(""), json!([1]), json!({"id": 1})] {
            assert!(ParentId::of(Some(&bad)).is_none());
        }
        assert!(ParentId::of(None).is_none());
    }
}
