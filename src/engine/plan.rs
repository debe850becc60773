//! The read plan: which streams to read, in which tree, from which moment, and how each one's
//! bookmark moves. Everything is decided here, before the first request, and the plan does not
//! change while the sync runs: what does change (records counted, the newest `updated_at` seen,
//! whether a stream stopped) lives in each node's [`Tally`].

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value;

use super::config::{DeletionConfig, SyncConfig};
use super::known::{day_from, Memory};
use super::presence::Presence;
use super::tally::Tally;
use crate::catalog::Selection;
use crate::conform::Conformer;
use crate::output::RecordFrame;
use crate::state::State;
use crate::streams::{
    self, reports, Clock, Confirm, DeriveFn, DerivedClock, FanOut, ParentFilter, Sign, Source,
    StreamDef,
};
use stream_maps::{MappedStream, Maps};

/// One read of a root list: its filters, and what a complete read of it covers for deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRead {
    pub updated_since: Option<DateTime<Utc>>,
    /// `from` and `to` on the list's date column (time entries' and expenses' `spent_date`).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub covers: Covers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covers {
    Nothing,
    /// Every record: no filter.
    All,
    /// Every record dated on or after `from`.
    From,
}

/// One stream in the plan, with the children it feeds. What the planner decided is fixed
/// for the sync; what the sync changes is in [`Node::run`].
pub struct Node {
    pub def: &'static StreamDef,
    /// Emit its records (it may be read only to feed its children).
    pub selected: bool,
    /// How its bookmark moves.
    pub clock: Clock,
    /// The key under `bookmarks.<stream>`, if it has a bookmark.
    pub bookmark: Option<String>,
    /// Records older than this are not emitted: max(bookmark, start date). `None`: every record.
    pub since: Option<DateTime<Utc>>,
    /// For the stream that carries the feature flags: its record is kept for the engine.
    pub keeps_record: bool,
    /// See [`Node::version`]; decided by the planner once the whole tree is planned.
    version: std::sync::OnceLock<Option<i64>>,
    /// For the selected streams: how its records are conformed and sent.
    pub output: Option<Output>,
    /// The streams read under it, each with its own plan.
    pub children: Vec<Nested>,
    /// What the sync changes: the tally, and the deletion bookkeeping.
    pub run: Run,
    /// For a root list whose changes are signs for a child read on signs: the columns its
    /// changed records are noted by.
    pub feeds: Vec<Feed>,
    /// For a child read on signs ([`FanOut::Signalled`]) when the signs pick its parents this
    /// sync; `None`: every parent is read.
    pub signals: Option<Signals>,
    /// A child read on signs, or a stream below one: every row of a parent read is sent, and
    /// its bookmark is the moment the signs were read up to ([`super::tally::Watermark::read_start`]).
    pub moves_with_signs: bool,
    /// Every record of it is read this sync; decided with the versions.
    read_whole: std::sync::OnceLock<bool>,
}

/// A column of a root list's changed records, noted for a child read on signs.
pub struct Feed {
    pub column: &'static str,
    /// Only records updated at or after this are noted.
    pub since: Option<DateTime<Utc>>,
    pub noted: Mutex<Vec<i64>>,
}

/// How a child read on signs finds the parents to read: each sign, with the root lists it
/// is read from (built before the parent, whose fan-out waits for them).
pub struct Signals {
    pub signs: Vec<PlannedSign>,
}

pub struct PlannedSign {
    pub sign: Sign,
    /// The list the sign is read from ([`Sign::source`]).
    pub source: Option<Arc<Node>>,
    /// The stream whose memory maps an owner to the child's rows ([`Sign::Owns`]).
    pub via: Option<Arc<Node>>,
}

/// The run-time accumulators of a node.
pub struct Run {
    /// Records counted, the newest `updated_at` seen, whether the stream stopped.
    pub tally: Tally,
    /// Deletion bookkeeping, when deletions are detected for the stream.
    pub presence: Option<Presence>,
}

/// A root stream of the plan, with how it is read.
pub struct Root {
    pub node: Arc<Node>,
    pub read: RootRead,
}

/// How a root stream is read: one variant per kind of stream with requests of its own.
pub enum RootRead {
    /// A single object (no envelope), e.g. `/company`.
    Single {
        path: &'static str,
    },
    List(ListPlan),
    Report(ReportPlan),
}

/// A root list: its endpoint, and the reads that make it, in order (a deletion window, then
/// the changes outside it; or one read).
pub struct ListPlan {
    pub path: &'static str,
    pub envelope: &'static str,
    /// The oldest moment it or a child needs the changes since (`None`: every record); the
    /// reads cover at least those.
    pub request_since: Option<DateTime<Utc>>,
    pub reads: Vec<ListRead>,
}

/// A report: its windows this run (oldest first; one `None` for a report without windows).
pub struct ReportPlan {
    pub path: &'static str,
    pub fixed_fee: bool,
    pub windows: Vec<Option<(NaiveDate, NaiveDate)>>,
}

/// A stream read under its parent, with how.
pub struct Nested {
    pub node: Arc<Node>,
    pub read: NestedRead,
}

/// How a stream under a parent is read: a request per parent, or rows made from the parent.
#[derive(Clone, Copy)]
pub enum NestedRead {
    PerParent(ChildPlan),
    Derived(DerivedPlan),
}

