//! The one reading path. Every stream with requests of its own is read by [`read_pages`], one
//! list of pages at a time: a root list, one parent's child list, one report window, or a
//! single object (a list of one). The page loop shapes and emits the stream's records, makes
//! its derived children's rows, and collects the parent ids its fan-out children need; the
//! callers around it decide only where the pages come from and when bookmarks move.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::deletions::attrs_of;
use super::known::{day_from, owner_id, Key};
use super::plan::{
    after, ChildPlan, Covers, DerivedPlan, ListPlan, ListRead, NestedRead, Node, ReportPlan, Root,
    RootRead, OWN_ACCOUNT_ID,
};
use super::presence::Presence;
use super::tally::Status;
use super::{Ctx, Failure, PER_PAGE};
use crate::client::odd::Oddity;
use crate::client::pager::{Element, Pager};
use crate::client::{HttpError, Lane};
use crate::conform::Conformed;
use crate::output::OutputClosed;
use crate::state::format_bookmark;
use crate::streams::{self, reports, shape::shape, Clock, ACCOUNT_ID};
use crate::util::parse_datetime;
use stream_maps::Mapped;

/// Why reading a list stopped before its end.
pub enum Halt {
    /// 403: the token's role or the account's plan does not allow it: the stream is skipped.
    Forbidden(String),
    /// 404: the object is gone (a parent deleted since its list was read).
    Gone(String),
    /// 422: Harvest cannot list it for this object (teammates of someone who is no manager).
    Unprocessable(String),
    /// The stream failed for good; the others go on.
    Failed(String),
    /// The sync cannot go on (stdout closed, credentials rejected).
    Sync(anyhow::Error),
}

impl From<OutputClosed> for Halt {
    fn from(e: OutputClosed) -> Halt {
        Halt::Sync(anyhow::Error::new(e))
    }
}

impl From<HttpError> for Halt {
    fn from(e: HttpError) -> Halt {
        match e {
            HttpError::Forbidden(m) => Halt::Forbidden(m),
            HttpError::NotFound(m) => Halt::Gone(m),
            HttpError::Unprocessable(m) => Halt::Unprocessable(m),
            HttpError::Unauthorized(m) => Halt::Sync(anyhow::anyhow!(m)),
            HttpError::Exhausted(m) | HttpError::Rejected(m) => Halt::Failed(m),
        }
    }
}

/// What the records of a list carry besides their own fields.
pub enum Stamp {
    None,
    /// A child's records: the parent's id, in the declared column.
    Parent(&'static str, Value),
    /// A report's rows: the window they sum up.
    Window(NaiveDate, NaiveDate),
}

impl Stamp {
    /// The parent's id, for a child's records.
    fn parent_id(&self) -> Option<i64> {
        match self {
            Stamp::Parent(_, id) => id.as_i64(),
            Stamp::None | Stamp::Window(..) => None,
        }
    }

    fn apply(&self, record: &mut Map<String, Value>) {
        match self {
            Stamp::None => {}
            Stamp::Parent(column, id) => {
                record.insert((*column).to_string(), id.clone());
            }
            Stamp::Window(from, to) => {
                record.insert("from".into(), json!(from.to_string()));
                record.insert("to".into(), json!(to.to_string()));
            }
        }
    }
}

/// The parent ids each fan-out child of a node needs, gathered while the node is read.
#[derive(Default)]
pub struct Fans(Vec<Fan>);

/// One child read per parent, and the parents it is read for.
struct Fan {
    node: Arc<Node>,
    plan: ChildPlan,
    ids: Vec<ParentId>,
    /// For a child read on signs: the parents whose own `updated_at` moved since its bookmark.
    changed: HashSet<i64>,
    /// The parent list is read whole this sync: every parent is among `ids`.
    parents_whole: bool,
}

impl Fans {
    /// No ids yet for each fan-out child of `node`, in table order: each is read (and its
    /// bookmark closed) in that order, even with no parent to read it for.
    fn for_children(node: &Node) -> Fans {
        Fans(
            node.per_parent()
                .map(|(child, plan)| Fan {
                    node: child.clone(),
                    plan,
                    ids: Vec::new(),
                    changed: HashSet::new(),
                    parents_whole: node.read_whole(),
                })
                .collect(),
        )
    }

