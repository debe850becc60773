//! Deletions. Harvest keeps no trace of what it deleted, so the tap remembers the keys it sent
//! ([`super::known`], in the STATE) and, after a sync has read everything, reports as deleted
//! the remembered keys that a complete read should have shown and did not:
//!
//! - a root list read in full (a sweep, or a small list that is one page anyway): every key;
//! - time entries and expenses read with `from` (the window): the keys dated in the window;
//! - a child list read for one parent, or the rows inside a parent record read this sync: that
//!   parent's keys;
//! - and, whatever was read, the keys whose owner was found deleted (cascades).
//!
//! A key missing from an offset-paged or filtered read is confirmed with a GET that answers 404
//! before it is reported (a page that shifted, or a `spent_date` edited out of the window, hide
//! a record that exists). Nothing is decided for a stream that failed, was skipped or whose
//! list kept changing while it was read, nor when the sync is interrupted: the next sync
//! decides. Only the keys are reported: a RECORD with the key properties and a non-null
//! `_sdc_deleted_at`.

use std::collections::{HashMap, HashSet};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::known::{day_of, owner_id, Attrs, Key, Known, KnownWriter, SortedRows};
use super::plan::Node;
use super::presence::Cover;
use super::tally::Status;
use super::Ctx;
use crate::client::{HttpError, Lane};
use crate::output::OutputClosed;
use crate::state::format_bookmark;
use crate::streams::{self, Confirm, Source, DELETED_AT};

/// At most this many missing records of a stream are confirmed by GET in one sync; the rest
/// wait for the next one (they are not reported meanwhile).
pub const MAX_CONFIRMATIONS: usize = 2000;

/// The attributes a record is remembered with: its owner (`owner` is the parent's id for a
/// child or derived row) and its date for windowed streams.
pub fn attrs_of(node: &Node, record: &Map<String, Value>, parent: Option<i64>) -> Attrs {
    let d = node.def.deletions;
    let owner = match node.def.source {
        Source::Child { .. } => parent,
        Source::Derived { distinct: true, .. } => None,
        Source::Derived { .. } => parent,
        Source::List { .. } | Source::Single { .. } | Source::Report { .. } => {
            d.owner.and_then(|(column, _)| owner_id(record, column))
        }
    };
    let day = d
        .window
        .and_then(|c| record.get(c))
        .and_then(Value::as_str)
        .and_then(day_of);
    Attrs { owner, day }
}

/// The stream whose deletions take this stream's rows with them.
fn owner_stream(node: &Node) -> Option<&'static str> {
    match node.def.source {
        Source::Child { parent, .. } => Some(parent),
        Source::Derived {
            parent,
            distinct: false,
            ..
        } => Some(parent),
        Source::Derived { distinct: true, .. } => None,
        Source::List { .. } | Source::Single { .. } | Source::Report { .. } => {
            node.def.deletions.owner.map(|(_, s)| s)
        }
    }
}

/// What was decided for one stream.
struct Decided {
    /// Keys read this sync (for the streams that confirm with it).
    seen: HashSet<Key>,
    covered_all: bool,
    deleted: HashSet<i64>,
}

/// Decides the deletions of every stream that was read to its end, parents before children,
/// sends their tombstones and the new memory. Called only after a sync that ran to its end.
pub async fn resolve(
    ctx: &Arc<Ctx>,
    roots: &[Arc<Node>],
    started: DateTime<Utc>,
) -> Result<(), OutputClosed> {
    let mut all = Vec::new();
    for r in roots {
        r.walk(&mut all);
    }
    all.sort_by_key(|n| streams::STREAMS.iter().position(|s| s.name == n.def.name));
    let mut decided: HashMap<&'static str, Decided> = HashMap::new();
    for node in all {
        if node.run.tally.status() != Status::Running {
            // The STATE keeps the memory it had.
            continue;
        }
        if let Some(d) = resolve_stream(ctx, node, &decided, started).await? {
            decided.insert(node.def.name, d);
        }
    }
    ctx.emitter.state().await
}