/// A child list, requested for each parent record it needs.
#[derive(Clone, Copy)]
pub struct ChildPlan {
    pub path: &'static str,
    pub envelope: &'static str,
    /// The column its records carry their parent's id in.
    pub column: &'static str,
    /// Only the parents this accepts have children to request.
    pub only: Option<ParentFilter>,
    /// The `updated_since` its requests carry.
    pub request_since: Option<DateTime<Utc>>,
    /// The parent records it needs are those updated at or after this; `None`: every parent.
    pub parents_since: Option<DateTime<Utc>>,
}

/// Rows made from each parent record, with no request of their own.
#[derive(Clone, Copy)]
pub struct DerivedPlan {
    pub rows: DeriveFn,
    /// Each key is sent once per sync, however many parents carry it.
    pub distinct: bool,
    /// The parent records it needs are those updated at or after this; `None`: every parent.
    pub parents_since: Option<DateTime<Utc>>,
}

impl Nested {
    fn parents_since(&self) -> Option<DateTime<Utc>> {
        match self.read {
            NestedRead::PerParent(p) => p.parents_since,
            NestedRead::Derived(d) => d.parents_since,
        }
    }

    /// Whether this child needs the parent record updated at `updated_at` (a child read on
    /// signs gets every parent, and picks them once the signs are read).
    pub fn wants_parent(&self, updated_at: Option<DateTime<Utc>>) -> bool {
        self.node.version().is_some() || after(self.parents_since(), updated_at)
    }
}

impl Node {
    /// Whether a record updated at `updated_at` is emitted. One whose `updated_at` cannot be
    /// read is emitted rather than lost.
    pub fn passes(&self, updated_at: Option<DateTime<Utc>>) -> bool {
        if self.version().is_some() || self.moves_with_signs {
            // Sent in full: the target drops what this version does not hold. Or a parent
            // read on a sign: which of its rows changed is not known.
            return true;
        }
        match self.clock {
            Clock::Own | Clock::Parent | Clock::Row => after(self.since, updated_at),
            // A report window is read whole; a full table has no `since`.
            Clock::Window | Clock::FullTable => true,
        }
    }

    /// The `version` its RECORDs carry this sync, when it is read in full and
    /// `emit_activate_version_messages` is on: an `ACTIVATE_VERSION` follows its last record.
    pub fn version(&self) -> Option<i64> {
        self.version.get().copied().flatten()
    }

    /// Where its bookmark moves after a read to its end: (key, moment); `None` when it does
    /// not move (not emitted, stopped, held, no bookmark, nothing new).
    pub fn next_bookmark(&self) -> Option<(String, DateTime<Utc>)> {
        let tally = &self.run.tally;
        // A child read on signs keeps its bookmark when it is read only for the rows made of
        // it (user_project_tasks without user_projects): its signs are told from it.
        let kept = self.selected || self.reads_on_signs();
        if !kept || !tally.running() || tally.bookmark_held() {
            return None;
        }
        let at = match self.clock {
            Clock::Own | Clock::Parent | Clock::Row if self.moves_with_signs => {
                tally.watermark().read_start(self.since)
            }
            Clock::Own | Clock::Parent | Clock::Row => tally.watermark().next_bookmark(self.since),
            // A report moves window by window (read_report); a full table has no bookmark.
            Clock::Window | Clock::FullTable => None,
        }?;
        Some((self.bookmark.clone()?, at))
    }

    /// A child read on signs ([`FanOut::Signalled`]) itself, not a stream below one.
    pub fn reads_on_signs(&self) -> bool {
        matches!(
            self.def.source,
            Source::Child {
                fan_out: FanOut::Signalled(_),
                ..
            }
        )
    }

    /// A stream read under its parent whose deletions are told parent by parent: its bookmark
    /// moves once they are decided, at the end of the sync. A sync stopped before then reads
    /// those parents again, instead of passing them with their deletions untold.
    pub fn defers_bookmark(&self) -> bool {
        self.run.presence.is_some() && self.def.parent().is_some()
    }

    /// Whether every record of it is read this sync.
    pub fn read_whole(&self) -> bool {
        self.read_whole.get().copied().unwrap_or(false)
    }

    fn set_versions(&self, whole: bool, version: Option<i64>) {
        let _ = self.read_whole.set(whole);
        let _ = self.version.set(version.filter(|_| whole && self.selected));
        for c in &self.children {
            c.node.set_versions(c.read.whole(&c.node, whole), version);
        }
    }

    /// This node and every node below it, parents first.
    pub fn walk<'a>(self: &'a Arc<Node>, out: &mut Vec<&'a Arc<Node>>) {
        out.push(self);
        for c in &self.children {
            c.node.walk(out);
        }
    }

    /// The selected streams of this subtree, by name.
    pub fn selected_names(self: &Arc<Node>) -> Vec<&'static str> {
        let mut all = Vec::new();
        self.walk(&mut all);
        all.into_iter()
            .filter(|n| n.selected)
            .map(|n| n.def.name)
            .collect()
    }

    /// Its derived children.
    pub fn derived(&self) -> impl Iterator<Item = (&Arc<Node>, DerivedPlan)> {
        self.children.iter().filter_map(|c| match c.read {
            NestedRead::Derived(d) => Some((&c.node, d)),
            NestedRead::PerParent(_) => None,
        })
    }

    /// Its children read per parent.
    pub fn per_parent(&self) -> impl Iterator<Item = (&Arc<Node>, ChildPlan)> {
        self.children.iter().filter_map(|c| match c.read {
            NestedRead::PerParent(p) => Some((&c.node, p)),
            NestedRead::Derived(_) => None,
        })
    }
}