    fn merge(&mut self, other: Fans) {
        for fan in other.0 {
            match self.0.iter_mut().find(|f| Arc::ptr_eq(&f.node, &fan.node)) {
                Some(mine) => {
                    mine.ids.extend(fan.ids);
                    mine.changed.extend(fan.changed);
                }
                None => self.0.push(fan),
            }
        }
    }

    /// Each parent once, after a list was read again.
    fn dedupe(&mut self) {
        for fan in &mut self.0 {
            let mut seen = std::collections::HashSet::new();
            fan.ids.retain(|id| seen.insert(id.to_string()));
        }
    }

    fn add(&mut self, node: &Arc<Node>, plan: ChildPlan, id: Option<ParentId>) {
        let Some(id) = id else { return };
        self.fan(node, plan).ids.push(id);
    }

    /// A parent whose own `updated_at` is a sign for a child read on signs.
    fn changed(&mut self, node: &Arc<Node>, plan: ChildPlan, id: Option<&Value>) {
        if let Some(id) = id.and_then(Value::as_i64) {
            self.fan(node, plan).changed.insert(id);
        }
    }

    fn fan(&mut self, node: &Arc<Node>, plan: ChildPlan) -> &mut Fan {
        let at = match self.0.iter().position(|f| Arc::ptr_eq(&f.node, node)) {
            Some(at) => at,
            None => {
                self.0.push(Fan {
                    node: node.clone(),
                    plan,
                    ids: Vec::new(),
                    changed: HashSet::new(),
                    parents_whole: false,
                });
                self.0.len() - 1
            }
        };
        &mut self.0[at]
    }
}

/// A parent's id, kept until its children are read: 24 bytes where a JSON value takes 80, so
/// the ids of 200,000 invoices take under 5 MB.
pub enum ParentId {
    Number(serde_json::Number),
    Text(Box<str>),
}

impl ParentId {
    /// The id of a parent record; none when it has no usable one (its children cannot be
    /// requested).
    pub fn of(id: Option<&Value>) -> Option<ParentId> {
        match id? {
            Value::Number(n) => Some(ParentId::Number(n.clone())),
            Value::String(s) if !s.is_empty() => Some(ParentId::Text(s.as_str().into())),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParentId::Number(n) => n.as_i64(),
            ParentId::Text(_) => None,
        }
    }