/// Decides one stream's deletions from what its reads saw and covered; sends its tombstones
/// (or its ACTIVATE_VERSION) and its new memory. `None` for a stream without deletion
/// bookkeeping.
async fn resolve_stream(
    ctx: &Arc<Ctx>,
    node: &Arc<Node>,
    decided: &HashMap<&'static str, Decided>,
    started: DateTime<Utc>,
) -> Result<Option<Decided>, OutputClosed> {
    // Sent in full as a new version: the target drops (or marks) what it does not hold.
    let activate = node
        .version()
        .filter(|_| !node.run.tally.bookmark_held() && node.run.tally.all_sent());
    let Some(p) = &node.run.presence else {
        if let Some(v) = activate {
            for name in output_names(node) {
                activate_version(ctx, &name, v).await?;
            }
        }
        return Ok(None);
    };
    let old = p.old.lock().unwrap().take().unwrap_or_default();
    let seen = std::mem::take(&mut *p.seen.lock().unwrap()).into_sorted();
    let cover = std::mem::take(&mut *p.cover.lock().unwrap());
    let settled = !p.unsettled.load(Ordering::Relaxed);
    let gone_owners: Option<&HashSet<i64>> = owner_stream(node)
        .and_then(|s| decided.get(s))
        .map(|d| &d.deleted);
    let (mut deleted, missing) = unseen(&old, &seen, &cover, settled, gone_owners);
    if let Some((column, stream)) = node.def.deletions.refers {
        if let Some(gone) = decided.get(stream).filter(|d| !d.deleted.is_empty()) {
            deleted.extend(referring_to(
                &old,
                node.def.key_properties,
                column,
                &gone.deleted,
            ));
        }
    }
    match node.def.deletions.confirm {
        Confirm::Listing => deleted.extend(missing),
        Confirm::Never => {}
        Confirm::SameAs(other) => {
            if let Some(o) = decided.get(other) {
                if o.covered_all {
                    deleted.extend(missing.into_iter().filter(|k| !o.seen.contains(k)));
                }
                // A record the other stream found deleted is gone here too (the same keys),
                // whether its parent was read or not.
                if !o.deleted.is_empty() {
                    deleted.extend(
                        old.rows()
                            .map(|(k, _)| k)
                            .filter(|k| matches!(k, Key::Int(n) if o.deleted.contains(n))),
                    );
                }
            }
        }
        Confirm::Get(path) => deleted.extend(confirm_gone(ctx, node, path, missing).await),
    }
    // Each once, and none that this sync read (a cascade names keys whether read or not).
    deleted.sort();
    deleted.dedup();
    if !deleted.is_empty() {
        // Both sorted: one pass.
        let mut read = seen.iter().map(|(k, _)| k).peekable();
        deleted.retain(|k| {
            while read.next_if(|r| r < k).is_some() {}
            read.peek() != Some(k)
        });
    }
    send_deletions(ctx, node, activate, &deleted).await?;
    let swept = cover.all && settled;
    let new =
        remembered(&old, &seen, &deleted).finish(if swept { Some(started) } else { old.swept_at });
    let keys: HashSet<Key> = if decided_needs_seen(node.def.name) {
        seen.iter().map(|(k, _)| k).collect()
    } else {
        HashSet::new()
    };
    drop(seen);
    ctx.emitter.memory(node.def.name, new.to_value()).await?;
    if node.defers_bookmark() {
        if let Some((key, at)) = node.next_bookmark() {
            ctx.emitter
                .bookmark(node.def.name, key, format_bookmark(at))
                .await?;
        }
    }
    Ok(Some(Decided {
        seen: keys,
        covered_all: swept,
        deleted: deleted
            .iter()
            .filter_map(|k| match k {
                Key::Int(n) => Some(*n),
                Key::Text(_) => None,
            })
            .collect(),
    }))
}

/// The remembered keys whose `column` names one of `gone` (the row goes with that record).
fn referring_to(old: &Known, props: &[&str], column: &str, gone: &HashSet<i64>) -> Vec<Key> {
    old.rows()
        .map(|(k, _)| k)
        .filter(|k| {
            k.fields(props)
                .get(column)
                .and_then(Value::as_i64)
                .is_some_and(|id| gone.contains(&id))
        })
        .collect()
}

/// The remembered keys this sync did not see: those whose owner was found deleted (gone
/// with it), and those a complete read should have shown (missing, to be confirmed).
fn unseen(
    old: &Known,
    seen: &SortedRows,
    cover: &Cover,
    settled: bool,
    gone_owners: Option<&HashSet<i64>>,
) -> (Vec<Key>, Vec<Key>) {
    let mut deleted: Vec<Key> = Vec::new();
    let mut missing: Vec<Key> = Vec::new();
    let mut read = seen.iter().peekable();
    for (key, attrs) in old.rows() {
        while read.next_if(|(k, _)| *k < key).is_some() {}
        if read.peek().is_some_and(|(k, _)| *k == key) {
            continue;
        }
        if settled
            && attrs
                .owner
                .is_some_and(|o| gone_owners.is_some_and(|g| g.contains(&o)))
        {
            deleted.push(key);
            continue;
        }
        let covered = settled
            && (cover.all
                || cover
                    .from_day
                    .is_some_and(|from| attrs.day.is_some_and(|d| d >= from))
                || attrs.owner.is_some_and(|o| cover.owners.contains(&o)));
        if covered {
            missing.push(key);
        }
    }
    (deleted, missing)
}