impl RootRead {
    /// Whether every record of the stream is read this sync.
    fn whole(&self) -> bool {
        match self {
            RootRead::Single { .. } => true,
            RootRead::List(l) => l.reads.iter().all(|r| r.covers == Covers::All),
            RootRead::Report(_) => false,
        }
    }
}

impl NestedRead {
    /// Whether every record of `node` is read this sync, its parent's being so or not: a child
    /// list read for every record of such a parent (but not a list Harvest shows active
    /// records only of), or rows made from each.
    fn whole(&self, node: &Node, parent_whole: bool) -> bool {
        match self {
            NestedRead::PerParent(p) => {
                parent_whole
                    && p.parents_since.is_none()
                    && p.request_since.is_none()
                    && node.signals.is_none()
                    && !matches!(node.def.deletions.confirm, Confirm::SameAs(_))
            }
            NestedRead::Derived(_) => parent_whole,
        }
    }
}

pub fn after(since: Option<DateTime<Utc>>, updated_at: Option<DateTime<Utc>>) -> bool {
    match (since, updated_at) {
        (None, _) | (Some(_), None) => true,
        (Some(since), Some(u)) => u >= since,
    }
}

/// The plan: one tree per root endpoint, holding the streams that are selected or that a
/// selected descendant needs.
pub struct Plan {
    pub roots: Vec<Root>,
}

/// How a selected stream's records are sent: conformed to its schema, then framed as its own
/// RECORDs, or, when stream maps or flattening change it, mapped into each stream it is sent as.
pub struct Output {
    pub conformer: Conformer,
    pub frame: RecordFrame,
    /// `None`: sent as it is read.
    pub mapped: Option<Vec<Sent>>,
    /// The account its records say they come from (`account_id`, first of the keys).
    pub account: Option<i64>,
    /// Its records' own `account_id` moves to [`OWN_ACCOUNT_ID`] (the Harvest account takes
    /// the column); decided once, with the account.
    own_account_moves: bool,
}

pub use streams::OWN_ACCOUNT_ID;

/// One stream a mapped stream is sent as, and the frame of its RECORD lines.
pub struct Sent {
    pub map: MappedStream,
    pub frame: RecordFrame,
}

impl Output {
    /// The output of `def` as the catalog selects it and the maps send it.
    pub fn new(
        def: &'static StreamDef,
        selection: &Selection,
        maps: Option<&Maps>,
    ) -> Result<Output> {
        let conformer = Conformer::new(def, selection.properties(def.name));
        let mapped = match maps {
            None => None,
            Some(maps) => {
                let all = maps
                    .outputs(
                        def.name,
                        &selected_schema(def, &conformer),
                        def.key_properties,
                    )
                    .map_err(|e| anyhow!("{e}"))?;
                match all.as_slice() {
                    [only] if only.is_identity() => None,
                    _ => Some(
                        all.into_iter()
                            .map(|map| Sent {
                                frame: RecordFrame::new(&map.name),
                                map,
                            })
                            .collect(),
                    ),
                }
            }
        };
        Ok(Output {
            conformer,
            frame: RecordFrame::new(def.name),
            mapped,
            account: None,
            own_account_moves: false,
        })
    }

    /// Whether a record's own `account_id` moves to [`OWN_ACCOUNT_ID`] (the Harvest account
    /// takes the column).
    pub fn moves_own_account(&self) -> bool {
        self.own_account_moves
    }

    /// The same output, each record, key and SCHEMA carrying `account_id`.
    pub fn in_account(mut self, account: Option<i64>) -> Output {
        self.account = account;
        self.own_account_moves =
            account.is_some() && self.conformer.columns().contains(streams::ACCOUNT_ID);
        self.frame = self.frame.in_account(account);
        if let Some(all) = &mut self.mapped {
            for sent in all {
                let frame = std::mem::replace(&mut sent.frame, RecordFrame::new(""));
                sent.frame = frame.in_account(account);
            }
        }
        self
    }

    /// The SCHEMA messages: stream, schema, key properties, bookmark properties.
    pub fn schemas(&self, def: &StreamDef) -> Vec<(String, Value, Vec<String>, Vec<&'static str>)> {
        let mut all = self.own_schemas(def);
        if self.account.is_some() {
            for (_, schema, keys, _) in &mut all {
                let props = schema.get_mut("properties").and_then(Value::as_object_mut);
                if let Some(own) = props.and_then(|p| p.remove(streams::ACCOUNT_ID)) {
                    schema["properties"][OWN_ACCOUNT_ID] = own;
                }
                with_account_column(schema, keys);
            }
        }
        all
    }

    fn own_schemas(&self, def: &StreamDef) -> Vec<(String, Value, Vec<String>, Vec<&'static str>)> {
        let bookmark: Vec<&'static str> = def.advertised_key().into_iter().collect();
        match &self.mapped {
            None => vec![(
                def.name.to_string(),
                selected_schema(def, &self.conformer),
                def.key_properties.iter().map(|k| k.to_string()).collect(),
                bookmark,
            )],
            Some(all) => all
                .iter()
                .map(|Sent { map: m, .. }| {
                    (
                        m.name.clone(),
                        m.schema.clone(),
                        m.key_properties.clone(),
                        m.bookmark_properties(&bookmark),
                    )
                })
                .collect(),
        }
    }