    /// The id as the child rows carry it.
    pub fn value(&self) -> Value {
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
        let Some(output) = &node.output else {
            return;
        };
        let moves_own_account = output.moves_own_account();
        if output.mapped.is_none() && !moves_own_account {
            match output
                .frame
                .write(&mut self.lines, extracted, node.version(), |out| {
                    output.conformer.write(row, out)
                }) {
                Ok(()) => {
                    node.run.tally.records.fetch_add(1, Ordering::Relaxed);
                }
                Err(why) => rejected(node, &why),
            }
            return;
        }
        let mut record = match output.conformer.conform(row.clone()) {
            Conformed::Record(r) => r,
            Conformed::Rejected(why) => return rejected(node, &why),
        };
        if moves_own_account {
            // The Harvest account takes `account_id`: the record's own moves aside.
            if let Some(own) = record.remove(ACCOUNT_ID) {
                record.insert(OWN_ACCOUNT_ID.into(), own);
            }
        }
        let Some(mapped) = &output.mapped else {
            let _ = output
                .frame
                .write(&mut self.lines, extracted, node.version(), |out| {
                    serde_json::to_writer(&mut *out, &record)
                });
            node.run.tally.records.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // Stream maps read the conformed record, and write one record per stream it is sent as.
        for sent in mapped {
            match sent.map.apply(&record) {
                Mapped::Record(mut r) => {
                    if output.account.is_some() {
                        // The frame puts the Harvest account first; a map's own goes.
                        r.remove(ACCOUNT_ID);
                    }
                    let _ = sent
                        .frame
                        .write(&mut self.lines, extracted, node.version(), |out| {
                            serde_json::to_writer(&mut *out, &r)
                        });
                }
                Mapped::Filtered => {}
                // Not sent, and not because the map said so: no ACTIVATE_VERSION may drop it.
                Mapped::Failed => node.run.tally.not_all_sent(),
            }
        }
        node.run.tally.records.fetch_add(1, Ordering::Relaxed);
    }

    async fn flush(&mut self, ctx: &Ctx) -> Result<(), OutputClosed> {
        if !self.lines.is_empty() {
            ctx.emitter.lines(std::mem::take(&mut self.lines)).await?;
        }
        Ok(())
    }

    /// Hands the lines on once there are enough of them.
    async fn flush_if_full(&mut self, ctx: &Ctx) -> Result<(), OutputClosed> {
        if self.lines.len() >= BATCH_BYTES {
            self.flush(ctx).await?;
        }
        Ok(())
    }
}

/// A record that cannot match the schema: not sent, said once per record.
fn rejected(node: &Node, why: &str) {
    // Not everything was sent: no ACTIVATE_VERSION may drop the row it left.
    node.run.tally.not_all_sent();
    crate::log::warn(&format!(
        "{}: record skipped, it cannot match the schema ({why})",
        node.def.name
    ))
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

/// The key of a row, for streams that send each key once.
fn key_of(node: &Node, row: &Map<String, Value>) -> String {
    node.def
        .key_properties
        .iter()
        .map(|k| row.get(*k).map_or_else(String::new, Value::to_string))
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// One list of pages.
pub struct List {
    pub url: String,
    /// The path template, for logs and metrics.
    pub endpoint: &'static str,
    /// The array holding the records; empty for a single object.
    pub envelope: &'static str,
    pub lane: Lane,
    pub stamp: Stamp,
    /// The list has no filter: read to its end it covers every parent of the derived rows,
    /// which need not be noted one by one.
    pub whole: bool,
}

/// Reads every page of `list` for `node`: emits its records and its derived children's rows,
/// moves their watermarks, and returns the parent ids its fan-out children need.
pub async fn read_pages(ctx: &Ctx, node: &Arc<Node>, list: List) -> Result<Fans, Halt> {
    read_pages_noting_changes(ctx, node, list)
        .await
        .map(|(fans, _)| fans)
}

/// [`read_pages`], and whether the list changed while it was read (offset pages may have
/// shifted past a record).
async fn read_pages_noting_changes(
    ctx: &Ctx,
    node: &Arc<Node>,
    list: List,
) -> Result<(Fans, bool), Halt> {
    let List {
        url,
        endpoint,
        envelope,
        lane,
        stamp,
        whole,
    } = list;
    let mut pages = Pager::new(
        ctx.client.clone(),
        url,
        endpoint,
        envelope,
        node.run.tally.counters.clone(),
        lane,
    );
    let mut fans = Fans::for_children(node);
    let mut batch = Batch::default();
    loop {
        if !node.run.tally.running() {
            return Ok((fans, false));
        }
        let extracted = now_rfc3339();
        let Some(page) = pages.next().await? else {
            return Ok((fans, pages.changed()));
        };
        for element in page.records() {
            let Some(mut record) = readable(node, endpoint, element) else {
                continue;
            };
            stamp.apply(&mut record);
            let upd = updated_at(&record);
            note_own(node, &record, upd, &stamp);
            let derived = feed_children(node, &record, upd, whole, &mut fans);
            emit_own(node, record, upd, &mut batch, &extracted);
            emit_derived(derived, &mut batch, &extracted);
            batch.flush_if_full(ctx).await?;
        }
        served(node, page.served_at);
        batch.flush(ctx).await?;
    }
}

/// What the engine keeps of a record besides sending it: the feature flags' record, and its
/// key for the deletions.
fn note_own(node: &Node, record: &Map<String, Value>, upd: Option<DateTime<Utc>>, stamp: &Stamp) {
    if node.keeps_record {
        node.run.tally.keep(record);
    }
    for feed in &node.feeds {
        if after(feed.since, upd) {
            if let Some(id) = owner_id(record, feed.column) {
                feed.noted.lock().unwrap().push(id);
            }
        }
    }
    if let Some(p) = &node.run.presence {
        if let Some(key) = Key::of(record, node.def.key_properties) {
            p.saw(key, attrs_of(node, record, stamp.parent_id()));
        }
    }
}

/// The rows each derived child makes of one record, in table order.
type DerivedRows<'a> = Vec<(&'a Arc<Node>, Vec<Map<String, Value>>)>;

/// Feeds one parent record to the children under it: the derived rows it makes, and its id
/// for each child read per parent that needs it.
fn feed_children<'a>(
    node: &'a Node,
    record: &Map<String, Value>,
    upd: Option<DateTime<Utc>>,
    whole: bool,
    fans: &mut Fans,
) -> DerivedRows<'a> {
    let mut derived = Vec::new();
    for child in &node.children {
        let wanted = child.wants_parent(upd);
        if wanted && child.node.clock == Clock::Parent {
            child.node.run.tally.saw(upd);
        }
        match child.read {
            NestedRead::Derived(plan) => {
                if let Some(rows) = derive(&child.node, plan, record, upd, wanted, whole) {
                    derived.push((&child.node, rows));
                }
            }
            NestedRead::PerParent(plan) => {
                if wanted && plan.only.is_none_or(|accepts| accepts(record)) {
                    fans.add(&child.node, plan, ParentId::of(record.get("id")));
                }
                if child.node.signals.is_some() && after(child.node.since, upd) {
                    fans.changed(&child.node, plan, record.get("id"));
                }
            }
        }
    }
    derived
}

/// The rows `child` makes of one parent record that it wants (`None` when it does not), each
/// noted for its deletions when it detects them, wanted or not.
fn derive(
    child: &Node,
    plan: DerivedPlan,
    record: &Map<String, Value>,
    upd: Option<DateTime<Utc>>,
    wanted: bool,
    whole: bool,
) -> Option<Vec<Map<String, Value>>> {
    let remembered = child.run.presence.as_ref();
    if !wanted && remembered.is_none() {
        return None;
    }
    let mut rows = (plan.rows)(record);
    if let Some(p) = remembered {
        // Every row of this parent is here: its deletions can be told.
        let own_id = record.get("id").and_then(Value::as_i64);
        for r in &rows {
            if let Some(key) = Key::of(r, child.def.key_properties) {
                p.saw(key, attrs_of(child, r, own_id));
            }
        }
        if let (Some(id), false, false) = (own_id, plan.distinct, whole) {
            p.covered_owner(id);
        }
    }
    if !wanted {
        return None;
    }
    if child.clock == Clock::Row {
        // A new or changed parent brings all its rows (a new assignment's tasks keep their
        // own, older, `updated_at`).
        let parent_new = child.passes(upd);
        rows.retain(|r| {
            let u = updated_at(r);
            let kept = parent_new || child.passes(u);
            if kept {
                child.run.tally.saw(u);
            }
            kept
        });
    }
    Some(rows)
}

/// The record itself, when it is selected and new enough; its watermark moves.
fn emit_own(
    node: &Node,
    record: Map<String, Value>,
    upd: Option<DateTime<Utc>>,
    batch: &mut Batch,
    extracted: &str,
) {
    if node.selected && node.passes(upd) {
        if node.clock == Clock::Own {
            node.run.tally.saw(upd);
        }
        batch.add(node, &shape(node.def, record), extracted);
    }
}

/// The derived rows, each key once for a stream that sends each key once.
fn emit_derived(derived: DerivedRows, batch: &mut Batch, extracted: &str) {
    for (child, rows) in derived {
        for row in rows {
            if child.run.tally.first_time(|| key_of(child, &row)) {
                batch.add(child, &row, extracted);
            }
        }
    }
}

/// A page was served at `served_at`: the watermarks that follow this list are capped by it.
fn served(node: &Node, served_at: Option<DateTime<Utc>>) {
    if node.clock == Clock::Own {
        node.run.tally.served(served_at);
    }
    for child in &node.children {
        if matches!(child.node.clock, Clock::Parent | Clock::Row) || child.node.moves_with_signs {
            child.node.run.tally.served(served_at);
        }
    }
}

/// A page's element as a record to read, its repairs warned about; `None` for one that is
/// not a record or cannot be read, which is skipped with a warning naming it. The stream goes
/// on, but its bookmark (and those below it) stays where it was and no deletion is decided
/// for it: what was skipped is read again by the next sync.
fn readable(node: &Arc<Node>, endpoint: &str, element: Element) -> Option<Map<String, Value>> {
    let name = node.def.name;
    let skipped = |what: String| {
        crate::log::warn(&format!(
            "stream {name}: {what}; skipped (the bookmark stays, so the next sync reads it again)"
        ));
        let mut below = Vec::new();
        node.walk(&mut below);
        for n in below {
            n.run.tally.hold_bookmark();
            n.run.tally.not_all_sent();
            if let Some(p) = &n.run.presence {
                p.unsettled();
            }
        }
    };
    match element {
        Element::Record(mut record, fixes) => {
            let key = key_of(node, &record).replace('\u{1f}', ",");
            for fix in fixes {
                let known = node.def.schema()["properties"]
                    .get(fix.property())
                    .is_some();
                let what = match fix.oddity {
                    Oddity::LoneSurrogate => "a lone UTF-16 surrogate, replaced by U+FFFD",
                    Oddity::InvalidUtf8 => "bytes that are not UTF-8, replaced by U+FFFD",
                    Oddity::OutOfRange if known => "a number out of range, set to null",
                    Oddity::OutOfRange => {
                        record.remove(fix.property());
                        "a number out of range in a field the schema does not have, dropped"
                    }
                };
                crate::log::warn(&format!(
                    "stream {name}: record {key}: field '{}' held {what}",
                    fix.field
                ));
            }
            Some(record)
        }
        Element::NotAnObject(what) => {
            skipped(format!(
                "GET {endpoint}: an element of the list is {what}, not a record"
            ));
            None
        }
        Element::Unreadable(id, why) => {
            skipped(format!(
                "GET {endpoint}: record {} cannot be read ({why})",
                id.map_or("(no id)".to_string(), |i| format!("id {i}"))
            ));
            None
        }
    }
}

fn list_url(ctx: &Ctx, path: &str, since: Option<DateTime<Utc>>) -> String {
    let mut url = format!("{}?per_page={PER_PAGE}", ctx.client.url(path));
    if let Some(s) = since {
        url.push_str("&updated_since=");
        url.push_str(&s.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    url
}

fn read_url(ctx: &Ctx, path: &str, read: &ListRead) -> String {
    let mut url = list_url(ctx, path, read.updated_since);
    if let Some(from) = read.from {
        url.push_str(&format!("&from={from}"));
    }
    if let Some(to) = read.to {
        url.push_str(&format!("&to={to}"));
    }
    url
}

/// Reads a root list: each of its reads in turn. What a complete read covers is noted for
/// the deletions.
async fn read_list(ctx: &Ctx, node: &Arc<Node>, plan: &ListPlan) -> Result<Fans, Halt> {
    let ListPlan {
        path,
        envelope,
        ref reads,
        ..
    } = *plan;
    let mut fans = Fans::for_children(node);
    let mut reread = false;
    for read in reads {
        let mut settled = false;
        let remembered: Vec<&Presence> = std::iter::once(node)
            .chain(node.derived().map(|(n, _)| n))
            .filter_map(|n| n.run.presence.as_ref())
            .collect();
        for attempt in 1..=LIST_READS {
            // A read that changed under us tells nothing of what exists: its keys are dropped.
            let marks: Vec<_> = remembered.iter().map(|p| p.noted()).collect();
            let list = List {
                url: read_url(ctx, path, read),
                endpoint: path,
                envelope,
                lane: Lane::Pages,
                stamp: Stamp::None,
                whole: read.covers == Covers::All,
            };
            let (found, changed) = read_pages_noting_changes(ctx, node, list).await?;
            fans.merge(found);
            if !changed || !node.run.tally.running() {
                settled = true;
                break;
            }
            reread = true;
            if attempt < LIST_READS {
                node.run
                    .tally
                    .counters
                    .planned
                    .fetch_add(1, Ordering::Relaxed);
            }
            for (p, mark) in remembered.iter().zip(marks) {
                p.forget_since(mark);
            }
            crate::log::warn(&format!(
                "stream {}: records were added or deleted in Harvest while {path} was read (its offset pages may have shifted past a record); {}",
                node.def.name,
                if attempt < LIST_READS { "reading it again" } else { "its bookmark stays where it was, so the next sync reads it again" }
            ));
        }
        if !node.run.tally.running() {
            break;
        }
        if !settled {
            // What is below the list moves with it: its rows, and its changed parents' children.
            let mut below = Vec::new();
            node.walk(&mut below);
            for n in below {
                n.run.tally.hold_bookmark();
                if let Some(p) = &n.run.presence {
                    p.unsettled();
                }
            }
            continue;
        }
        for p in &remembered {
            match (read.covers, read.from) {
                (Covers::All, _) => p.covered_all(),
                (Covers::From, Some(from)) => p.covered_from(day_from(from)),
                (Covers::From, None) | (Covers::Nothing, _) => {}
            }
        }
    }
    if reread {
        fans.dedupe();
    }
    Ok(fans)
}

/// How many times a list that changed while it was read is read (the first time included).
const LIST_READS: u32 = 3;

/// Reads a root stream and everything below it. A stream that fails stops only itself and
/// its children; only what ends the whole sync comes back as an error.
pub async fn read_root(ctx: &Arc<Ctx>, root: &Root) -> Result<(), anyhow::Error> {
    let node = &root.node;
    emit_schemas(ctx, node).await?;
    let read = match &root.read {
        RootRead::Single { path } => {
            let list = List {
                url: ctx.client.url(path),
                endpoint: path,
                envelope: "",
                lane: Lane::Small,
                stamp: Stamp::None,
                whole: true,
            };
            read_pages(ctx, node, list).await
        }
        RootRead::List(plan) => read_list(ctx, node, plan).await,
        RootRead::Report(plan) => return read_report(ctx, node, plan).await,
    };
    match read {
        Ok(fans) => {
            close(ctx, node).await?;
            fan_out(ctx, fans).await?;
        }
        Err(halt) => ctx.halt(node, halt)?,
    }
    super::progress(ctx, node);
    Ok(())
}

/// Moves the bookmarks of a node that was read to the end, and of its derived children.
async fn close(ctx: &Ctx, node: &Arc<Node>) -> Result<(), OutputClosed> {
    node.run.tally.finish();
    bookmark(ctx, node).await?;
    for (c, _) in node.derived() {
        bookmark(ctx, c).await?;
    }
    ctx.emitter.state().await
}

async fn bookmark(ctx: &Ctx, node: &Node) -> Result<(), OutputClosed> {
    if node.defers_bookmark() {
        // Written once its deletions are decided (super::deletions).
        return Ok(());
    }
    if let Some((key, at)) = node.next_bookmark() {
        ctx.emitter
            .bookmark(node.def.name, key, format_bookmark(at))
            .await?;
    }
    Ok(())
}

/// Reads each fan-out child for the parents gathered, then its own children in turn.
async fn fan_out(ctx: &Arc<Ctx>, fans: Fans) -> Result<(), anyhow::Error> {
    for Fan {
        node: child,
        plan,
        ids,
        changed,
        parents_whole,
    } in fans.0
    {
        if !child.run.tally.running() {
            continue;
        }
        let (ids, every) = pick_parents(&child, ids, &changed).await;
        child
            .run
            .tally
            .counters
            .planned
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        match read_per_parent(ctx, &child, plan, ids).await {
            Ok(grandchildren) => {
                if let (true, true, false, Some(p)) = (
                    every && child.moves_with_signs,
                    parents_whole,
                    child.run.tally.bookmark_held(),
                    &child.run.presence,
                ) {
                    // Every parent's list was read: the child was read in full (a sweep).
                    p.covered_all();
                }
                close(ctx, &child).await?;
                Box::pin(fan_out(ctx, grandchildren)).await?;
            }
            Err(halt) => ctx.halt(&child, halt)?,
        }
    }
    Ok(())
}

/// The parents a child reads this sync: for a child read on signs, those with a sign (or every
/// one, when a sign cannot be told); else every parent gathered. `true` with every parent.
async fn pick_parents(
    child: &Arc<Node>,
    ids: Vec<ParentId>,
    changed: &HashSet<i64>,
) -> (Vec<ParentId>, bool) {
    if child.signals.is_none() {
        return (ids, true);
    }
    match super::signs::pick(child, changed).await {
        Ok(picked) => {
            let all = ids.len();
            let ids: Vec<ParentId> = ids
                .into_iter()
                .filter(|id| id.as_i64().is_some_and(|n| picked.contains(&n)))
                .collect();
            crate::log::debug(&format!(
                "stream {}: {} of {all} parents have a sign of change",
                child.def.name,
                ids.len()
            ));
            (ids, false)
        }
        Err(why) => {
            crate::log::info(&format!(
                "stream {}: read for every parent, its signs cannot be told ({why})",
                child.def.name
            ));
            (ids, true)
        }
    }
}

/// Reads a child list for each parent id, `max_concurrency` parents at a time.
async fn read_per_parent(
    ctx: &Arc<Ctx>,
    node: &Arc<Node>,
    plan: ChildPlan,
    parent_ids: Vec<ParentId>,
) -> Result<Fans, Halt> {
    let limit = Arc::new(Semaphore::new(ctx.config.max_concurrency));
    let mut tasks: JoinSet<(String, Result<Fans, Halt>)> = JoinSet::new();
    let mut settled = Settled {
        node,
        filtered: plan.only.is_some(),
        fans: Fans::for_children(node),
        stop: None,
    };
    for id in parent_ids {
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let (task_ctx, task_node) = (ctx.clone(), node.clone());
        tasks.spawn(async move {
            let _permit = permit;
            read_one_parent(&task_ctx, &task_node, plan, id).await
        });
        // Settle what is done, so that a failure stops the queueing of more work.
        while let Some(done) = tasks.try_join_next() {
            settled.add(done);
        }
        if settled.stop.is_some() || !node.run.tally.running() {
            break;
        }
    }
    // Once the stream stops, the parents still being read stop too.
    let mut aborted = false;
    loop {
        if !aborted && (settled.stop.is_some() || !node.run.tally.running()) {
            tasks.abort_all();
            aborted = true;
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        settled.add(done);
    }
    match settled.stop {
        Some(halt) => Err(halt),
        None => Ok(settled.fans),
    }
}

/// One parent's child list, read to its end; the parent (as its logs name it) comes back
/// with the result.
async fn read_one_parent(
    ctx: &Ctx,
    node: &Arc<Node>,
    plan: ChildPlan,
    id: ParentId,
) -> (String, Result<Fans, Halt>) {
    let list = List {
        url: list_url(
            ctx,
            &plan.path.replace("{id}", &id.to_string()),
            plan.request_since,
        ),
        endpoint: plan.path,
        envelope: plan.envelope,
        lane: Lane::Small,
        stamp: Stamp::Parent(plan.column, id.value()),
        whole: false,
    };
    let owner = match &id {
        ParentId::Number(n) => n.as_i64(),
        ParentId::Text(_) => None,
    };
    let read = match read_pages_noting_changes(ctx, node, list).await {
        // A child list that changed while it was read may have shifted past a record:
        // nothing is decided for that parent, and the bookmark waits.
        Ok((fans, true)) => {
            node.run.tally.hold_bookmark();
            Ok(fans)
        }
        Ok((fans, false)) => {
            if let (Some(p), Some(owner)) = (&node.run.presence, owner) {
                p.covered_owner(owner);
            }
            Ok(fans)
        }
        Err(halt) => Err(halt),
    };
    (id.to_string(), read)
}

/// What the parents read so far came to: the grandchildren's parents, or why the stream stops.
struct Settled<'a> {
    node: &'a Node,
    /// The child's declaration filters its parents.
    filtered: bool,
    fans: Fans,
    stop: Option<Halt>,
}

impl Settled<'_> {
    /// One parent done. A parent deleted meanwhile (404) has no children; a 422 means the
    /// same only for a child whose declaration filters its parents (the filter said yes,
    /// Harvest no: the parent changed meanwhile). Anything else stops the stream; what stops
    /// the sync outranks the rest.
    fn add(&mut self, done: Result<(String, Result<Fans, Halt>), tokio::task::JoinError>) {
        let (parent, why) = match done {
            Ok((_, Ok(found))) => return self.fans.merge(found),
            Ok((parent, Err(Halt::Gone(why)))) => (parent, why),
            Ok((parent, Err(Halt::Unprocessable(why)))) if self.filtered => (parent, why),
            Ok((_, Err(halt))) => {
                if self.stop.is_none() || matches!(halt, Halt::Sync(_)) {
                    self.stop = Some(halt);
                }
                return;
            }
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                if self.stop.is_none() {
                    self.stop = Some(Halt::Failed(format!("a request task failed: {e}")));
                }
                return;
            }
        };
        crate::log::warn(&format!(
            "{}: parent {parent} has none to read ({why}); its children are skipped",
            self.node.def.name
        ));
    }
}

/// Reads a report: window by window (oldest first), moving the bookmark to the next window's
/// start after each one, and finally to the start of the last (open) window, which the next
/// run reads again.
async fn read_report(
    ctx: &Arc<Ctx>,
    node: &Arc<Node>,
    report: &ReportPlan,
) -> Result<(), anyhow::Error> {
    let ReportPlan {
        path,
        fixed_fee,
        windows: ref plan,
    } = *report;
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
        let list = List {
            url,
            endpoint: path,
            envelope: "results",
            // One page at a time: the reports' budget is the limit.
            lane: Lane::Report,
            stamp: window.map_or(Stamp::None, |(from, to)| Stamp::Window(from, to)),
            whole: false,
        };
        if let Err(halt) = read_pages(ctx, node, list).await {
            ctx.halt(node, halt)?;
            break;
        }
        if let (Some((from, _)), Some(key)) = (window, &node.bookmark) {
            let resume = plan
                .get(i + 1)
                .copied()
                .flatten()
                .map_or(*from, |(next, _)| next);
            ctx.emitter
                .bookmark(node.def.name, key.clone(), json!(resume.to_string()))
                .await?;
        }
        ctx.emitter.state().await?;
    }
    super::progress(ctx, node);
    Ok(())
}

