//! Children read on signs ([`FanOut::Signalled`](crate::streams::FanOut)): which parents'
//! child lists a sync reads. A user's project assignments, rates and teammates are read only
//! for the users with a sign of change since the child's bookmark, the signs coming from lists
//! the sync reads anyway (the users themselves, user and task assignments, projects) and from
//! the deletion memory (which user holds which assignment, which manager which teammate). The
//! planner decides when signs are used ([`super::plan`]); every parent is read otherwise.

use std::collections::HashSet;
use std::sync::Arc;

use super::known::{Key, Known};
use super::plan::{Node, PlannedSign};
use super::tally::Status;
use crate::streams::Sign;

/// The parents whose child lists `child` reads this sync: those with a sign. `changed` holds
/// the parents whose own `updated_at` moved since the child's bookmark. Waits for the lists the
/// signs are read from; `Err` names why the signs cannot be told (a list not read to its end),
/// and then every parent is read.
pub async fn pick(child: &Arc<Node>, changed: &HashSet<i64>) -> Result<HashSet<i64>, String> {
    let Some(signals) = &child.signals else {
        return Err("no signs were planned".into());
    };
    let mut picked = HashSet::new();
    for PlannedSign { sign, source, via } in &signals.signs {
        if let Some(source) = source {
            let tally = &source.run.tally;
            tally.ended().await;
            if tally.status() != Status::Running || tally.bookmark_held() {
                return Err(format!("{} was not read to its end", source.def.name));
            }
            // What changed after the list was read is a sign for the next sync.
            let served = tally.watermark().served;
            let mut below = Vec::new();
            child.walk(&mut below);
            for n in below {
                n.run.tally.served(served);
            }
        }
        match *sign {
            Sign::Parent => picked.extend(changed.iter().copied()),
            Sign::Names { column, .. } => picked.extend(noted(source.as_deref(), column)),
            Sign::Owns { column, .. } => {
                let owners: HashSet<i64> = noted(source.as_deref(), column).collect();
                let via = via.as_deref().and_then(memory).ok_or("no memory to read")?;
                let keys: HashSet<Key> = rows_owned_by(&via, &owners).collect();
                let mine = memory(child).ok_or("no memory to read")?;
                picked.extend(
                    mine.rows()
                        .filter(|(k, _)| keys.contains(k))
                        .filter_map(|(_, a)| a.owner),
                );
            }
            Sign::Member => {
                let mine = memory(child).ok_or("no memory to read")?;
                let member = child.def.key_properties.last().copied().unwrap_or("id");
                picked.extend(mine.rows().filter_map(|(k, a)| {
                    let m = k.fields(child.def.key_properties).get(member)?.as_i64()?;
                    changed.contains(&m).then_some(a.owner).flatten()
                }));
            }
        }
    }
    Ok(picked)
}

/// The ids a sign's list noted in `column`.
fn noted(source: Option<&Node>, column: &str) -> impl Iterator<Item = i64> {
    source
        .and_then(|s| s.feeds.iter().find(|f| f.column == column))
        .map(|f| f.noted.lock().unwrap().clone())
        .unwrap_or_default()
        .into_iter()
}

/// What the STATE remembers of a stream (a copy: the deletions read the original after).
fn memory(node: &Node) -> Option<Known> {
    node.run.presence.as_ref()?.old.lock().unwrap().clone()
}

/// The keys of the rows remembered with one of `owners`.
fn rows_owned_by<'a>(known: &'a Known, owners: &'a HashSet<i64>) -> impl Iterator<Item = Key> + 'a {
    known
        .rows()
        .filter(|(_, a)| a.owner.is_some_and(|o| owners.contains(&o)))
        .map(|(k, _)| k)
}