    /// The streams it is sent as.
    pub fn names(&self, def: &StreamDef) -> Vec<String> {
        match &self.mapped {
            None => vec![def.name.to_string()],
            Some(all) => all.iter().map(|s| s.map.name.clone()).collect(),
        }
    }
}

/// A schema and its keys with the account's column: an integer, first of the keys.
pub fn with_account_column(schema: &mut Value, keys: &mut Vec<String>) {
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            streams::ACCOUNT_ID.into(),
            serde_json::json!({"type": "integer"}),
        );
    }
    keys.insert(0, streams::ACCOUNT_ID.into());
}

/// The stream's schema with only the properties the catalog selects (and the deletion marker).
fn selected_schema(def: &StreamDef, conformer: &Conformer) -> Value {
    let columns = conformer.columns();
    let mut schema = def.schema().clone();
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.retain(|k, _| columns.contains(k) || k == streams::DELETED_AT);
    }
    schema
}

/// The catalog's selection less the streams the stream maps send nowhere (they are not read),
/// after checking that no two streams are sent under one name.
pub fn mapped_selection(selection: &Selection, maps: Option<&Maps>) -> Result<Selection> {
    let Some(maps) = maps else {
        return Ok(selection.clone());
    };
    let mut kept = selection.clone();
    kept.streams.retain(|name, _| !maps.drops(name));
    let mut names = Vec::new();
    for def in streams::STREAMS.iter().filter(|d| kept.is_selected(d.name)) {
        names.push((def.name, Output::new(def, &kept, Some(maps))?.names(def)));
    }
    maps.check_unique_names(&names)
        .map_err(|e| anyhow!("{e}"))?;
    Ok(kept)
}

impl Plan {
    pub fn new(selection: &Selection, state: &State, config: &SyncConfig) -> Result<Plan> {
        streams::check_table().map_err(|e| anyhow!("the stream table is inconsistent: {e}"))?;
        // The stream maps, compiled with the plan (the config was checked with them).
        let maps = config
            .maps
            .compile()
            .map_err(|e| anyhow!("{}", e.join("; ")))?;
        let selection = &mapped_selection(selection, maps.as_ref())?;
        let memory = Memory::from_state(state.memory());
        let mut ctx = Inputs {
            needed: &BTreeSet::new(),
            selection,
            state,
            config,
            maps: maps.as_ref(),
            memory: &memory,
            sign_modes: HashMap::new(),
            feeds: HashMap::new(),
            built: RefCell::new(HashMap::new()),
        };
        // The streams needed without the sign lists, then the signs of the children among
        // them, then the sign lists they read.
        let without_signs = needed_streams(selection, config, &HashMap::new());
        plan_signs(&mut ctx, &without_signs);
        let needed = needed_streams(selection, config, &ctx.sign_modes);
        ctx.needed = &needed;
        let roots: Vec<Root> = streams::STREAMS
            .iter()
            .filter(|d| d.parent().is_none() && needed.contains(d.name))
            .map(|d| match build(d, &ctx)? {
                (node, Planned::Root(read)) => {
                    ctx.built.borrow_mut().insert(d.name, node.clone());
                    Ok(Root { node, read })
                }
                (_, Planned::Nested(_)) => Err(anyhow!(
                    "stream {}: it is read under its parent, not on its own",
                    d.name
                )),
            })
            .collect::<Result<_>>()?;
        // Versions: the sync's start in epoch milliseconds, as the SDK's taps use.
        // Not with several accounts in one table: a version would drop the other accounts'
        // rows; deletions are sent as tombstones with their account instead.
        let version = (config.emit_activate_version_messages && config.account_column.is_none())
            .then(|| Utc::now().timestamp_millis());
        for r in &roots {
            r.node.set_versions(r.read.whole(), version);
        }
        Ok(Plan { roots })
    }
}

/// The streams the plan holds: those selected, each one's parent, and (when deletions are
/// detected) the streams whose reads decide its deletions.
fn needed_streams(
    selection: &Selection,
    config: &SyncConfig,
    sign_modes: &HashMap<&'static str, &'static [Sign]>,
) -> BTreeSet<&'static str> {
    let mut needed: BTreeSet<&'static str> = BTreeSet::new();
    let mut wanted: Vec<&'static StreamDef> = streams::STREAMS
        .iter()
        .filter(|d| selection.is_selected(d.name))
        .collect();
    while let Some(def) = wanted.pop() {
        if !needed.insert(def.name) {
            continue;
        }
        wanted.extend(def.parent().and_then(streams::find));
        // The lists whose changes are signs for it, when signs pick its parents.
        if let Some(signs) = sign_modes.get(def.name) {
            wanted.extend(
                signs
                    .iter()
                    .filter_map(|s| s.source())
                    .filter_map(streams::find),
            );
        }
        if config.deletions.detect {
            // The streams whose deletions decide this one's: its records' owner (a
            // project's time entries) and the list that confirms it.
            let d = def.deletions;
            let confirms = match d.confirm {
                Confirm::SameAs(other) => Some(other),
                Confirm::Listing | Confirm::Get(_) | Confirm::Never => None,
            };
            wanted.extend(
                d.owner
                    .map(|(_, s)| s)
                    .into_iter()
                    .chain(confirms)
                    .filter_map(streams::find),
            );
        }
    }
    needed
}