async fn emit_schemas(ctx: &Ctx, root: &Arc<Node>) -> Result<(), OutputClosed> {
    let mut all = Vec::new();
    root.walk(&mut all);
    for n in all {
        let Some(output) = &n.output else {
            continue;
        };
        for (stream, schema, keys, bookmark) in output.schemas(n.def) {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            ctx.emitter
                .schema(&stream, schema, &keys, &bookmark)
                .await?;
        }
    }
    Ok(())
}

impl Ctx {
    /// Stops `node` and its subtree for `halt`'s reason; only what ends the sync is an error.
    fn halt(&self, node: &Arc<Node>, halt: Halt) -> Result<(), anyhow::Error> {
        match halt {
            // In a sync of several accounts: any user of an account can read the company, so
            // a 403 there is the account's, not the stream's (the token's user has no access
            // to it any more).
            Halt::Forbidden(msg)
                if node.def.name == streams::FEATURE_FLAGS && self.config.account_column.is_some() =>
            {
                Err(anyhow::anyhow!(
                "Harvest refused the account (403 on /company, which any user of an account can read: {msg}): the token's user has no access to account {}",
                self.client.account()
                ))
            }
            Halt::Forbidden(msg) => {
                self.forbidden(node, &msg);
                Ok(())
            }
            Halt::Gone(why) | Halt::Unprocessable(why) | Halt::Failed(why) => {
                self.fail(node, why);
                Ok(())
            }
            Halt::Sync(e) => Err(e),
        }
    }

    fn forbidden(&self, node: &Arc<Node>, msg: &str) {
        if !node.run.tally.running() {
            return;
        }
        crate::log::warn(&format!(
            "stream {} skipped: Harvest answered 403 ({msg}): it needs the {} role, or its feature is turned off in the account. Not synced: {}",
            node.def.name,
            node.def.role,
            node.selected_names().join(", ")
        ));
        self.skip(
            node,
            &format!("403 Forbidden: needs the {} role", node.def.role),
        );
    }

    /// A stream failed for good: it and its subtree stop, the others go on.
    pub(super) fn fail(&self, node: &Arc<Node>, why: String) {
        let mut all = Vec::new();
        node.walk(&mut all);
        let stopped: Vec<&'static str> = all
            .into_iter()
            .filter(|n| n.run.tally.stop(Status::Failed) && n.selected)
            .map(|n| n.def.name)
            .collect();
        if stopped.is_empty() {
            return;
        }
        let failure = Failure {
            stream: node.def.name,
            reason: why,
            not_synced: stopped,
        };
        crate::log::error(&failure.to_string());
        self.failed.lock().unwrap().push(failure);
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