/// Tells the target: an ACTIVATE_VERSION for a stream sent in full, else a tombstone per
/// deleted key of a selected stream.
async fn send_deletions(
    ctx: &Ctx,
    node: &Node,
    activate: Option<i64>,
    deleted: &[Key],
) -> Result<(), OutputClosed> {
    if let Some(v) = activate {
        for name in output_names(node) {
            activate_version(ctx, &name, v).await?;
        }
        if !deleted.is_empty() {
            crate::log::info(&format!(
                "stream {}: {} records deleted in Harvest are not in version {v} (ACTIVATE_VERSION)",
                node.def.name,
                deleted.len()
            ));
        }
        return Ok(());
    }
    if !node.selected || deleted.is_empty() {
        return Ok(());
    }
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut lines = Vec::new();
    for key in deleted {
        let mut record = key.fields(node.def.key_properties);
        if let Some(account) = ctx.config.account_column {
            record.insert(streams::ACCOUNT_ID.into(), Value::from(account));
        }
        record.insert(DELETED_AT.into(), Value::String(now.clone()));
        deletion_lines(node, &record, &now, &mut lines);
        if lines.len() > 256 * 1024 {
            ctx.emitter.lines(std::mem::take(&mut lines)).await?;
        }
    }
    ctx.emitter.lines(lines).await?;
    crate::log::info(&format!(
        "stream {}: {} records deleted in Harvest reported (_sdc_deleted_at)",
        node.def.name,
        deleted.len()
    ));
    Ok(())
}

/// The new memory: what was remembered and not deleted (`deleted` sorted), and what was read,
/// in key order.
fn remembered(old: &Known, seen: &SortedRows, deleted: &[Key]) -> KnownWriter {
    let mut new = KnownWriter::default();
    let mut fresh = seen.iter().peekable();
    for (key, attrs) in old.rows() {
        while let Some((k, a)) = fresh.next_if(|(k, _)| *k < key) {
            new.push(k, a);
        }
        if fresh.peek().is_some_and(|(k, _)| *k == key) || deleted.binary_search(&key).is_ok() {
            continue;
        }
        new.push(key, attrs);
    }
    for (k, a) in fresh {
        new.push(k, a);
    }
    new
}

/// The streams a node is sent as (its own name, or its stream maps' names).
fn output_names(node: &Node) -> Vec<String> {
    node.output
        .as_ref()
        .map(|o| o.names(node.def))
        .unwrap_or_default()
}

/// The RECORD lines that tell a target `record` (a key and `_sdc_deleted_at`) was deleted:
/// one, or one per stream the stream maps send it as.
fn deletion_lines(node: &Node, record: &Map<String, Value>, now: &str, lines: &mut Vec<u8>) {
    let mut line = |stream: &str, record: &Map<String, Value>| {
        let line = serde_json::json!({"type": "RECORD", "stream": stream,
            "record": record, "time_extracted": now});
        lines.extend(serde_json::to_vec(&line).unwrap_or_default());
        lines.push(b'\n');
    };
    match node.output.as_ref().and_then(|o| o.mapped.as_ref()) {
        None => line(node.def.name, record),
        Some(all) => {
            for sent in all {
                if let Some(mut r) = sent.map.deletion(record) {
                    // The map's keys, and the account the tombstone is of.
                    if let Some(account) = record.get(streams::ACCOUNT_ID) {
                        r.insert(streams::ACCOUNT_ID.into(), account.clone());
                    }
                    line(&sent.map.name, &r);
                }
            }
        }
    }
}

async fn activate_version(ctx: &Ctx, stream: &str, version: i64) -> Result<(), OutputClosed> {
    let mut line = serde_json::to_vec(
        &serde_json::json!({"type": "ACTIVATE_VERSION", "stream": stream, "version": version}),
    )
    .unwrap_or_default();
    line.push(b'\n');
    ctx.emitter.lines(line).await
}

/// Whether another stream confirms its deletions with this one's keys.
fn decided_needs_seen(name: &str) -> bool {
    streams::STREAMS
        .iter()
        .any(|s| matches!(s.deletions.confirm, Confirm::SameAs(other) if other == name))
}

/// The missing keys that Harvest confirms gone: `GET path` answers 404. Any other answer (the
/// record is there; an error) keeps the key for the next sync.
async fn confirm_gone(
    ctx: &Arc<Ctx>,
    node: &Arc<Node>,
    path: &'static str,
    missing: Vec<Key>,
) -> Vec<Key> {
    if missing.len() > MAX_CONFIRMATIONS {
        crate::log::warn(&format!(
            "stream {}: {} records are missing from its list; {MAX_CONFIRMATIONS} are checked this sync, the rest on the next ones",
            node.def.name,
            missing.len()
        ));
    }
    let limit = Arc::new(Semaphore::new(ctx.config.max_concurrency));
    let mut tasks: JoinSet<Option<Key>> = JoinSet::new();
    for key in missing.into_iter().take(MAX_CONFIRMATIONS) {
        let Key::Int(id) = key else { continue };
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let (ctx, node) = (ctx.clone(), node.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let url = ctx.client.url(&path.replace("{id}", &id.to_string()));
            match ctx
                .client
                .get_raw(
                    &url,
                    path,
                    Lane::Small,
                    &node.run.tally.counters,
                    |_| Ok(()),
                )
                .await
            {
                Err(HttpError::NotFound(_)) => Some(Key::Int(id)),
                Ok(_) | Err(_) => None,
            }
        });
    }
    let mut gone = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(Some(k)) = done {
            gone.push(k);
        }
    }
    gone
}