/// A column a sign list's changed records are noted by, and from when.
type FeedNeed = (&'static str, Option<DateTime<Utc>>);

struct Inputs<'a> {
    needed: &'a BTreeSet<&'static str>,
    selection: &'a Selection,
    state: &'a State,
    config: &'a SyncConfig,
    maps: Option<&'a Maps>,
    memory: &'a Memory,
    /// The children read on signs this sync, with their signs (the others of their kind read
    /// every parent).
    sign_modes: HashMap<&'static str, &'static [Sign]>,
    /// For each root list whose changes are signs: (column, since) per child reading it.
    feeds: HashMap<&'static str, Vec<FeedNeed>>,
    /// The roots built so far, by name: the lists a child's signs are read from.
    built: RefCell<HashMap<&'static str, Arc<Node>>>,
}

/// Decides which children read on signs may use them this sync, and what their sign lists
/// must cover. Every parent is read instead (and every row sent) with `full_child_scan`,
/// without deletion detection (the memory the signs read), when the child was never read
/// in full or its last full read is `deletion_full_scan_days` old (a sweep), when it has no
/// bookmark yet, and when a memory a sign reads is missing.
fn plan_signs(ctx: &mut Inputs, needed: &BTreeSet<&'static str>) {
    let config = ctx.config;
    for def in streams::STREAMS.iter().filter(|d| needed.contains(d.name)) {
        let Source::Child {
            fan_out: FanOut::Signalled(signs),
            ..
        } = def.source
        else {
            continue;
        };
        // FULL_TABLE asked of it or of a stream made from it: every row, every sync.
        let full_table = streams::STREAMS
            .iter()
            .filter(|d| d.name == def.name || descends_from(d, def.name))
            .any(|d| ctx.selection.is_full_table(d.name));
        if config.full_child_scan || !config.deletions.detect || full_table {
            continue;
        }
        let Some(known) = ctx.memory.streams.get(def.name) else {
            continue;
        };
        let sweep_due = known.swept_at.is_none_or(|at| {
            Utc::now().signed_duration_since(at).num_seconds()
                >= i64::from(config.deletions.full_scan_days) * 86_400
        });
        let Ok(replication) = def.replication() else {
            continue;
        };
        let bookmarked = replication
            .bookmark
            .as_ref()
            .is_some_and(|k| ctx.state.bookmark(def.name, k).is_some());
        let memories = signs.iter().all(|s| match s {
            Sign::Owns { via, .. } => ctx.memory.streams.contains_key(*via),
            Sign::Parent | Sign::Names { .. } | Sign::Member => true,
        });
        if sweep_due || !bookmarked || !memories {
            continue;
        }
        let since = since(def, ctx, &replication, false);
        for sign in signs {
            if let (Some(stream), Sign::Names { column, .. } | Sign::Owns { column, .. }) =
                (sign.source(), sign)
            {
                ctx.feeds.entry(stream).or_default().push((column, since));
            }
        }
        ctx.sign_modes.insert(def.name, signs);
    }
}

/// Whether `def` is read under `ancestor`, at any depth.
fn descends_from(def: &StreamDef, ancestor: &str) -> bool {
    let mut at = def.parent();
    while let Some(name) = at {
        if name == ancestor {
            return true;
        }
        at = streams::find(name).and_then(|d| d.parent());
    }
    false
}

/// The signs of a child read on signs this sync, with the nodes they are read from.
fn planned_signs(def: &StreamDef, ctx: &Inputs) -> Result<Option<Signals>> {
    let Some(signs) = ctx.sign_modes.get(def.name) else {
        return Ok(None);
    };
    let built = ctx.built.borrow();
    let node = |name: &str| {
        built.get(name).cloned().ok_or_else(|| {
            anyhow!(
                "stream {}: its sign list {name} is not planned before it",
                def.name
            )
        })
    };
    let signs = signs
        .iter()
        .map(|&sign| {
            Ok(PlannedSign {
                sign,
                source: sign.source().map(node).transpose()?,
                via: match sign {
                    Sign::Owns { via, .. } => Some(node(via)?),
                    Sign::Parent | Sign::Names { .. } | Sign::Member => None,
                },
            })
        })
        .collect::<Result<_>>()?;
    Ok(Some(Signals { signs }))
}

/// What the planner made of a stream: how it is read, at the root or under its parent.
enum Planned {
    Root(RootRead),
    Nested(NestedRead),
}

fn build(def: &'static StreamDef, ctx: &Inputs) -> Result<(Arc<Node>, Planned)> {
    let replication = def
        .replication()
        .map_err(|e| anyhow!("stream {}: {e}", def.name))?;
    let selected = ctx.selection.is_selected(def.name);
    // FULL_TABLE asked of an incremental stream: read from the start date, no bookmark.
    let full_table = ctx.selection.is_full_table(def.name);
    let replication = if full_table {
        streams::Replication {
            bookmark: None,
            ..replication
        }
    } else {
        replication
    };
    let since = since(def, ctx, &replication, full_table);
    let children: Vec<Nested> = streams::children_of(def.name)
        .filter(|c| ctx.needed.contains(c.name))
        .map(|c| nested(c, ctx))
        .collect::<Result<_>>()?;
    let presence = (ctx.config.deletions.detect && def.reports_deletions())
        .then(|| Presence::new(ctx.memory.streams.get(def.name).cloned()));
    let planned = plan_read(def, ctx, (selected, since), &children, presence.as_ref())?;
    let feeds = ctx
        .feeds
        .get(def.name)
        .into_iter()
        .flatten()
        .map(|&(column, since)| Feed {
            column,
            since,
            noted: Mutex::new(Vec::new()),
        })
        .collect();
    let tally = Tally::new(matches!(
        planned,
        Planned::Nested(NestedRead::Derived(DerivedPlan { distinct: true, .. }))
    ));
    let _ = tally.counters.stream.set(def.name);
    // The first page of each read (or window) is known to be needed now; the rest as pages
    // tell it, and a child's as its parents are read.
    let first_pages = match &planned {
        Planned::Root(RootRead::List(l)) => l.reads.len() as u64,
        Planned::Root(RootRead::Single { .. }) => 1,
        Planned::Root(RootRead::Report(r)) => r.windows.len() as u64,
        Planned::Nested(_) => 0,
    };
    tally
        .counters
        .planned
        .store(first_pages, std::sync::atomic::Ordering::Relaxed);
    let node = Arc::new(Node {
        version: std::sync::OnceLock::new(),
        def,
        selected,
        clock: replication.clock,
        bookmark: replication.bookmark,
        since,
        keeps_record: def.name == streams::FEATURE_FLAGS,
        output: if selected {
            Some(Output::new(def, ctx.selection, ctx.maps)?.in_account(ctx.config.account_column))
        } else {
            None
        },
        children,
        run: Run { tally, presence },
        feeds,
        signals: planned_signs(def, ctx)?,
        moves_with_signs: def.moves_with_signs(),
        read_whole: std::sync::OnceLock::new(),
    });
    Ok((node, planned))
}

/// A stream under its parent, planned.
fn nested(def: &'static StreamDef, ctx: &Inputs) -> Result<Nested> {
    match build(def, ctx)? {
        (node, Planned::Nested(read)) => Ok(Nested { node, read }),
        (_, Planned::Root(_)) => Err(anyhow!(
            "stream {}: it has no parent to be read under",
            def.name
        )),
    }
}

/// Records older than this are not emitted: max(bookmark, start date); the start date for a
/// full table; `None` (every record) for a stream without a bookmark.
fn since(
    def: &StreamDef,
    ctx: &Inputs,
    replication: &streams::Replication,
    full_table: bool,
) -> Option<DateTime<Utc>> {
    let config = ctx.config;
    let start = match def.source {
        Source::Report { .. } => config
            .reports_start_date
            .map_or(config.start_date, |d| d.and_time(NaiveTime::MIN).and_utc()),
        Source::Single { .. }
        | Source::List { .. }
        | Source::Child { .. }
        | Source::Derived { .. } => config.start_date,
    };
    if full_table {
        return Some(start);
    }
    let key = replication.bookmark.as_ref()?;
    let bookmark = ctx.state.bookmark(def.name, key);
    if let Some(b) = bookmark.filter(|b| *b > Utc::now() + super::tally::CLOCK_SKEW) {
        crate::log::warn(&format!(
            "stream {}: its bookmark {} is in the future: nothing changed before then is read; edit or drop it in the state if that is not meant",
            def.name,
            b.to_rfc3339()
        ));
    }
    Some(bookmark.map_or(start, |b| b.max(start)))
}

/// How a stream is read, from its declaration: whether it is emitted and from when (`since`),
/// and each child's need of parents, which a list request must cover too.
fn plan_read(
    def: &'static StreamDef,
    ctx: &Inputs,
    (selected, since): (bool, Option<DateTime<Utc>>),
    children: &[Nested],
    presence: Option<&Presence>,
) -> Result<Planned> {
    let own = selected.then_some(since);
    // A list whose changes are signs covers the changes since each child reading it needs.
    let signs = ctx.feeds.get(def.name).into_iter().flatten().map(|f| f.1);
    let needs = || oldest_needed(own, children.iter().map(Nested::parents_since).chain(signs));
    Ok(match def.source {
        Source::Single { path } => Planned::Root(RootRead::Single { path }),
        Source::List {
            path,
            envelope,
            updated_since,
        } => {
            let request_since = if updated_since { needs() } else { None };
            Planned::Root(RootRead::List(ListPlan {
                path,
                envelope,
                request_since,
                reads: list_reads(def, request_since, presence, &ctx.config.deletions),
            }))
        }
        Source::Report {
            path,
            windowed,
            fixed_fee,
        } => Planned::Root(RootRead::Report(ReportPlan {
            path,
            fixed_fee,
            windows: if windowed {
                let today = Utc::now().date_naive();
                let from = since.map_or(today, |s| s.date_naive());
                reports::windows(from, today)
                    .into_iter()
                    .map(Some)
                    .collect()
            } else {
                vec![None]
            },
        })),
        Source::Child {
            path,
            envelope,
            updated_since,
            fan_out,
            only,
            ..
        } => {
            // A child list read whole tells its parent's deletions, for the same one request.
            let request_since = if updated_since && presence.is_none() {
                needs()
            } else {
                None
            };
            let parents_since = match fan_out {
                // Every parent is gathered; the signs pick among them once they are read.
                FanOut::Signalled(_) => None,
                FanOut::ChangedParents => since.filter(|_| !ctx.config.full_child_scan),
            };
            let column = def
                .parent_id
                .ok_or_else(|| anyhow!("stream {}: a child list needs parent_id", def.name))?;
            Planned::Nested(NestedRead::PerParent(ChildPlan {
                path,
                envelope,
                column,
                only,
                request_since,
                parents_since,
            }))
        }
        Source::Derived {
            rows,
            distinct,
            clock,
            ..
        } => Planned::Nested(NestedRead::Derived(DerivedPlan {
            rows,
            distinct,
            parents_since: match clock {
                DerivedClock::Parent => since,
                DerivedClock::Row => None,
            },
        })),
    })
}

/// How a root list is read: in full when it costs nothing more (the changes would be read in
/// full anyway, or the whole list is one page) or a sweep is due; else its deletion window
/// (`from`, no `updated_since`) and then the changes before it (`to`); else the changes.
fn list_reads(
    def: &StreamDef,
    request_since: Option<DateTime<Utc>>,
    presence: Option<&Presence>,
    config: &DeletionConfig,
) -> Vec<ListRead> {
    let full = ListRead {
        updated_since: None,
        from: None,
        to: None,
        covers: Covers::All,
    };
    let changes = ListRead {
        updated_since: request_since,
        from: None,
        to: None,
        covers: if request_since.is_none() {
            Covers::All
        } else {
            Covers::Nothing
        },
    };
    let (Some(presence), Some(_)) = (presence, request_since) else {
        return vec![changes];
    };
    let now = Utc::now();
    let sweep_due = presence.swept_at().is_none_or(|at| {
        now.signed_duration_since(at).num_seconds() >= i64::from(config.full_scan_days) * 86_400
    });
    // At most one page more than the changes take (which are one page at least).
    let small = def.deletions.confirm == Confirm::Listing
        && presence
            .remembered()
            .is_some_and(|n| n <= 2 * super::PER_PAGE as usize);
    if sweep_due || small {
        return vec![full];
    }
    match def.deletions.window {
        Some(_) if config.window_days > 0 => {
            let from = now.date_naive() - chrono::Duration::days(config.window_days.into());
            debug_assert!(day_from(from) > 0);
            vec![
                ListRead {
                    updated_since: None,
                    from: Some(from),
                    to: None,
                    covers: Covers::From,
                },
                ListRead {
                    updated_since: request_since,
                    from: None,
                    to: from.pred_opt(),
                    covers: Covers::Nothing,
                },
            ]
        }
        _ => vec![changes],
    }
}

/// The `updated_since` a list request can carry: the oldest moment among those its readers
/// need (the stream's own, when it is emitted, and each child's need of parents), or none when
/// one of them needs every record.
pub fn oldest_needed(
    own: Option<Option<DateTime<Utc>>>,
    children: impl IntoIterator<Item = Option<DateTime<Utc>>>,
) -> Option<DateTime<Utc>> {
    own.into_iter()
        .chain(children)
        .try_fold(None, |oldest: Option<DateTime<Utc>>, need| {
            let need = need?;
            Some(Some(oldest.map_or(need, |o| o.min(need))))
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        crate::util::parse_datetime(s).unwrap()
    }

    fn config(extra: serde_json::Value) -> SyncConfig {
        let mut c =
            json!({"access_token": "t", "account_id": "1", "start_date": "2020-01-01T00:00:00Z"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        crate::config::Config::from_value(&c).unwrap().sync
    }

    fn selecting(names: &[&str]) -> Selection {
        let mut s = Selection::default();
        for n in names {
            s.streams.insert(streams::find(n).unwrap().name, None);
        }
        s
    }

    fn find<'a>(plan: &'a Plan, name: &str) -> &'a Arc<Node> {
        let mut all = Vec::new();
        for r in &plan.roots {
            r.node.walk(&mut all);
        }
        all.into_iter()
            .find(|n| n.def.name == name)
            .unwrap_or_else(|| panic!("{name} not planned"))
    }

    /// How `name`, a stream under a parent, is read.
    fn nested<'a>(plan: &'a Plan, name: &str) -> &'a Nested {
        let mut all = Vec::new();
        for r in &plan.roots {
            r.node.walk(&mut all);
        }
        all.into_iter()
            .flat_map(|n| &n.children)
            .find(|c| c.node.def.name == name)
            .unwrap_or_else(|| panic!("{name} not planned under a parent"))
    }

    /// The `updated_since` of a child list's requests.
    fn child_request_since(plan: &Plan, name: &str) -> Option<DateTime<Utc>> {
        match nested(plan, name).read {
            NestedRead::PerParent(p) => p.request_since,
            NestedRead::Derived(_) => panic!("{name} is derived"),
        }
    }

    /// The changes a root list's reads cover.
    fn list_request_since(root: &Root) -> Option<DateTime<Utc>> {
        match &root.read {
            RootRead::List(l) => l.request_since,
            RootRead::Single { .. } | RootRead::Report(_) => panic!("not a list"),
        }
    }

    #[test]
    fn oldest_needed_is_the_minimum_or_none() {
        let (a, b) = (at("2024-01-01"), at("2023-06-01"));
        assert_eq!(oldest_needed(Some(Some(a)), [Some(b)]), Some(b));
        assert_eq!(oldest_needed(None, [Some(a)]), Some(a));
        assert_eq!(oldest_needed(Some(Some(a)), [Some(b), None]), None);
        assert_eq!(oldest_needed(Some(None), []), None);
        assert_eq!(oldest_needed(None, []), None);
    }

    #[test]
    fn every_stream_can_be_planned() {
        let plan = Plan::new(&Selection::all(), &State::default(), &config(json!({}))).unwrap();
        let mut all = Vec::new();
        for r in &plan.roots {
            r.node.walk(&mut all);
        }
        assert_eq!(all.len(), streams::STREAMS.len());
        // Only a stream declared so keeps the keys it sent (they cost memory).
        let once: Vec<&str> = all
            .iter()
            .filter(|n| n.run.tally.sends_each_key_once())
            .map(|n| n.def.name)
            .collect();
        assert_eq!(once, ["external_reference"]);
        for n in all {
            assert_eq!(
                n.children.len(),
                streams::children_of(n.def.name).count(),
                "{}",
                n.def.name
            );
        }
    }

    #[test]
    fn a_child_alone_plans_its_parent_unselected_and_the_request_follows_its_need() {
        let state = State::from_value(json!({"bookmarks": {
            "invoices": {"updated_at": "2025-01-01T00:00:00Z"},
            "invoice_messages": {"updated_at": "2024-06-01T00:00:00Z"}}}))
        .unwrap();
        let plan = Plan::new(
            &selecting(&["invoice_messages"]),
            &state,
            &config(json!({})),
        )
        .unwrap();
        assert_eq!(plan.roots.len(), 1);
        let invoices = &plan.roots[0];
        assert!(!invoices.node.selected && invoices.node.output.is_none());
        // Unselected, the parent's own bookmark does not count: only the child's need.
        assert_eq!(list_request_since(invoices), Some(at("2024-06-01")));
        let messages = find(&plan, "invoice_messages");
        assert_eq!(messages.clock, Clock::Parent);
        assert_eq!(
            nested(&plan, "invoice_messages").parents_since(),
            Some(at("2024-06-01"))
        );
        // Each changed invoice's messages are read whole, to see which were deleted: the
        // same one request.
        assert_eq!(child_request_since(&plan, "invoice_messages"), None);
        let plan = Plan::new(
            &selecting(&["invoice_messages"]),
            &state,
            &config(json!({"detect_deletions": false})),
        )
        .unwrap();
        assert_eq!(
            child_request_since(&plan, "invoice_messages"),
            Some(at("2024-06-01"))
        );

        // Selected too: the older of the two.
        let plan = Plan::new(
            &selecting(&["invoices", "invoice_messages"]),
            &state,
            &config(json!({})),
        )
        .unwrap();
        assert_eq!(list_request_since(&plan.roots[0]), Some(at("2024-06-01")));
        // A full child scan needs every invoice.
        let plan = Plan::new(
            &selecting(&["invoices", "invoice_messages"]),
            &state,
            &config(json!({"full_child_scan": true})),
        )
        .unwrap();
        assert_eq!(list_request_since(&plan.roots[0]), None);
        assert_eq!(nested(&plan, "invoice_messages").parents_since(), None);
    }

    #[test]
    fn clocks_and_starts_are_decided_per_stream() {
        let state = State::from_value(json!({"bookmarks": {
            "users": {"updated_at": "2025-01-01T00:00:00Z"},
            "user_project_tasks": {"user_projects_updated_at": "2025-02-01T00:00:00Z"},
            "report_time_team": {"from": "2019-01-01"}}}))
        .unwrap();
        let config = config(json!({"reports_start_date": "2022-03-01"}));
        let plan = Plan::new(
            &selecting(&[
                "users",
                "user_project_tasks",
                "user_teammates",
                "report_time_team",
                "company",
            ]),
            &state,
            &config,
        )
        .unwrap();
        let users = find(&plan, "users");
        assert_eq!(
            (users.clock, users.since),
            (Clock::Own, Some(at("2025-01-01")))
        );
        // user_projects picks its users among all of them (its rows change without the
        // user), so the user list is read whole.
        let users_root = plan.roots.iter().find(|r| r.node.def.name == "users");
        assert_eq!(list_request_since(users_root.unwrap()), None);
        let upt = find(&plan, "user_project_tasks");
        assert_eq!((upt.clock, upt.since), (Clock::Row, Some(at("2025-02-01"))));
        assert!(!find(&plan, "user_projects").selected);
        let teammates = find(&plan, "user_teammates");
        // No clock of its own: it moves with the signs, under `users_updated_at`.
        assert_eq!(
            (teammates.clock, teammates.since),
            (Clock::Parent, Some(at("2020-01-01")))
        );
        assert_eq!(teammates.bookmark.as_deref(), Some("users_updated_at"));
        assert!(teammates.moves_with_signs && upt.moves_with_signs && !users.moves_with_signs);
        assert_eq!(nested(&plan, "user_teammates").parents_since(), None);
        // A bookmark older than the reports' start date starts at the start date.
        let report = find(&plan, "report_time_team");
        assert_eq!(
            (report.clock, report.since),
            (Clock::Window, Some(at("2022-03-01")))
        );
        assert_eq!(report.bookmark.as_deref(), Some("from"));
        let company = find(&plan, "company");
        assert!(company.keeps_record && company.since.is_none());
    }
}
